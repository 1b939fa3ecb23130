"""Options: one definition each, resolved once into frozen :class:`Settings`.

Every option exists three ways: ``--phoenix-<name>`` on the command line, ``phoenix_evals_<name>``
in the ini file and ``PHOENIX_EVALS_<NAME>`` in the environment. The command line wins over the
ini file, the ini file over the environment. List options take several flags, one value per
line in the ini file, and comma-separated values in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from ._core.gates import Gate
    from ._core.verdict import Threshold

Kind = Literal["str", "list", "bool"]


@dataclass(frozen=True)
class Option:
    name: str
    kind: Kind
    help: str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--phoenix-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "phoenix_evals_" + self.name

    @property
    def env(self) -> str:
        return "PHOENIX_EVALS_" + self.name.upper()


OPTIONS = (
    Option("dataset", "list", "Run the examples of this Phoenix dataset as test cases "
           "(name or id; repeatable). NAME@VERSION_ID:SPLIT picks a version and a split for "
           "this dataset alone.", "NAME"),
    Option("task", "str", "The task under test, as module:function (sync or async). Without "
           "it, a pytest_phoenix_evals_task hook in conftest.py supplies the task.",
           "MODULE:FUNCTION"),
    Option("split", "list", "Only run examples in this dataset split (repeatable).", "SPLIT"),
    Option("examples", "list", "Only run these examples: example ids, or case ids as "
           "shown in the report (ex12 or ex12-what-is-2-2); comma-separated or repeated.",
           "ID,..."),
    Option("limit", "str", "Only run the first N examples of each dataset (a random sample "
           "of N with --phoenix-sample-seed).", "N"),
    Option("sample_seed", "str", "With --phoenix-limit: take a random sample of the "
           "examples, the same one for the same seed.", "SEED"),
    Option("cache", "bool", "Reuse an LLM judge's answer when its request is the same: the "
           "same evaluator, prompt version and config judging the same input, output and "
           "reference (kept in .phoenix-evals/judge-cache.sqlite). Not with repetitions."),
    Option("only_failures", "bool", "Keep the report to the failing cases: passing cases "
           "print nothing and are left out of the markdown summary and results file."),
    Option("dataset_version", "str", "Run this dataset version id (default: the latest).",
           "VERSION_ID"),
    Option("url", "str", "Phoenix base URL (default: arize-phoenix-client's environment "
           "variables: PHOENIX_ENDPOINT, PHOENIX_COLLECTOR_ENDPOINT, ...; then "
           "http://localhost:6006).", "URL"),
    Option("experiment_name", "str", "Name of the Phoenix experiment this run records "
           "(default: 'pytest <branch>@<commit>').", "NAME"),
    Option("threshold", "list", "Assert a score: NAME OP NUMBER with OP one of < <= > >= == "
           "!=, for example 'levenshtein_distance<=3' (repeatable).", "NAME<=X"),
    Option("task_timeout", "str", "Seconds the task may take on one example (default: no "
           "limit); a task that takes longer fails its case with a timeout, and its run is "
           "recorded with that error.", "SECONDS"),
    Option("repetitions", "str", "Run each example N times (Phoenix's repetition numbers "
           "1..N); each example is still one test, decided by --phoenix-pass-rule.", "N"),
    Option("pass_rule", "str", "With repetitions: 'all' runs must pass (default), a "
           "'majority', 'any' one, or a number K of them.", "all|majority|any|K"),
    Option("fail_under", "list", "A gate on the whole run: NAME=0.9 (at least 90%% of the "
           "cases pass annotation NAME) or mean(NAME)>=0.8 (also >, <=, <), optionally with "
           "@split, @split=NAME, @metadata.KEY or @metadata.KEY=VALUE to check each split or "
           "metadata value (or one) on its own (repeatable). With gates the exit status "
           "follows them; errored and missing cases count as failures.", "GATE"),
    Option("baseline", "str", "Compare this run with an experiment already in Phoenix: its id "
           "or name, 'dataset' (the dataset's baseline experiment), 'previous' (the latest "
           "experiment of the dataset) or 'main' (the latest that ran on branch main or "
           "master). The summary lists the examples that regressed and improved.",
           "EXPERIMENT"),
    Option("max_regression", "str", "With --phoenix-baseline: fail the session when an "
           "annotation's pass rate falls by more than this (0.05 = 5 points).", "RATE"),
    Option("set_baseline", "bool", "Make this run the dataset's baseline experiment in "
           "Phoenix once everything is uploaded (for runs on the main branch)."),
    Option("regate", "str", "Run no tests: apply this command line's gates, verdict rules and "
           "baseline to an experiment already in Phoenix (its id, or its name with "
           "--phoenix-dataset); no task and no judge is called.", "EXPERIMENT"),
    Option("results", "str", "Write every case's results (one row per annotation: input, "
           "output, reference, label, score, verdict, ...) as a pandas DataFrame to this file: "
           ".csv, .parquet or .jsonl.", "PATH"),
    Option("summary_md", "str", "Write a markdown summary (gates, pass rates, failing cases, "
           "links) to this file; it is also appended to $GITHUB_STEP_SUMMARY when that is set.",
           "PATH"),
    Option("offline", "bool", "Run from the local snapshot of each dataset and its "
           "evaluators (taken by every online run, kept per dataset version) with no Phoenix "
           "server at all; nothing is uploaded. NAME@VERSION picks a version kept."),
    Option("no_upload", "bool", "Run everything locally; record no experiment in Phoenix."),
    Option("concurrency", "str", "Run this many cases at the same time (default 8): tasks and "
           "evaluators of different cases overlap (sync ones in threads) while each case is "
           "still reported as its own test.", "N"),
    Option("upload_pending", "bool", "Run no tests: upload the results a session kept in "
           ".phoenix-evals/journal/ (under the rootdir) because Phoenix could not take them, "
           "each into the experiment it was meant for. Running it twice adds nothing twice."),
    Option("upload_timeout", "str", "Seconds the session waits at its end for uploads still "
           "in flight (default 120); what is left then is listed in the summary.", "SECONDS"),
    Option("evaluate_on", "str", "Where attached evaluators run: 'local' (default; judges are "
           "called from here) or 'server' (Phoenix runs each evaluator through "
           "evaluatorPreviews with its own provider credentials and sandbox).", "local|server"),
    Option("prompt_tag", "str", "Run every attached LLM evaluator with the version of its prompt "
           "that carries this tag (for example production); a prompt without it keeps its own "
           "version, with a notice.", "TAG"),
    Option("judge_model", "str", "Model for every LLM judge, replacing the prompt's model "
           "(default: the prompt's, else gpt-4o-mini).", "MODEL"),
    Option("judge_base_url", "str", "Base URL of an OpenAI-compatible server for LLM judges "
           "(default: OPENAI_BASE_URL, else OpenAI).", "URL"),
    Option("judge_timeout", "str", "Seconds one judge request may take (default 30).",
           "SECONDS"),
    Option("judge_retries", "str", "Retries of a judge call after a 429, 5xx, timeout or "
           "connection error, with exponential backoff and jitter, honouring Retry-After "
           "(default 3).", "N"),
    Option("judge_concurrency", "str", "At most this many judge calls at once (default 8).",
           "N"),
    Option("judge_api", "str", "OpenAI endpoint for judges: 'auto' (default: as the Phoenix "
           "server does, Chat Completions for the gpt-4o/4.1/4/3.5 families and the Responses "
           "API for other OpenAI model names), 'chat' or 'responses'.", "auto|chat|responses"),
    Option("judge_price", "list", "Price of a judge model in USD per million tokens, to report "
           "cost: MODEL=INPUT/OUTPUT, for example gpt-4o-mini=0.15/0.60 (repeatable).",
           "MODEL=IN/OUT"),
    Option("allow_code_evaluators", "bool", "Run the Python code evaluators attached in "
           "Phoenix on this machine, each call in a separate process with a time limit. "
           "Without it they run on the server when it can, else they are reported as not run."),
    Option("code_timeout", "str", "Seconds one attached code evaluator may run locally "
           "(default 10).", "SECONDS"),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("phoenix-evals", "Phoenix dataset evaluation (pytest-phoenix-evals)")
    for option in OPTIONS:
        suffix = (f" Also ini '{option.dest}' and env {option.env}; the command line wins, "
                  f"then ini, then env.")
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", default=None, dest=option.dest,
                            help=option.help + suffix)
        else:
            group.addoption(option.flag, action="append" if option.kind == "list" else "store",
                            default=None, dest=option.dest, metavar=option.metavar,
                            help=option.help + suffix)
        parser.addini(option.dest, option.help.replace("%%", "%"), default=None,
                      type={"str": "string", "list": "linelist", "bool": "bool"}[option.kind])


@dataclass(frozen=True)
class JudgeSettings:
    model: str | None = None  # replaces every judge's model when set
    base_url: str | None = None  # replaces OPENAI_BASE_URL when set
    timeout: float = 30.0
    retries: int = 3
    concurrency: int = 8
    api: str = "auto"  # "chat", "responses", or "auto": the endpoint the server would call
    # model -> (USD per million input tokens, USD per million output tokens)
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``gpt-4o-mini=0.15/0.60`` -> (model, (input, output)) in USD per million tokens."""
    model, sep, rest = text.partition("=")
    prompt, slash, completion = rest.partition("/")
    try:
        if not (sep and slash and model.strip()):
            raise ValueError
        return model.strip(), (float(prompt), float(completion))
    except ValueError:
        raise ValueError(f"{text!r} is not MODEL=INPUT/OUTPUT (USD per million tokens), for "
                         f"example gpt-4o-mini=0.15/0.60") from None


