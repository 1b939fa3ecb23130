"""Files for CI: JUnit properties, the results table, the markdown summary (dataset 'qa',
task qa_app:answer, against a real Phoenix)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

RUN = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "-p", "no:cacheprovider")


def _properties(xml_path: Any) -> dict[str, dict[str, str]]:
    root = ET.parse(xml_path).getroot()
    return {case.get("name"): {p.get("name"): p.get("value")
                               for p in case.iter("property")}
            for case in root.iter("testcase")}


def test_junit_xml_carries_labels_scores_verdicts_and_links(
        pytester: pytest.Pytester, qa_app: None, qa_dataset: dict[str, Any],
        phoenix_env: str) -> None:
    result = pytester.runpytest(*RUN, "--junitxml=report.xml",
                                "--phoenix-experiment-name=junit-check")
    result.assert_outcomes(passed=2, failed=2)
    # The experiment's URL is printed before the first case runs.
    result.stdout.fnmatch_lines([
        f"phoenix-evals: experiment for qa: {phoenix_env}/datasets/{qa_dataset['id']}"
        f"/compare?experimentId=*",
        "phoenix:qa *",
    ])
    props = _properties(pytester.path / "report.xml")
    spain = next(v for k, v in props.items() if k.endswith("spain"))
    assert spain["phoenix.dataset"] == "qa"
    assert spain["phoenix.exact_match.label"] == "false"
    assert spain["phoenix.exact_match.verdict"] == "fail"
    assert spain["phoenix.edit_distance.score"] == "8"
    assert spain["phoenix.edit_distance.verdict"] == "recorded"
    assert spain["phoenix.experiment_url"].startswith(
        f"{phoenix_env}/datasets/{qa_dataset['id']}/compare?experimentId=")
    assert len(spain["phoenix.trace_id"]) == 32
    france = next(v for k, v in props.items() if k.endswith("france"))
    assert france["phoenix.contains.verdict"] == "pass"


def test_without_junit_xml_no_properties_are_kept(pytester: pytest.Pytester,
                                                  qa_app: None) -> None:
    """The properties are for JUnit XML only: without it no report carries them (pytest keeps
    every report to the end, so thousands of cases would hold them all)."""
    pytester.makeconftest("""
        import json

        def pytest_runtest_logreport(report):
            if report.when == "call":
                with open("properties.jsonl", "a") as out:
                    out.write(json.dumps(report.user_properties) + "\\n")
    """)
    result = pytester.runpytest(*RUN, "--phoenix-no-upload")
    result.assert_outcomes(passed=2, failed=2)
    kept = [json.loads(line) for line in
            (pytester.path / "properties.jsonl").read_text().splitlines()]
    assert kept == [[], [], [], []]
    result = pytester.runpytest(*RUN, "--phoenix-no-upload", "--junitxml=report.xml",
                                "--phoenix-repetitions=2")
    result.assert_outcomes(passed=2, failed=2)
    props = _properties(pytester.path / "report.xml")
    spain = next(v for k, v in props.items() if k.endswith("spain"))
    assert spain["phoenix.runs_passed"] == "0/2"
    assert spain["phoenix.exact_match.verdict"] == "fail"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_results_file_holds_one_row_per_annotation(pytester: pytest.Pytester, qa_app: None,
                                                   suffix: str) -> None:
    import pandas as pd

    path = pytester.path / "out" / f"results{suffix}"
    result = pytester.runpytest_subprocess(*RUN, "--phoenix-no-upload",
                                           f"--phoenix-results={path}")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([f"results: {path} (12 rows)"])
    frame = {".csv": pd.read_csv, ".parquet": pd.read_parquet,
             ".jsonl": lambda p: pd.read_json(p, lines=True)}[suffix](path)
    assert len(frame) == 12  # 4 cases x 3 annotations
    assert sorted(frame["annotation"].unique()) == ["contains", "edit_distance", "exact_match"]
    spain = frame[frame["case_id"].str.endswith("spain")].set_index("annotation")
    assert json.loads(spain.loc["exact_match", "output"]) == "Barcelona"
    assert json.loads(spain.loc["exact_match", "reference"]) == {"answer": "Madrid"}
    assert spain.loc["exact_match", "verdict"] == "fail"
    assert spain.loc["edit_distance", "score"] == 8
    assert not spain["passed"].any()
    assert frame[frame["case_id"].str.endswith("france")]["passed"].all()


def test_results_from_xdist_workers_are_gathered(pytester: pytest.Pytester, qa_app: None) -> None:
    import pandas as pd

    result = pytester.runpytest_subprocess(*RUN, "--phoenix-no-upload", "-n", "2",
                                           "--phoenix-results=r.jsonl")
    result.assert_outcomes(passed=2, failed=2)
    frame = pd.read_json(pytester.path / "r.jsonl", lines=True)
    assert frame["case_id"].nunique() == 4
    assert len(frame) == 12


def test_a_results_file_of_unknown_format_is_refused_before_anything_runs(
        pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-no-upload", "--phoenix-results=out.xlsx")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-results: 'out.xlsx': the results file must "
                                 "end in .csv, .parquet, .jsonl (the format follows the suffix)"])


def test_markdown_summary_to_a_file_and_the_github_step_summary(
        pytester: pytest.Pytester, qa_app: None, monkeypatch: pytest.MonkeyPatch) -> None:
    step = pytester.path / "step_summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest(*RUN, "--phoenix-summary-md=reports/summary.md",
                                "--phoenix-fail-under=contains=0.75")
    assert result.ret == pytest.ExitCode.OK
    text = (pytester.path / "reports" / "summary.md").read_text()
    assert step.read_text() == "earlier step\n" + text
    lines = text.splitlines()
    assert lines[0] == "## Phoenix evals"
    assert "**PASSED**: 4 cases, 2 failed; gates: all 1 passed" in lines
    assert "| `contains=0.75` | qa | 4 | 75.0% | pass rate of contains >= 75% | pass |  |" in lines
    assert "qa: 4 cases, 2 passed, 2 failed" in lines  # the terminal summary, in a code block
    assert any(line.startswith("- qa: [experiment in Phoenix](http") for line in lines)
    assert "### Failing cases (2)" in lines
    spain = next(line for line in lines if "spain" in line and line.startswith("| `"))
    assert "exact_match: false" in spain and "contains: false" in spain
    result.stdout.fnmatch_lines(["markdown summary: reports/summary.md",
                                 f"markdown summary: {step}"])
