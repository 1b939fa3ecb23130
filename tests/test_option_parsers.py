"""The option table's per-option parsers, the checks between options, and where defaults live.

No Phoenix server: parsers are called directly, and the few whole resolutions use
``pytester.parseconfig``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from pytest_phoenix_evals._evaluators.llm.client import JudgeSettings as ClientJudgeSettings
from pytest_phoenix_evals._judge_settings import JudgeSettings
from pytest_phoenix_evals._options import OPTIONS, Option, Settings, _check, resolve_settings

OPTION = {option.name: option for option in OPTIONS}


def source_of(option: Option, where: str) -> str:
    """How a message names where a value came from."""
    return {"cli": option.flag, "ini": f"ini {option.dest}", "env": f"env {option.env}"}[where]


@pytest.fixture(autouse=True)
def _no_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in OPTIONS:
        monkeypatch.delenv(option.env, raising=False)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("dataset", ["qa", "qa@v2:hard"], ("qa", "qa@v2:hard")),
    ("split", ["easy"], ("easy",)),
    ("examples", ["ex1, ex2", " ex3 ", ","], ("ex1", "ex2", "ex3")),
    ("task", "my_app.qa:answer", "my_app.qa:answer"),
    ("limit", "3", 3),
    ("limit", " 7 ", 7),
    ("repetitions", "1", 1),
    ("concurrency", "16", 16),
    ("judge_retries", "0", 0),
    ("judge_concurrency", "1", 1),
    ("judge_timeout", "12.5", 12.5),
    ("task_timeout", "0.001", 0.001),
    ("code_timeout", "2", 2.0),
    ("upload_timeout", "1e3", 1000.0),
    ("max_regression", "0", 0.0),
    ("evaluate_on", "SERVER", "server"),
    ("evaluate_on", " local ", "local"),
    ("judge_api", "Chat", "chat"),
    ("judge_api", "responses", "responses"),
    ("judge_price", ["m1=1/2", " m2 =0.5/1.5"], {"m1": (1.0, 2.0), "m2": (0.5, 1.5)}),
    ("sample_seed", "42", "42"),
    ("baseline", "previous", "previous"),
    ("results", "out.csv", "out.csv"),
    ("pass_rule", "Majority", "Majority"),  # normalised by _check, against the repetitions
    ("dataset_version", "", ""),  # kept as given
    ("url", "http://h:1", "http://h:1"),
    ("cache", True, True),
    ("offline", False, False),
    # Given but empty: the parser returns None and the setting keeps its default.
    ("evaluate_on", "", None),
    ("judge_api", "", None),
    ("pass_rule", "", None),
    ("sample_seed", "", None),
    ("results", "", None),
    ("judge_model", "", None),
])
def test_a_parser_turns_a_good_value_into_the_setting(name: str, value: Any,
                                                      expected: Any) -> None:
    assert OPTION[name].parse(value, OPTION[name].flag) == expected


def test_thresholds_and_gates_parse_into_their_types() -> None:
    thresholds = OPTION["threshold"].parse(["a<=1", "b>0.5", "a<2"], "--phoenix-threshold")
    assert [str(t) for t in thresholds.values()] == ["a<2", "b>0.5"]  # the last one of a name
    gates = OPTION["fail_under"].parse(["exact_match=0.9", "mean(x)>=0.8@split"],
                                       "--phoenix-fail-under")
    assert [(g.name, g.mean, g.value, g.scope) for g in gates] == [
        ("exact_match", False, 0.9, None), ("x", True, 0.8, "split")]


@pytest.mark.parametrize("where", ["cli", "ini", "env"])
@pytest.mark.parametrize(("name", "value", "message"), [
    ("limit", "0", "'0' is not an integer >= 1"),
    ("limit", "2.5", "'2.5' is not an integer >= 1"),
    ("limit", "", "'' is not an integer >= 1"),
    ("repetitions", "zero", "'zero' is not an integer >= 1, nor auto:N (each example once, "
                            "again only while its verdict is unsettled, at most N times)"),
    ("concurrency", "0", "'0' is not an integer >= 1"),
    ("judge_concurrency", "-2", "'-2' is not an integer >= 1"),
    ("judge_retries", "-1", "'-1' is not an integer >= 0"),
    ("judge_timeout", "soon", "'soon' is not a number >= 0.001"),
    ("task_timeout", "0", "'0' is not a number >= 0.001"),
    ("code_timeout", "0", "'0' is not a number >= 0.001"),
    ("upload_timeout", "-5", "'-5' is not a number >= 0"),
    ("max_regression", "lots", "'lots' is not a number >= 0"),
    # Not a number of seconds (nor a rate): NaN passed every comparison, inf never ended.
    ("task_timeout", "nan", "'nan' is not a finite number >= 0.001"),
    ("upload_timeout", "inf", "'inf' is not a finite number >= 0"),
    ("upload_timeout", "1e999", "'1e999' is not a finite number >= 0"),
    ("judge_timeout", "-inf", "'-inf' is not a finite number >= 0.001"),
    ("code_timeout", " NaN ", "' NaN ' is not a finite number >= 0.001"),
    ("max_regression", "nan", "'nan' is not a finite number >= 0"),
    ("evaluate_on", "cloud", "'cloud' is not 'local' or 'server'"),
    ("evaluate_on", " ", "' ' is not 'local' or 'server'"),
    ("judge_api", "fast", "'fast' is not 'auto', 'chat' or 'responses'"),
    ("task", "my_app.qa", "'my_app.qa' is not of the form module:function (for example "
                          "my_app.qa:answer), prompt:NAME[@TAG] or prompt-file:PATH"),
    ("task", "a:b:c", "'a:b:c' is not of the form module:function (for example "
                      "my_app.qa:answer), prompt:NAME[@TAG] or prompt-file:PATH"),
    ("task", ":answer", "':answer' is not of the form module:function (for example "
                        "my_app.qa:answer), prompt:NAME[@TAG] or prompt-file:PATH"),
    ("task", "prompt:@tag", "'prompt:@tag' names no prompt: prompt:NAME, prompt:NAME@TAG or "
                            "prompt-file:PATH"),
    ("task", "prompt-file:", "'prompt-file:' names no prompt: prompt:NAME, prompt:NAME@TAG or "
                             "prompt-file:PATH"),
    ("prompt_variables", "input..question", "'input..question' is not a dot path such as "
                                            "input or input.question"),
    ("judge_price", ["m=1/2", "gpt-4o"], "'gpt-4o' is not MODEL=INPUT/OUTPUT (USD per million "
                                         "tokens), for example gpt-4o-mini=0.15/0.60"),
    ("judge_price", ["m=1/x"], "'m=1/x' is not MODEL=INPUT/OUTPUT (USD per million tokens), "
                               "for example gpt-4o-mini=0.15/0.60"),
    ("threshold", ["edit<=three"], "invalid threshold 'edit<=three': expected '<annotation "
                                   "name><op><number>', for example 'levenshtein_distance<=3'; "
                                   "<op> is one of <=, >=, ==, !=, <, >"),
    ("fail_under", ["exact_match=2"], "'exact_match=2': a pass rate is between 0 and 1 (or 0% "
                                      "and 100%)"),
    ("fail_under", ["exact_match"], "'exact_match' is not a gate: use NAME=0.9 (pass rate), "
                                    "mean(NAME)>=0.8 (mean score; also >, <=, <), or with "
                                    "--phoenix-benchmark agreement(NAME), kappa(NAME), "
                                    "precision(NAME=LABEL), recall(NAME=LABEL), "
                                    "f1(NAME=LABEL), spearman(NAME), or the run's latency "
                                    "(seconds) and cost (USD): p95(latency)<=2.5, "
                                    "sum(cost)<=0.5, optionally followed by @split, "
                                    "@split=NAME, @metadata.KEY or @metadata.KEY=VALUE"),
    ("results", "out.txt", "'out.txt': the results file must end in .csv, .parquet, .jsonl "
                           "(the format follows the suffix)"),
])
def test_a_bad_value_is_a_usage_error_naming_its_source_and_the_value(
        name: str, value: Any, message: str, where: str) -> None:
    option = OPTION[name]
    source = source_of(option, where)
    with pytest.raises(pytest.UsageError) as raised:
        option.parse(value, source)
    assert str(raised.value) == f"{source}: {message}"


def test_a_bad_value_from_the_environment_is_named_by_resolve(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_EVALS_CONCURRENCY", "many")
    with pytest.raises(pytest.UsageError) as raised:
        resolve_settings(pytester.parseconfig())
    assert str(raised.value) == "env PHOENIX_EVALS_CONCURRENCY: 'many' is not an integer >= 1"
    pytester.makeini("[pytest]\nphoenix_evals_concurrency = 0\n")
    with pytest.raises(pytest.UsageError) as raised:
        resolve_settings(pytester.parseconfig())
    assert str(raised.value) == "ini phoenix_evals_concurrency: '0' is not an integer >= 1"


SOURCES = {option.name: option.flag for option in OPTIONS}


def test_a_conflict_names_where_each_value_came_from(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_EVALS_UPLOAD_PENDING", "1")
    with pytest.raises(pytest.UsageError) as raised:
        resolve_settings(pytester.parseconfig("--phoenix-regate=exp"))
    assert str(raised.value).startswith(
        "--phoenix-regate: not with env PHOENIX_EVALS_UPLOAD_PENDING: each is a run of its own")
    monkeypatch.delenv("PHOENIX_EVALS_UPLOAD_PENDING")
    pytester.makeini("[pytest]\nphoenix_evals_no_upload = true\n")
    with pytest.raises(pytest.UsageError) as raised:
        resolve_settings(pytester.parseconfig("--phoenix-set-baseline"))
    assert str(raised.value).startswith(
        "--phoenix-set-baseline: not with ini phoenix_evals_no_upload: a baseline is")


def test_regate_with_upload_pending_is_refused_not_skipped(pytester: pytest.Pytester) -> None:
    """It was the upload that ran (nothing pending: exit 0), and the gate never did."""
    result = pytester.runpytest("--phoenix-regate=exp", "--phoenix-upload-pending",
                                "--phoenix-fail-under=correctness=0.9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-regate: not with --phoenix-upload-pending: *"])
    assert "nothing pending" not in result.stdout.str()


@pytest.mark.parametrize(("settings", "message"), [
    (Settings(max_regression=0.05),
     "--phoenix-max-regression: a regression is measured against a baseline: add "
     "--phoenix-baseline=EXPERIMENT (dataset, previous, main, or an experiment id or name)"),
    (Settings(offline=True, evaluate_on="server"),
     "--phoenix-offline: --phoenix-evaluate-on=server needs the server; offline, attached "
     "evaluators run here"),
    (Settings(cache=True, repetitions=2),
     "--phoenix-cache: repetitions measure how a judge varies; they never come from the "
     "cache: drop --phoenix-cache or --phoenix-repetitions"),
    (Settings(sample_seed="7"),
     "--phoenix-sample-seed: a sample needs its size: add --phoenix-limit=N"),
    (Settings(pass_rule="4", repetitions=3),
     "--phoenix-pass-rule: '4': K must be between 1 and the number of repetitions (3)"),
    (Settings(pass_rule="0", repetitions=3),
     "--phoenix-pass-rule: '0': K must be between 1 and the number of repetitions (3)"),
    (Settings(pass_rule=" most", repetitions=3),
     "--phoenix-pass-rule: ' most' is not a pass rule: use all, majority, any or a number of "
     "runs K"),
    (Settings(regate="exp", upload_pending=True),
     "--phoenix-regate: not with --phoenix-upload-pending: each is a run of its own that runs "
     "no tests; upload what is pending first (pytest --phoenix-upload-pending), then regate"),
    (Settings(regate="exp", repetitions=3),
     "--phoenix-repetitions: not with --phoenix-regate: a regated experiment is judged run by "
     "run, with the repetitions it was recorded with; drop --phoenix-repetitions"),
    (Settings(upload_pending=True, offline=True),
     "--phoenix-upload-pending: not with --phoenix-offline: uploading what is pending needs "
     "the Phoenix server; drop --phoenix-offline"),
    (Settings(upload_pending=True, no_upload=True),
     "--phoenix-upload-pending: not with --phoenix-no-upload: it only uploads; drop "
     "--phoenix-no-upload"),
    (Settings(set_baseline=True, no_upload=True),
     "--phoenix-set-baseline: not with --phoenix-no-upload: a baseline is an experiment in "
     "Phoenix, and this run records none; drop one of the two"),
    (Settings(set_baseline=True, offline=True),
     "--phoenix-set-baseline: not with --phoenix-offline: a baseline is an experiment in "
     "Phoenix, and this run records none; drop one of the two"),
    (Settings(regate="exp", set_baseline=True),
     "--phoenix-set-baseline: not with --phoenix-regate: regating records nothing new; make "
     "the experiment the baseline in Phoenix, or with --phoenix-set-baseline on the run that "
     "made it"),
    (Settings(regate="exp", pass_rule="majority"),
     "--phoenix-pass-rule: not with --phoenix-regate: a regated experiment is judged run by "
     "run; the pass rule decides repeated cases of a run made now"),
])
def test_options_that_conflict_are_a_usage_error(settings: Settings, message: str) -> None:
    with pytest.raises(pytest.UsageError) as raised:
        _check(settings, SOURCES)
    assert str(raised.value) == message


@pytest.mark.parametrize(("settings", "changed"), [
    (Settings(), {}),
    (Settings(max_regression=0.05, baseline="main"), {}),
    (Settings(sample_seed="7", limit=3), {}),
    (Settings(cache=True), {}),
    (Settings(offline=True), {"no_upload": True}),
    (Settings(pass_rule="Majority", repetitions=3), {"pass_rule": "majority"}),
    (Settings(pass_rule=" 2 ", repetitions=3), {"pass_rule": "2"}),
])
def test_options_that_fit_together_pass_the_checks(settings: Settings,
                                                  changed: dict[str, Any]) -> None:
    assert _check(settings, SOURCES) == settings._replace(**changed)


def test_nothing_given_resolves_to_the_defaults(pytester: pytest.Pytester) -> None:
    assert resolve_settings(pytester.parseconfig()) == Settings()


def test_an_empty_choice_keeps_its_default(pytester: pytest.Pytester,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_EVALS_EVALUATE_ON", "")
    monkeypatch.setenv("PHOENIX_EVALS_JUDGE_API", "")
    settings = resolve_settings(pytester.parseconfig("--phoenix-pass-rule="))
    assert (settings.evaluate_on, settings.judge.api, settings.pass_rule) == (
        "local", "auto", "all")


def _settings_fields() -> list[str]:
    judge = [f"judge.{name}" for name in JudgeSettings._fields]
    # (repetitions_auto is filled by --phoenix-repetitions=auto:N, beside repetitions)
    top = [name for name in Settings._fields
           if name not in ("judge", "url_source", "repetitions_auto")]
    return sorted(top + judge)


def test_every_setting_is_filled_by_exactly_one_option() -> None:
    assert sorted(option.setting for option in OPTIONS) == _settings_fields()


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_an_options_default_is_its_settings_field_default(option: Option) -> None:
    owner: Any = Settings
    name = option.setting
    if name.startswith("judge."):
        owner, name = JudgeSettings, name.removeprefix("judge.")
    assert name in owner._field_defaults, f"{option.setting} has no default"
    assert option.default == owner._field_defaults[name]


@pytest.mark.parametrize(("name", "shown"), [
    ("concurrency", "(default 8)"),
    ("upload_timeout", "(default 120)"),
    ("judge_timeout", "(default 30)"),
    ("judge_retries", "(default 3)"),
    ("judge_concurrency", "(default 8)"),
    ("code_timeout", "(default 10)"),
    ("evaluate_on", "'local' (default"),
    ("judge_api", "'auto' (default"),
    ("pass_rule", "'all' runs must pass (default)"),
])
def test_help_shows_the_default(name: str, shown: str) -> None:
    assert shown in OPTION[name].help
    assert "{default}" not in OPTION[name].help


def test_help_lists_the_default_in_pytest_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    assert "--phoenix-concurrency=N Run this many cases at the same time (default 8):" in text
    assert "Seconds one judge request may take (default 30)." in text


def _modules_after(module: str) -> list[str]:
    """Our modules and pytest's that importing ``module`` loads, in a fresh interpreter."""
    code = (f"import json, sys, {module}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pytest', '_pytest', 'pytest_phoenix_evals'))))\n")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    loaded: list[str] = json.loads(output)
    return loaded


def test_the_judge_client_imports_neither_pytest_nor_the_options() -> None:
    loaded = _modules_after("pytest_phoenix_evals._evaluators.llm.client")
    assert "pytest" not in loaded and "pytest_phoenix_evals._options" not in loaded
    assert ClientJudgeSettings is JudgeSettings  # re-exported from its light module


def test_the_option_table_does_not_load_the_judge_client() -> None:
    loaded = _modules_after("pytest_phoenix_evals.plugin")
    assert "pytest_phoenix_evals._judge_settings" in loaded
    assert "pytest_phoenix_evals._evaluators.llm.client" not in loaded
