"""Options, help, and living beside arize-phoenix-client's own pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pytest_phoenix_evals._core.verdict import parse_threshold
from pytest_phoenix_evals._options import GROUPS, OPTIONS, PROMPTS, resolve_settings

ROOT = Path(__file__).resolve().parent.parent


def test_command_line_wins_over_ini_over_environment(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_EVALS_DATASET", "from-env, second")
    monkeypatch.setenv("PHOENIX_EVALS_TASK", "env:task")
    monkeypatch.setenv("PHOENIX_EVALS_EXPERIMENT_NAME", "env-name")
    monkeypatch.setenv("PHOENIX_EVALS_NO_UPLOAD", "yes")
    pytester.makeini("[pytest]\nphoenix_evals_task = ini:task\n"
                     "phoenix_evals_threshold =\n    a<=1\n    b>0.5\n")
    settings = resolve_settings(pytester.parseconfig("--phoenix-experiment-name=cli-name"))
    assert settings.datasets == ("from-env", "second")
    assert settings.task == "ini:task"
    assert settings.experiment_name == "cli-name"
    assert settings.no_upload is True
    assert [str(t) for t in settings.thresholds.values()] == ["a<=1", "b>0.5"]
    settings = resolve_settings(pytester.parseconfig("--phoenix-dataset=x",
                                                     "--phoenix-dataset=y",
                                                     "--phoenix-task=cli:task"))
    assert settings.datasets == ("x", "y") and settings.task == "cli:task"


def test_url_source_is_remembered(pytester: pytest.Pytester) -> None:
    settings = resolve_settings(pytester.parseconfig("--phoenix-url=http://h:1"))
    assert (settings.url, settings.url_source) == ("http://h:1", "--phoenix-url")


def test_judge_settings_resolve_from_ini_and_command_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nphoenix_evals_judge_timeout = 12.5\n"
                     "phoenix_evals_judge_price =\n    m1=1/2\n    m2=0.5/1.5\n")
    settings = resolve_settings(pytester.parseconfig(
        "--phoenix-judge-retries=5", "--phoenix-evaluate-on=SERVER",
        "--phoenix-judge-model=llama3", "--phoenix-allow-code-evaluators"))
    assert (settings.judge.timeout, settings.judge.retries, settings.judge.concurrency) == (
        12.5, 5, 8)
    assert settings.judge.prices == {"m1": (1.0, 2.0), "m2": (0.5, 1.5)}
    assert settings.judge.model == "llama3" and settings.evaluate_on == "server"
    assert settings.allow_code_evaluators is True and settings.code_timeout == 10.0


@pytest.mark.parametrize(("arg", "message"), [
    ("--phoenix-evaluate-on=cloud", "'cloud' is not 'local' or 'server'"),
    ("--phoenix-judge-timeout=soon", "'soon' is not a number"),
    ("--phoenix-judge-retries=-1", "'-1' is not an integer >= 0"),
    ("--phoenix-judge-price=gpt-4o", "'gpt-4o' is not MODEL=INPUT/OUTPUT"),
    ("--phoenix-code-timeout=0", "'0' is not a number >= 0.001"),
])
def test_bad_judge_settings_name_the_option(pytester: pytest.Pytester, arg: str,
                                            message: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"^{arg.split('=')[0]}: .*"):
        resolve_settings(pytester.parseconfig(arg))
    with pytest.raises(pytest.UsageError) as raised:
        resolve_settings(pytester.parseconfig(arg))
    assert message in str(raised.value)


def test_bad_boolean_in_environment(pytester: pytest.Pytester,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_EVALS_NO_UPLOAD", "maybe")
    with pytest.raises(pytest.UsageError, match="PHOENIX_EVALS_NO_UPLOAD='maybe' is not a "
                                                "boolean"):
        resolve_settings(pytester.parseconfig())


@pytest.mark.parametrize("value", ["maybe", "Maybe", "2"])
def test_bad_boolean_in_the_ini_file_names_its_key(pytester: pytest.Pytester,
                                                   value: str) -> None:
    # pytest reads an ini bool itself; its own error named neither key nor accepted values.
    pytester.makeini(f"[pytest]\nphoenix_evals_cache = {value}\n")
    with pytest.raises(pytest.UsageError) as raised:
        resolve_settings(pytester.parseconfig())
    message = str(raised.value)
    assert message.startswith("ini phoenix_evals_cache: ")
    assert f"{value.lower()!r}" in message
    assert message.endswith("; use 1/0, true/false, yes/no or on/off")


def test_bad_boolean_in_the_ini_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nphoenix_evals_cache = maybe\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini phoenix_evals_cache: *'maybe'; use 1/0, "
                                 "true/false, yes/no or on/off"])


@pytest.mark.parametrize(("text", "expected"), [
    ("edit_distance<=3", ("edit_distance", "<=", 3.0)),
    (" correctness >= 0.9 ", ("correctness", ">=", 0.9)),
    ("x.y==1e-3", ("x.y", "==", 0.001)),
    ("score!=-2", ("score", "!=", -2.0)),
])
def test_parse_threshold(text: str, expected: tuple[str, str, float]) -> None:
    threshold = parse_threshold(text)
    assert (threshold.name, threshold.op, threshold.value) == expected


@pytest.mark.parametrize("text", ["<=3", "edit<=", "edit=3", "edit<=three", ""])
def test_parse_threshold_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected '<annotation name><op><number>'"):
        parse_threshold(text)


NAMING = ("here and in every phoenix-evals group below, --phoenix-NAME is also the ini key "
          "phoenix_evals_NAME and the variable PHOENIX_EVALS_NAME; the command line wins, then "
          "the ini file, then the environment")


def test_help_shows_the_options_in_groups_by_mode(pytester: pytest.Pytester) -> None:
    """One section of ``pytest --help`` for each mode and shared concern, in this order, each
    with its most used options first; how ini keys and variables are named is said once."""
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        f"phoenix-evals: dataset runs ({NAMING}):",
        "  --phoenix-dataset=NAME*",
        "  --phoenix-task=TASK*",
        "  --phoenix-split=SPLIT*",
        "  --phoenix-examples=ID,...*",
        "  --phoenix-limit=N*",
        "phoenix-evals: CI gates, baselines and reports:",
        "  --phoenix-fail-under=GATE*",
        "  --phoenix-threshold=NAME<=X*",
        "  --phoenix-baseline=EXPERIMENT*",
        "  --phoenix-max-regression=RATE*",
        "phoenix-evals: production traces:",
        "  --phoenix-project=PROJECT*",
        "  --phoenix-evaluators=NAME,...*",
        "  --phoenix-spans=FILTER*",
        "  --phoenix-since=WHEN*",
        "phoenix-evals: judge benchmarks:",
        "  --phoenix-benchmark=JUDGE*",
        "  --phoenix-benchmark-against=TAG*",
        "  --phoenix-corrections=PROJECT*",
        "phoenix-evals: prompt tasks:",
        "  --phoenix-push-prompt=NAME*",
        "  --phoenix-promote-tag=TAG*",
        "  --phoenix-prompt-variables=PATH*",
        "phoenix-evals: evaluators:",
        "  --phoenix-skip-evaluators=NAME,...*",
        "  --phoenix-allow-code-evaluators*",
        "  --phoenix-evaluate-on=local|server*",
        "phoenix-evals: LLM judges:",
        "  --phoenix-judge-model=MODEL*",
        "  --phoenix-judge-base-url=URL*",
        "  --phoenix-cache*",
        "phoenix-evals: Phoenix server, uploads and journal:",
        "  --phoenix-url=URL*",
        "  --phoenix-no-upload*",
        "  --phoenix-offline*",
    ])
    result.stdout.fnmatch_lines(["*phoenix_evals_dataset (linelist):*"])
    text = result.stdout.str()
    assert text.count("PHOENIX_EVALS_NAME") == 1
    assert "Also ini" not in text


def help_sections(text: str) -> dict[str, list[str]]:
    """pytest --help's phoenix-evals sections: heading (up to any parenthesis) -> the flags
    under it, in order."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            heading = line.rstrip(":").split(" (")[0]
            current = sections.setdefault(heading, []) if heading.startswith(
                "phoenix-evals: ") else None
        elif current is not None and line.startswith("  --phoenix-"):
            current.append(line.split()[0].split("=")[0])
    return sections


def test_help_shows_every_option_under_its_groups_heading_in_table_order(
        pytester: pytest.Pytester) -> None:
    sections = help_sections(pytester.runpytest("--help").stdout.str())
    assert list(sections) == [f"phoenix-evals: {group}" for group in GROUPS]
    assert sections == {f"phoenix-evals: {group}": [o.flag for o in OPTIONS if o.group == group]
                        for group in GROUPS}


def page_sections(text: str) -> dict[str, list[str]]:
    """docs/options.md's sections: heading -> the flags of its table, in order."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line.removeprefix("## "), [])
        elif line.startswith("| `--phoenix-"):
            current.append(line.split("`")[1].split("=")[0])
    return sections


def test_the_options_page_shows_the_groups_of_pytest_help(pytester: pytest.Pytester) -> None:
    """docs/options.md: a section for each group of pytest --help, in the same order, holding
    the same options in the same order."""
    shown = help_sections(pytester.runpytest("--help").stdout.str())
    page = page_sections((ROOT / "docs" / "options.md").read_text(encoding="utf-8"))
    title = {heading: heading.removeprefix("phoenix-evals: ") for heading in shown}
    assert list(page) == [title[h][:1].upper() + title[h][1:] for h in shown]
    assert list(page.values()) == list(shown.values())


def test_the_option_table_keeps_each_groups_options_together_in_group_order() -> None:
    assert all(option.group in GROUPS for option in OPTIONS), [
        (option.name, option.group) for option in OPTIONS if option.group not in GROUPS]
    order = [GROUPS.index(option.group) for option in OPTIONS]
    assert order == sorted(order), "each group's options together, the groups in GROUPS order"
    assert set(order) == set(range(len(GROUPS))), "every group holds an option"


def test_an_option_of_two_modes_says_the_other_in_its_help() -> None:
    """--phoenix-promote-tag is shown with the prompt tasks; its help names the benchmark."""
    promote = next(option for option in OPTIONS if option.name == "promote_tag")
    assert promote.group == PROMPTS
    assert "--phoenix-benchmark" in promote.help


def test_the_client_plugins_ini_key_gets_a_hint(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nphoenix_dataset = qa\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["phoenix-evals: the ini file sets phoenix_dataset, which is "
                                 "arize-phoenix-client's plugin's key*set phoenix_evals_dataset"])


def test_loads_beside_the_clients_own_plugin(pytester: pytest.Pytester) -> None:
    """Both plugins load; each keeps its own marker and ini key."""
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--markers", "--strict-markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["@pytest.mark.phoenix_evals(dataset=None, evaluators=()):*"])
    result = pytester.runpytest("--trace-config", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*phoenix_evals*pytest_phoenix_evals/plugin.py*"])
    result.stdout.fnmatch_lines(["*phoenix*phoenix/client/pytest/plugin.py*"])
    assert result.ret == 0


HEAVY = ("openai", "pandas", "opentelemetry", "openinference", "pystache", "jsonpath_ng",
         "jsonschema", "tabulate", "rapidfuzz", "httpx")


def test_unused_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest_phoenix_evals.plugin\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        "or m.startswith('phoenix.client')]\n"
        "print(heavy)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert output == "[]"


def test_a_pytest_run_without_a_dataset_loads_nothing_heavy(pytester: pytest.Pytester) -> None:
    # arize-phoenix-client's own plugin imports phoenix.client (and OpenTelemetry) in every
    # run; it is switched off here so that what is measured is ours alone.
    pytester.makeconftest(f"""
import sys

def pytest_sessionfinish(session):
    heavy = sorted({{m.split(".")[0] for m in sys.modules
                    if m.split(".")[0] in {HEAVY!r} or m.startswith("phoenix.client")}})
    print("HEAVY:", heavy)
""")
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:phoenix", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*HEAVY: ?]*"])