@dataclass(frozen=True)
class Settings:
    """Every option, resolved; nothing else reads ``config.getoption`` for our options."""

    datasets: tuple[str, ...] = ()
    task: str | None = None
    splits: tuple[str, ...] = ()
    dataset_version: str | None = None
    examples: tuple[str, ...] = ()
    limit: int | None = None
    sample_seed: str | None = None
    only_failures: bool = False
    cache: bool = False
    url: str | None = None
    url_source: str | None = None
    experiment_name: str | None = None
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    gates: tuple[Gate, ...] = ()
    baseline: str | None = None
    max_regression: float | None = None
    set_baseline: bool = False
    regate: str | None = None
    repetitions: int = 1
    task_timeout: float | None = None
    pass_rule: str = "all"
    results: str | None = None
    summary_md: str | None = None
    no_upload: bool = False
    offline: bool = False
    concurrency: int = 8
    upload_timeout: float = 120.0
    upload_pending: bool = False
    evaluate_on: str = "local"
    prompt_tag: str | None = None
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    allow_code_evaluators: bool = False
    code_timeout: float = 10.0


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str | None]:
    """(value, where it came from) by precedence: command line, ini, environment."""
    value = config.getoption(option.dest)
    if value is not None:
        return value, option.flag
    value = config.getini(option.dest)
    if value not in (None, [], ""):
        return value, f"ini {option.dest}"
    raw = os.environ.get(option.env)
    if raw is None:
        return None, None
    source = f"env {option.env}"
    if option.kind == "list":
        return [part.strip() for part in raw.split(",") if part.strip()], source
    if option.kind == "bool":
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise pytest.UsageError(f"{option.env}={raw!r} is not a boolean; use 1/0, "
                                    f"true/false, yes/no or on/off")
        return raw.strip().lower() in _TRUE, source
    return raw, source


