"""Options: one definition each, resolved once into frozen :class:`Settings`.

Every option exists three ways: ``--phoenix-<name>`` on the command line, ``phoenix_evals_<name>``
in the ini file and ``PHOENIX_EVALS_<NAME>`` in the environment. The command line wins over the
ini file, the ini file over the environment. List options take several flags, one value per
line in the ini file, and comma-separated values in the environment.

Each option is one :class:`Option` row: its names, its help, the field of :class:`Settings` it
fills and a ``parse`` function from the value as given to the setting (the parsers are in
``_option_parsers.py``), which raises :class:`pytest.UsageError` naming where the value came
from. A default is written once, as the field default of :class:`Settings` (or of
:class:`JudgeSettings` for the judge options); an option's ``default`` and the ``{default}`` in
its help are read from there. Checks that need two options run after every option is parsed, in
:func:`_check`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, NoReturn, get_args

import pytest

from ._judge_settings import JudgeApi, JudgeSettings
from ._option_parsers import (
    Parse,
    Several,
    choice,
    comma_separated,
    dot_path,
    flag,
    fraction,
    fraction_open,
    gates,
    jsonpath,
    moment,
    number,
    prices,
    regression,
    repetitions,
    results_path,
    seconds,
    shard,
    strings,
    task,
    text,
    thresholds,
    verbatim,
)
from ._settings import EvaluateOn, Settings, SpanTarget, is_prompt_task

__all__ = ["GROUPS", "OPTIONS", "Option", "Settings", "add_options", "is_prompt_task",
           "resolve_settings"]

Kind = Literal["str", "list", "bool"]


_DEFAULTS = Settings()


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# The groups of ``pytest --help`` and of docs/options.md, one for each mode and one for each
# concern the modes share, in the order they are shown: each a section "phoenix-evals: <group>".
# The table below keeps each group's options together, the most used first.
RUNS = "dataset runs"
GATES = "CI gates, baselines and reports"
TRACES = "production traces"
BENCHMARKS = "judge benchmarks"
PROMPTS = "prompt tasks"
EVALUATORS = "evaluators"
JUDGES = "LLM judges"
SERVER = "Phoenix server, uploads and journal"
GROUPS = (RUNS, GATES, TRACES, BENCHMARKS, PROMPTS, EVALUATORS, JUDGES, SERVER)


class Option(NamedTuple):
    name: str
    group: str  # one of GROUPS: where pytest --help and docs/options.md show it
    kind: Kind
    template: str  # argparse text (%% for %); "{default}" stands for the default
    metavar: str | None = None
    parse: Parse = verbatim
    target: str = ""  # the Settings field it fills ("judge.timeout" in JudgeSettings); or name

    @property
    def setting(self) -> str:
        return self.target or self.name

    @property
    def help(self) -> str:
        return self.template.replace("{default}", _shown(self.default))

    @property
    def default(self) -> Any:
        """The setting when the option is not given, read from :class:`Settings`."""
        value: Any = _DEFAULTS
        for part in self.setting.split("."):
            value = getattr(value, part)
        return value

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
    Option("dataset", RUNS, "list", "Run the examples of this Phoenix dataset as test cases (name "
           "or id; repeatable). NAME@VERSION_ID:SPLIT picks a version and a split for this "
           "dataset alone.", "NAME", parse=strings, target="datasets"),
    Option("task", RUNS, "str", "The task under test: module:function (sync or async); "
           "prompt:NAME[@TAG|@VERSION_ID], a prompt of Phoenix prompt management run as the "
           "playground runs it over a dataset; or prompt-file:PATH, such a prompt kept in a YAML "
           "or JSON file. Without it, a pytest_phoenix_evals_task hook in conftest.py supplies "
           "the task.", "TASK", parse=task),
    Option("split", RUNS, "list", "Only run examples in this dataset split (repeatable).",
           "SPLIT", parse=strings, target="splits"),
    Option("examples", RUNS, "list", "Only run these examples: example ids, or case ids as shown "
           "in the report (ex12 or ex12-what-is-2-2); comma-separated or repeated.",
           "ID,...", parse=comma_separated),
    Option("limit", RUNS, "str", "Only run the first N examples of each dataset (a random sample "
           "of N with --phoenix-sample-seed).", "N", parse=number(int, minimum=1)),
    Option("sample_seed", RUNS, "str", "With --phoenix-limit: take a random sample of the "
           "examples, the same one for the same seed.", "SEED", parse=text),
    Option("dataset_version", RUNS, "str", "Run this dataset version id (default: the latest).",
           "VERSION_ID", parse=verbatim),
    Option("experiment_name", RUNS, "str", "Name of the Phoenix experiment this run records "
           "(default: what ran, then '[<branch>@<commit>[+dirty]] <UTC time>', such as "
           "'my_app.qa:answer on qa-golden v3 main@0123abcd 2026-12-02 13:58:15.250Z'; its "
           "description is the command line).", "NAME", parse=verbatim),
    Option("concurrency", RUNS, "str", "Run this many cases at the same time (default {default}): "
           "tasks and evaluators of different cases overlap (sync ones in threads) while each "
           "case is still reported as its own test.", "N", parse=number(int, minimum=1)),
    Option("task_timeout", RUNS, "str", "Seconds the task may take on one example (default: no "
           "limit); a task that takes longer fails its case with a timeout, and its run is "
           "recorded with that error.", "SECONDS", parse=number(float, minimum=0.001)),
    Option("fail_under", GATES, "list", "A gate on the whole run: NAME=0.9 (at least 90%% of the "
           "cases pass annotation NAME), mean(NAME)>=0.8 (also >, <=, <) or, with "
           "--phoenix-judge-calibration, corrected(NAME)=0.9, optionally with @split, "
           "@split=NAME, @metadata.KEY or @metadata.KEY=VALUE to check each split or "
           "metadata value (or one) on its own (repeatable). With gates the exit status follows "
           "them; errored and missing cases count as failures.",
           "GATE", parse=gates, target="gates"),
    Option("threshold", GATES, "list", "Assert a score: NAME OP NUMBER with OP one of < <= > >= "
           "== !=, for example 'levenshtein_distance<=3' (repeatable).",
           "NAME<=X", parse=thresholds, target="thresholds"),
    Option("baseline", GATES, "str", "Compare this run with an experiment already in Phoenix: its "
           "id or name, 'dataset' (the dataset's baseline experiment), 'previous' (the latest "
           "experiment of the dataset) or 'main' (the latest that ran on branch main or master); "
           "with a prompt as the task, prompt:TAG (the latest experiment that ran the prompt's "
           "version carrying TAG). The summary lists the examples that regressed and improved.",
           "EXPERIMENT", parse=text),
    Option("max_regression", GATES, "str", "With --phoenix-baseline: fail the session when an "
           "annotation's pass rate falls by more than this (0.05 = 5 points); or 'significant': "
           "only when the paired test finds a regression (one-sided exact McNemar p below "
           "--phoenix-alpha).", "RATE|significant", parse=regression),
    Option("alpha", GATES, "str", "With --phoenix-max-regression=significant: the significance "
           "level of the paired test (default {default}).", "LEVEL", parse=fraction_open),
    Option("judge_calibration", GATES, "str", "Also show each gated LLM judge's pass rate "
           "corrected for the judge's own error (Rogan-Gladen, with a 95%% interval), as its "
           "benchmark against human labels measured it: 'latest' (the latest --phoenix-benchmark "
           "of the same prompt version in Phoenix) or a benchmark experiment's id; a gate may "
           "then read corrected(NAME)=0.9.", "latest|EXPERIMENT_ID", parse=text),
    Option("set_baseline", GATES, "bool", "Make this run the dataset's baseline experiment in "
           "Phoenix once everything is uploaded (for runs on the main branch).", parse=flag),
    Option("summary_md", GATES, "str", "Write a markdown summary (gates, pass rates, failing "
           "cases, links) to this file; it is also appended to $GITHUB_STEP_SUMMARY when that is "
           "set.", "PATH", parse=text),
    Option("results", GATES, "str", "Write every case's results (one row per annotation: input, "
           "output, reference, label, score, verdict, ...) as a pandas DataFrame to this file: "
           ".csv, .parquet or .jsonl.", "PATH", parse=results_path),
    Option("only_failures", GATES, "bool", "Keep the report to the failing cases: passing cases "
           "print nothing and are left out of the markdown summary and results file.", parse=flag),
    Option("repetitions", GATES, "str", "Run each example N times (Phoenix's repetition numbers "
           "1..N); each example is still one test, decided by --phoenix-pass-rule. auto:N runs "
           "each example once, and again only while its verdict is unsettled (an error, a score "
           "near its threshold, runs that disagree), at most N times (auto alone: 5).",
           "N|auto:N", parse=repetitions),
    # Whether a number K fits the repetitions is checked in _check, once both are known.
    Option("pass_rule", GATES, "str", "With repetitions: 'all' runs must pass (default), a "
           "'majority', 'any' one, or a number K of them.", "all|majority|any|K", parse=text),
    Option("run_id", GATES, "str", "Record into the experiment of this CI run: every pytest of "
           "the run given the same id (the shards of a job matrix, such as pytest-split groups) "
           "records into one experiment per dataset, made by the first; then --phoenix-regate=run "
           "decides the gates over all of it (for example ${{ github.run_id }}).",
           "ID", parse=text),
    Option("regate", GATES, "str", "Run no tests: apply this command line's gates, verdict rules "
           "and baseline to an experiment already in Phoenix (its id, or its name with "
           "--phoenix-dataset); no task and no judge is called. With --phoenix-run-id, 'run' "
           "takes the experiment every shard of that run recorded into. With --phoenix-project, "
           "'window' decides the gates over the annotations this plugin wrote on the spans of the "
           "window (--phoenix-since).", "EXPERIMENT|run|window", parse=text),
    Option("project", TRACES, "str", "Judge the spans of this Phoenix project (name or id) as "
           "test cases, one per span that lacks the evaluators' annotations; the results are "
           "written back as span annotations.", "PROJECT", parse=text),
    Option("evaluators", TRACES, "list", "Evaluators for --phoenix-project (comma-separated or "
           "repeated): qa_correctness and hallucination (this plugin's judges), a judge template "
           "of the Phoenix server by name (correctness, faithfulness, ...), dataset:NAME for "
           "the evaluators attached to dataset NAME, prompt:NAME[@TAG] for a judge prompt of "
           "Phoenix prompt management (the version the tag names), or "
           "tool_calls[:exact][:any-order] for an agent's tool calls against "
           "--phoenix-reference. With --phoenix-dataset: judges added to the dataset's attached "
           "evaluators (a regression dataset of failing spans, with no task, is judged again on "
           "the outputs it recorded).", "NAME,...", parse=comma_separated),
    Option("spans", TRACES, "str", "With --phoenix-project: which spans, in Phoenix's span filter "
           "language (default: span_kind == 'LLM'), for example \"span_kind == 'LLM' and name == "
           "'ChatCompletion'\".", "FILTER", parse=text),
    Option("since", TRACES, "str", "With --phoenix-project: only spans that started after this: a "
           "duration back from now (90s, 15m, 2h, 7d) or an ISO time.", "WHEN", parse=moment),
    Option("until", TRACES, "str", "With --phoenix-project: only spans that started before this "
           "(a duration back from now or an ISO time; default now, less --phoenix-settle).",
           "WHEN", parse=moment),
    Option("sample", TRACES, "str", "With --phoenix-project: judge this fraction of the spans, "
           "chosen by span id: the same spans on every run and host, and a smaller sample inside "
           "a larger one.", "FRACTION", parse=fraction),
    Option("max_spans", TRACES, "str", "With --phoenix-project: judge at most N spans this run, "
           "the oldest first (the rest wait for the next run, which the summary says).",
           "N", parse=number(int, minimum=1)),
    Option("target", TRACES, "str", "With --phoenix-project: 'span' (default) judges each span; "
           "'trace' judges whole traces (the root span's input and output) and writes trace "
           "annotations; 'session' judges whole conversations (the session.id attribute: its "
           "turns in order) once no new trace came for --phoenix-settle, writes session "
           "annotations, and reads --phoenix-spans as a session filter.", "span|trace|session",
           parse=choice(get_args(SpanTarget))),
    Option("reference", TRACES, "str", "With --phoenix-project: a JSONPath into the span's "
           "context for the judges' reference, for example $.metadata.documents (the documents "
           "its trace retrieved) or $.metadata.expected (default: empty). With "
           "--phoenix-benchmark: a JSONPath into each golden example's {input, output, "
           "metadata} for the judge's reference, for example $.metadata.reference.",
           "JSONPATH", parse=jsonpath),
    Option("add_failures_to", TRACES, "str", "With --phoenix-project: add every failing span to "
           "this dataset (made if missing) as an example linked to its span, with the failed "
           "evaluators and their explanations in its metadata; a span added once is never added "
           "again. DATASET:SPLIT puts them in a split.", "DATASET[:SPLIT]", parse=text),
    Option("rejudge", TRACES, "bool", "With --phoenix-project: judge spans again that already "
           "have this plugin's annotation (overwriting only ours; a span annotated by anyone else "
           "is left alone).", parse=flag),
    Option("settle", TRACES, "str", "With --phoenix-project: leave the spans of the last DURATION "
           "for a later run, as Phoenix makes spans queryable some time after they arrive "
           "(default {default} s; 0s takes everything).", "DURATION", parse=seconds),
    Option("shard", TRACES, "str", "With --phoenix-project: judge only shard K of N (1-based), "
           "chosen by span (trace) id as --phoenix-sample is: the same subjects on every host, "
           "and the N shards together hold every subject once; for a CI job matrix or an "
           "indexed Kubernetes Job.", "K/N", parse=shard),
    Option("claim_ttl", TRACES, "str", "With --phoenix-project: how long this run's claims on "
           "the subjects it judges hold when the run dies without releasing them (default "
           "{default} s); longer than the run takes.", "DURATION", parse=seconds),
    Option("benchmark", BENCHMARKS, "str", "Benchmark this LLM judge against the human labels of "
           "the --phoenix-dataset golden set (metadata annotations[NAME] records by a HUMAN, or "
           "metadata label): no task, the example's output is judged, a case passes when the "
           "labels agree; gate with agreement(NAME), kappa(NAME), "
           "precision/recall/f1(NAME=LABEL). JUDGE: an LLM evaluator attached to the golden set, "
           "dataset:DATASET/EVALUATOR, prompt:NAME[@TAG|@VERSION_ID] (a judge prompt of prompt "
           "management), qa_correctness or hallucination.", "JUDGE", parse=text),
    Option("benchmark_against", BENCHMARKS, "str", "With --phoenix-benchmark: also judge the "
           "golden set with the judge's prompt version carrying this tag (for example "
           "production), in an experiment of its own, and compare the two example by example; the "
           "gates and --phoenix-promote-tag stay the candidate's.", "TAG", parse=text),
    Option("corrections", BENCHMARKS, "str", "Run no tests: turn the judge traces in this Phoenix "
           "project that a human annotated (a HUMAN annotation named as the judge of "
           "--phoenix-benchmark on its 'Evaluator: NAME' span) into examples of the "
           "--phoenix-dataset golden set (made if missing), once each, split train/test by trace "
           "id.", "PROJECT", parse=text),
    Option("test_share", BENCHMARKS, "str", "With --phoenix-corrections: the share of corrections "
           "put in split 'test' (the rest in 'train'), decided by trace id (default {default}).",
           "FRACTION", parse=number(float, minimum=0.0)),
    Option("push_prompt", PROMPTS, "str", "With --phoenix-task=prompt-file:PATH: when every gate "
           "passed and every result is in Phoenix, save the file as a new version of this prompt "
           "(made if missing; nothing new when its latest version is the file).",
           "NAME", parse=text),
    Option("promote_tag", PROMPTS, "str", "With a prompt as the task: when every gate passed and "
           "every result is in Phoenix, move this prompt version tag (for example production) to "
           "the prompt version under test (the one --phoenix-push-prompt made). Also with "
           "--phoenix-benchmark: to the judged prompt version.", "TAG", parse=text),
    Option("model", PROMPTS, "list", "With a prompt as the task: run it on these models "
           "instead of the prompt's own (comma-separated or repeated), one experiment each, "
           "named by its model; the summary puts them side by side (pass rates, cost, "
           "latency).", "MODEL,...", parse=comma_separated, target="models"),
    Option("prompt_variables", PROMPTS, "str", "With a prompt as the task: the dot path in the "
           "example's {input, reference, metadata} whose keys fill the template's variables "
           "(default {default}; '.' for the whole context, then {{input.question}}).",
           "PATH", parse=dot_path),
    Option("prompt_messages", PROMPTS, "str", "With a prompt as the task: the dot path in the "
           "example's input of OpenAI-style messages to append to the prompt's.",
           "PATH", parse=dot_path),
    Option("skip_evaluators", EVALUATORS, "list", "Leave these evaluators (attached in Phoenix or "
           "from code; by evaluator or annotation name, comma-separated or repeated) out of this "
           "run; the experiment's metadata lists them.", "NAME,...", parse=comma_separated),
    Option("allow_code_evaluators", EVALUATORS, "bool", "Run the Python code evaluators attached "
           "in Phoenix on this machine, in worker processes of their own with a time limit. "
           "Without it they run on the server when it can, else they are reported as not run.",
           parse=flag),
    Option("evaluate_on", EVALUATORS, "str", "Where attached evaluators run: 'local' (default; "
           "judges are called from here) or 'server' (Phoenix runs each evaluator through "
           "evaluatorPreviews with its own provider credentials and sandbox).",
           "local|server", parse=choice(get_args(EvaluateOn))),
    Option("prompt_tag", EVALUATORS, "str", "Run every attached LLM evaluator with the version of "
           "its prompt that carries this tag (for example production); a prompt without it keeps "
           "its own version, with a notice.", "TAG", parse=text),
    Option("code_timeout", EVALUATORS, "str", "Seconds one attached code evaluator may run "
           "locally (default {default}).", "SECONDS", parse=number(float, minimum=0.001)),
    Option("judge_model", JUDGES, "str", "Model for every LLM judge, replacing the prompt's model "
           "(default: the prompt's, else gpt-4o-mini).", "MODEL", parse=text, target="judge.model"),
    Option("judge_base_url", JUDGES, "str", "Base URL of an OpenAI-compatible server for LLM "
           "judges (default: OPENAI_BASE_URL, else OpenAI).",
           "URL", parse=text, target="judge.base_url"),
    Option("cache", JUDGES, "bool", "Reuse an LLM judge's answer when its request is the same: "
           "the same evaluator, prompt version and config judging the same input, output and "
           "reference (kept in .phoenix-evals/judge-cache.sqlite). Not with repetitions.",
           parse=flag),
    Option("judge_price", JUDGES, "list", "Price of a judge model in USD per million tokens, to "
           "report cost: MODEL=INPUT/OUTPUT, for example gpt-4o-mini=0.15/0.60 (repeatable).",
           "MODEL=IN/OUT", parse=prices, target="judge.prices"),
    Option("budget_usd", JUDGES, "str", "Start no judge call once the judges' priced spend (see "
           "--phoenix-judge-price) reaches this many USD (under pytest-xdist, each worker spends "
           "at most its share); the spans left are judged by a later run.",
           "USD", parse=number(float), target="judge.budget_usd"),
    Option("judge_concurrency", JUDGES, "str", "At most this many judge calls at once, for all "
           "pytest-xdist workers together (default {default}).",
           "N", parse=number(int, minimum=1), target="judge.concurrency"),
    Option("judge_timeout", JUDGES, "str", "Seconds one judge request may take (default "
           "{default}).", "SECONDS", parse=number(float, minimum=0.001), target="judge.timeout"),
    Option("judge_retries", JUDGES, "str", "Retries of a judge call after a 429, 5xx, timeout or "
           "connection error, with exponential backoff and jitter, honouring Retry-After (default "
           "{default}).", "N", parse=number(int), target="judge.retries"),
    Option("judge_api", JUDGES, "str", "OpenAI endpoint for judges: 'auto' (default: as the "
           "Phoenix server does, Chat Completions for the gpt-4o/4.1/4/3.5 families and the "
           "Responses API for other OpenAI model names), 'chat' or 'responses'.",
           "auto|chat|responses", parse=choice(get_args(JudgeApi)), target="judge.api"),
    Option("url", SERVER, "str", "Phoenix base URL (default: arize-phoenix-client's environment "
           "variables: PHOENIX_ENDPOINT, PHOENIX_COLLECTOR_ENDPOINT, ...; then "
           "http://localhost:6006).", "URL", parse=verbatim),
    Option("no_upload", SERVER, "bool", "Run everything locally; record no experiment in Phoenix.",
           parse=flag),
    Option("offline", SERVER, "bool", "Run from the local snapshot of each dataset and its "
           "evaluators (taken by every online run, kept per dataset version) with no Phoenix "
           "server at all; nothing is uploaded. NAME@VERSION picks a version kept.", parse=flag),
    Option("upload_pending", SERVER, "bool", "Run no tests: upload the results a session kept in "
           ".phoenix-evals/journal/ (under the rootdir) because Phoenix could not take them, each "
           "into the experiment it was meant for. Running it twice adds nothing twice.",
           parse=flag),
    Option("upload_timeout", SERVER, "str", "Seconds the session waits at its end for uploads "
           "still in flight (default {default}); what is left then is listed in the summary.",
           "SECONDS", parse=number(float)),
)

#: The options that only mean something with --phoenix-project.
SPAN_OPTIONS: tuple[str, ...] = ("spans", "evaluators", "since", "until", "sample",
                                 "max_spans", "target", "rejudge", "reference",
                                 "add_failures_to")
SPAN_OPTIONS += ("shard", "claim_ttl")


_INI_TYPES: dict[Kind, Literal["string", "linelist", "bool"]] = {
    "str": "string", "list": "linelist", "bool": "bool"}


def add_options(parser: pytest.Parser) -> None:
    """One pytest group for each of :data:`GROUPS`, in their order, each holding its options in
    the order of the table."""
    groups = {}
    for title in GROUPS:
        heading = f"phoenix-evals: {title}"
        if title == GROUPS[0]:
            # Said once, at the head of the first group, not after each option (pytest --help
            # stays readable).
            heading += (" (here and in every phoenix-evals group below, --phoenix-NAME is also "
                        "the ini key phoenix_evals_NAME and the variable PHOENIX_EVALS_NAME; "
                        "the command line wins, then the ini file, then the environment)")
        groups[title] = parser.getgroup(f"phoenix-evals: {title}", heading)
    for option in OPTIONS:
        group = groups[option.group]
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", default=None, dest=option.dest,
                            help=option.help)
        else:
            group.addoption(option.flag, action="append" if option.kind == "list" else "store",
                            default=None, dest=option.dest, metavar=option.metavar,
                            help=option.help)
        parser.addini(option.dest, option.help.replace("%%", "%"), default=None,
                      type=_INI_TYPES[option.kind])


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_BOOLEANS = "1/0, true/false, yes/no or on/off"


def _ini(config: pytest.Config, option: Option) -> Any:
    """The ini value as pytest reads it for the option's type (a TOML bool stays a bool).
    pytest's own error for a bad boolean ("invalid truth value 'maybe'": a ValueError in older
    pytest, a UsageError in newer) names neither the key nor the values it takes."""
    if option.kind != "bool":
        return config.getini(option.dest)
    try:
        return config.getini(option.dest)
    except (ValueError, TypeError, pytest.UsageError) as exc:
        raise pytest.UsageError(f"ini {option.dest}: {exc}; use {_BOOLEANS}") from None


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str | None]:
    """(value, where it came from) by precedence: command line, ini, environment."""
    value = config.getoption(option.dest)
    if value is not None:
        return value, option.flag
    value = _ini(config, option)
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
            raise pytest.UsageError(f"{option.env}={raw!r} is not a boolean; use {_BOOLEANS}")
        return raw.strip().lower() in _TRUE, source
    return raw, source


def resolve_settings(config: pytest.Config) -> Settings:
    given = [(option, *_resolve(config, option)) for option in OPTIONS]
    sources = {option.name: source for option, _, source in given}
    values: dict[str, Any] = {}
    judge: dict[str, Any] = {}
    for option, raw, source in given:
        if source is None:  # not given anywhere: the default
            continue
        value = option.parse(raw, source)
        if value is None:  # given but empty: the default
            continue
        if option.setting.startswith("judge."):
            judge[option.setting.removeprefix("judge.")] = value
        elif isinstance(value, Several):  # one option, several settings
            values.update(value)
        else:
            values[option.setting] = value
    settings = Settings(**values, url_source=sources["url"], judge=JudgeSettings(**judge))
    return _check(settings, sources)


def _conflicts(settings: Settings, sources: Mapping[str, str | None]) -> None:
    """Options that cannot go together: the first named is refused, beside the other."""
    def refuse(option: str, beside: str, why: str) -> NoReturn:
        raise pytest.UsageError(f"{sources[option]}: not with {sources[beside]}: {why}")

    if settings.regate and settings.upload_pending:
        refuse("regate", "upload_pending", "each is a run of its own that runs no tests; "
               "upload what is pending first (pytest --phoenix-upload-pending), then regate")
    if settings.regate and settings.repetitions > 1:
        refuse("repetitions", "regate", "a regated experiment is judged run by run, with the "
               "repetitions it was recorded with; drop --phoenix-repetitions")
    if settings.regate and settings.set_baseline:
        refuse("set_baseline", "regate", "regating records nothing new; make the experiment "
               "the baseline in Phoenix, or with --phoenix-set-baseline on the run that made it")
    if settings.regate and settings.pass_rule.strip().lower() != "all":
        refuse("pass_rule", "regate", "a regated experiment is judged run by run; the pass "
               "rule decides repeated cases of a run made now")
    if settings.upload_pending and settings.offline:
        refuse("upload_pending", "offline", "uploading what is pending needs the Phoenix "
               "server; drop --phoenix-offline")
    if settings.upload_pending and settings.no_upload:
        refuse("upload_pending", "no_upload", "it only uploads; drop --phoenix-no-upload")
    if settings.project:
        for field, other in (("datasets", "dataset"), ("task", "task"),
                             ("baseline", "baseline"), ("set_baseline", "set_baseline"),
                             ("offline", "offline")):
            if getattr(settings, field):
                refuse(other, "project", "a project's spans are judged as they are, with no "
                       "task, dataset or experiment: run the two apart")
        if settings.repetitions > 1:
            refuse("repetitions", "project", "each span is judged once a run; "
                   "--phoenix-rejudge judges it again")
    else:
        for option in SPAN_OPTIONS:
            if option == "reference" and settings.benchmark:
                continue  # a golden example's reference for the judge under benchmark
            if option == "evaluators" and settings.datasets and not settings.benchmark:
                continue  # judges beside the dataset's attached evaluators
            value = getattr(settings, option)
            if value not in (None, (), False, "span") and value != getattr(_DEFAULTS, option):
                raise pytest.UsageError(f"{sources[option]}: only with --phoenix-project=NAME "
                                        f"(the project whose spans to judge)")
    if settings.benchmark:
        if len(dict.fromkeys(settings.datasets)) != 1:
            raise pytest.UsageError(f"{sources['benchmark']}: name the golden set with exactly "
                                    f"one --phoenix-dataset=NAME")
        for field, other in (("task", "task"), ("project", "project"), ("regate", "regate")):
            if getattr(settings, field):
                refuse(other, "benchmark", "a benchmark judges the golden set's own outputs "
                       "(no task), once")
        if settings.repetitions > 1:
            refuse("repetitions", "benchmark", "each golden example is judged once")
    if settings.corrections:
        if not settings.benchmark or len(dict.fromkeys(settings.datasets)) != 1:
            raise pytest.UsageError(f"{sources['corrections']}: name the judge with "
                                    f"--phoenix-benchmark=NAME and the golden set to grow with "
                                    f"one --phoenix-dataset=NAME")
        for other in ("upload_pending", "regate", "project", "offline", "no_upload"):
            if getattr(settings, other):
                refuse(other, "corrections", "each is a run of its own")
    if not 0 <= settings.test_share <= 1:
        raise pytest.UsageError(f"{sources['test_share']}: a share between 0 and 1")
    if settings.benchmark_against and not settings.benchmark:
        raise pytest.UsageError(f"{sources['benchmark_against']}: only with "
                                f"--phoenix-benchmark (the judge to compare)")
    prompt_task = is_prompt_task(settings.task)
    if settings.promote_tag:
        if not settings.benchmark and not prompt_task:
            raise pytest.UsageError(f"{sources['promote_tag']}: only with --phoenix-benchmark "
                                    f"(the judge whose prompt version would carry the tag) or "
                                    f"--phoenix-task=prompt:NAME or prompt-file:PATH (the "
                                    f"prompt under test)")
        for local in ("offline", "no_upload"):
            if getattr(settings, local):
                refuse("promote_tag", local, "a version is promoted on the evidence of an "
                       "experiment in Phoenix")
    if settings.push_prompt:
        if not (settings.task or "").startswith("prompt-file:"):
            raise pytest.UsageError(f"{sources['push_prompt']}: only with "
                                    f"--phoenix-task=prompt-file:PATH (the file to save as a "
                                    f"version)")
        for local in ("offline", "no_upload"):
            if getattr(settings, local):
                refuse("push_prompt", local, "a version is saved on the evidence of an "
                       "experiment in Phoenix")
    if (settings.baseline or "").startswith("prompt:") and not prompt_task:
        raise pytest.UsageError(f"{sources['baseline']}: {settings.baseline!r} compares with "
                                f"a version of the prompt under test: only with "
                                f"--phoenix-task=prompt:NAME or prompt-file:PATH")
    if settings.models and not prompt_task:
        raise pytest.UsageError(f"{sources['model']}: only with a prompt as the task "
                                f"(--phoenix-task=prompt:NAME or prompt-file:PATH): a Python "
                                f"task chooses its own model")
    if settings.models:
        for other in ("push_prompt", "promote_tag"):
            if getattr(settings, other):
                refuse(other, "model", "the version in Phoenix names its own model, and this "
                       "run tested it on another; run it on its own model to promote it")
        if settings.set_baseline and len(settings.models) > 1:
            refuse("set_baseline", "model", "one experiment is a dataset's baseline, and this "
                   "run makes one per model")
    for option in ("prompt_variables", "prompt_messages"):
        given = getattr(settings, option)
        if given != getattr(_DEFAULTS, option) and not prompt_task:
            raise pytest.UsageError(f"{sources[option]}: only with a prompt as the task "
                                    f"(--phoenix-task=prompt:NAME or prompt-file:PATH)")
    if settings.judge.budget_usd is not None and not settings.judge.prices:
        raise pytest.UsageError(f"{sources['budget_usd']}: a budget needs the judges' prices: "
                                f"add --phoenix-judge-price=MODEL=INPUT/OUTPUT")
    for local in ("offline", "no_upload"):
        if settings.set_baseline and getattr(settings, local):
            refuse("set_baseline", local, "a baseline is an experiment in Phoenix, and this "
                   "run records none; drop one of the two")


def _check(settings: Settings, sources: Mapping[str, str | None]) -> Settings:
    """What needs two options: conflicts, the pass rule against the repetitions, offline."""
    _conflicts(settings, sources)
    if any(gate.metric == "corrected" for gate in settings.gates) and \
            not settings.judge_calibration:
        raise pytest.UsageError(f"{sources['fail_under']}: a corrected(NAME) gate needs the "
                                f"judge's measured error: add --phoenix-judge-calibration=latest "
                                f"(its latest benchmark against human labels)")
    if settings.judge_calibration and settings.benchmark:
        raise pytest.UsageError(f"{sources['judge_calibration']}: not with "
                                f"{sources['benchmark']}: a benchmark measures the judge's "
                                f"error against human labels; it is not corrected by it")
    if settings.alpha != _DEFAULTS.alpha and settings.max_regression != "significant":
        raise pytest.UsageError(f"{sources['alpha']}: the level of the paired test of "
                                f"--phoenix-max-regression=significant; add that")
    if settings.max_regression is not None and settings.baseline is None:
        raise pytest.UsageError(f"{sources['max_regression']}: a regression is measured "
                                f"against a baseline: add --phoenix-baseline=EXPERIMENT "
                                f"(dataset, previous, main, or an experiment id or name)")
    pass_rule = settings.pass_rule
    if pass_rule != "all" or settings.repetitions > 1:  # (the default needs no check)
        from ._core.repeat import parse_pass_rule

        try:
            pass_rule = parse_pass_rule(settings.pass_rule, settings.repetitions)
        except ValueError as exc:
            raise pytest.UsageError(f"{sources['pass_rule']}: {exc}") from None
    if settings.offline and settings.evaluate_on == "server":
        raise pytest.UsageError(f"{sources['offline']}: --phoenix-evaluate-on=server needs the "
                                f"server; offline, attached evaluators run here")
    if settings.cache and settings.repetitions > 1:
        raise pytest.UsageError(f"{sources['cache']}: repetitions measure how a judge varies; "
                                f"they never come from the cache: drop --phoenix-cache or "
                                f"--phoenix-repetitions")
    if settings.sample_seed is not None and settings.limit is None:
        raise pytest.UsageError(f"{sources['sample_seed']}: a sample needs its size: add "
                                f"--phoenix-limit=N")
    return settings._replace(pass_rule=pass_rule,
                             no_upload=settings.no_upload or settings.offline)