def resolve_settings(config: pytest.Config) -> Settings:
    from ._core.verdict import parse_threshold

    values: dict[str, Any] = {}
    sources: dict[str, str | None] = {}
    for option in OPTIONS:
        values[option.name], sources[option.name] = _resolve(config, option)
    thresholds: dict[str, Threshold] = {}
    for text in values["threshold"] or ():
        try:
            threshold = parse_threshold(text)
        except ValueError as exc:
            raise pytest.UsageError(f"{sources['threshold']}: {exc}") from None
        thresholds[threshold.name] = threshold
    gates = []
    if values["fail_under"]:
        from ._core.gates import parse_gate

        for text in values["fail_under"]:
            try:
                gates.append(parse_gate(text))
            except ValueError as exc:
                raise pytest.UsageError(f"{sources['fail_under']}: {exc}") from None
    if values["results"]:
        from ._report.outputs import check_results_path

        if problem := check_results_path(values["results"]):
            raise pytest.UsageError(f"{sources['results']}: {problem}")
    task = values["task"]
    if task is not None and (task.count(":") != 1 or not all(task.split(":"))):
        raise pytest.UsageError(f"{sources['task']}: {task!r} is not of the form "
                                f"module:function, for example my_app.qa:answer")
    evaluate_on = (values["evaluate_on"] or "local").strip().lower()
    if evaluate_on not in ("local", "server"):
        raise pytest.UsageError(f"{sources['evaluate_on']}: {values['evaluate_on']!r} is not "
                                f"'local' or 'server'")
    judge_api = (values["judge_api"] or "auto").strip().lower()
    if judge_api not in ("auto", "chat", "responses"):
        raise pytest.UsageError(f"{sources['judge_api']}: {values['judge_api']!r} is not "
                                f"'auto', 'chat' or 'responses'")
    prices = {}
    for text in values["judge_price"] or ():
        try:
            model, price = parse_price(text)
        except ValueError as exc:
            raise pytest.UsageError(f"{sources['judge_price']}: {exc}") from None
        prices[model] = price

    def number(name: str, default: float | None, kind: type = float, minimum: float = 0) -> Any:
        raw = values[name]
        if raw is None:
            return default
        try:
            value = kind(str(raw).strip())
            if value < minimum:
                raise ValueError
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise pytest.UsageError(f"{sources[name]}: {raw!r} is not {what} >= {minimum}"
                                    ) from None
        return value

    judge = JudgeSettings(
        model=values["judge_model"] or None,
        base_url=values["judge_base_url"] or None,
        timeout=number("judge_timeout", 30.0, minimum=0.001),
        retries=number("judge_retries", 3, int),
        concurrency=number("judge_concurrency", 8, int, minimum=1),
        api=judge_api,
        prices=prices,
    )
    repetitions = number("repetitions", 1, int, minimum=1)
    max_regression = number("max_regression", None)
    if max_regression is not None and not values["baseline"]:
        raise pytest.UsageError(f"{sources['max_regression']}: a regression is measured "
                                f"against a baseline: add --phoenix-baseline=EXPERIMENT "
                                f"(dataset, previous, main, or an experiment id or name)")
    pass_rule = "all"
    if values["pass_rule"]:
        from ._core.repeat import parse_pass_rule

        try:
            pass_rule = parse_pass_rule(values["pass_rule"], repetitions)
        except ValueError as exc:
            raise pytest.UsageError(f"{sources['pass_rule']}: {exc}") from None
    if values["offline"] and (values["evaluate_on"] or "").strip().lower() == "server":
        raise pytest.UsageError(f"{sources['offline']}: --phoenix-evaluate-on=server needs the "
                                f"server; offline, attached evaluators run here")
    if values["cache"] and repetitions > 1:
        raise pytest.UsageError(f"{sources['cache']}: repetitions measure how a judge varies; "
                                f"they never come from the cache: drop --phoenix-cache or "
                                f"--phoenix-repetitions")
    if values["sample_seed"] and not values["limit"]:
        raise pytest.UsageError(f"{sources['sample_seed']}: a sample needs its size: add "
                                f"--phoenix-limit=N")
    return Settings(
        datasets=tuple(values["dataset"] or ()),
        task=task,
        splits=tuple(values["split"] or ()),
        dataset_version=values["dataset_version"],
        examples=tuple(part.strip() for text in values["examples"] or ()
                       for part in text.split(",") if part.strip()),
        limit=number("limit", None, int, minimum=1),
        sample_seed=values["sample_seed"] or None,
        only_failures=bool(values["only_failures"]),
        cache=bool(values["cache"]),
        url=values["url"],
        url_source=sources["url"],
        experiment_name=values["experiment_name"],
        thresholds=thresholds,
        gates=tuple(gates),
        baseline=values["baseline"] or None,
        max_regression=max_regression,
        set_baseline=bool(values["set_baseline"]),
        regate=values["regate"] or None,
        repetitions=repetitions,
        task_timeout=number("task_timeout", None, minimum=0.001),
        pass_rule=pass_rule,
        results=values["results"] or None,
        summary_md=values["summary_md"] or None,
        no_upload=bool(values["no_upload"]) or bool(values["offline"]),
        offline=bool(values["offline"]),
        concurrency=number("concurrency", 8, int, minimum=1),
        upload_timeout=number("upload_timeout", 120.0),
        upload_pending=bool(values["upload_pending"]),
        evaluate_on=evaluate_on,
        prompt_tag=values["prompt_tag"] or None,
        judge=judge,
        allow_code_evaluators=bool(values["allow_code_evaluators"]),
        code_timeout=number("code_timeout", 10.0, minimum=0.001),
    )
