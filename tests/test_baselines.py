"""Baselines and regating against experiments really in Phoenix: compare with the dataset's
baseline, the previous run or the last run on main; fail on a regression; re-decide an old
experiment with new gates, calling no task and no judge."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin

EXAMPLES = [
    {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"},
     "metadata": {}},
    {"input": {"question": "What is 2 + 2?"}, "output": {"answer": "4"}, "metadata": {}},
    {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"},
     "metadata": {}},
    {"input": {"question": "What is the capital of Spain?"}, "output": {"answer": "Madrid"},
     "metadata": {}},
]
GOOD = ("ANSWERS = {'What is the capital of France?': 'Paris', 'What is 2 + 2?': '4', "
        "'Who wrote Hamlet?': 'Shakespeare', 'What is the capital of Spain?': 'Madrid'}\n")
BAD = GOOD.replace("'Shakespeare'", "'William Shakespeare'").replace("'Madrid'", "'Barcelona'")
APP = "\ndef answer(input):\n    return ANSWERS[input['question']]\n"


@pytest.fixture(scope="module")
def bl_dataset(admin: PhoenixAdmin) -> dict[str, Any]:
    dataset_id = admin.create_dataset("bl", EXAMPLES)
    mapping = {"expected": "$.reference.answer", "actual": "$.output"}
    admin.attach_builtin(dataset_id, "exact_match", "answer_exact", mapping)
    admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                         {"text": "$.output", "words": "$.reference.answer"})
    return {"id": dataset_id}


def _run(pytester: pytest.Pytester, app: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(app=app + APP)
    return pytester.runpytest_subprocess("--phoenix-dataset=bl", "--phoenix-task=app:answer",
                                         "-p", "no:cacheprovider", *args)


def _experiment(admin: PhoenixAdmin, dataset_id: str, name: str) -> dict[str, Any]:
    return next(e for e in admin.experiments(dataset_id) if e.get("name") == name)


def test_baselines_regressions_and_regating(pytester: pytest.Pytester, phoenix_env: str,
                                            admin: PhoenixAdmin,
                                            bl_dataset: dict[str, Any]) -> None:
    good = _run(pytester, GOOD, "--phoenix-experiment-name=bl-good", "--phoenix-set-baseline")
    good.assert_outcomes(passed=4)
    good.stdout.fnmatch_lines(["bl: this run is now the dataset's baseline experiment"])
    good_id = _experiment(admin, bl_dataset["id"], "bl-good")["id"]

    bad = _run(pytester, BAD, "--phoenix-experiment-name=bl-bad", "--phoenix-baseline=dataset",
               "--phoenix-max-regression=0.05")
    bad.assert_outcomes(passed=2, failed=2)
    assert bad.ret == pytest.ExitCode.TESTS_FAILED
    bad_id = _experiment(admin, bl_dataset["id"], "bl-bad")["id"]
    bad.stdout.fnmatch_lines([
        f"bl: compared with baseline bl-good ({good_id}), at most 5 pts of regression allowed",
        "annotation*examples*baseline*now*change*regressed*improved*result",
        "exact_match*4*100.0%*50.0%*-50.0 pts*2*0*FAIL",
        "contains*4*100.0%*75.0%*-25.0 pts*1*0*FAIL",
        "  regressed on exact_match: ex*-who-wrote-hamlet, ex*-what-is-the-capital-of-spain",
        "  regressed on contains: ex*-what-is-the-capital-of-spain",
        f"  side by side in Phoenix: */compare?experimentId={good_id}&experimentId={bad_id}",
    ])

    # 'previous' is the latest experiment before this run: bl-bad. Without a limit the
    # comparison informs and the cases decide.
    better = _run(pytester, GOOD, "--phoenix-experiment-name=bl-better",
                  "--phoenix-baseline=previous")
    assert better.ret == pytest.ExitCode.OK
    better.stdout.fnmatch_lines([
        f"bl: compared with baseline bl-bad ({bad_id})",
        "*",
        "exact_match*4*50.0%*100.0%*+50.0 pts*0*2*",
        "  improved on exact_match: ex*-who-wrote-hamlet, ex*-what-is-the-capital-of-spain",
    ])

    # Regate bl-bad with new gates: no task runs (there is none on this command line).
    result = pytester.runpytest_subprocess(f"--phoenix-regate={bad_id}",
                                           "--phoenix-fail-under=contains=0.75")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        f"phoenix-evals: regating experiment 'bl-bad' ({bad_id}) with 4 runs; no task or "
        f"judge called",
        "bl: 4 cases, 2 passed, 2 failed",
        "*contains=0.75*bl*4*75.0%*pass*",
    ])
    result = pytester.runpytest_subprocess("--phoenix-regate=bl-bad", "--phoenix-dataset=bl",
                                           "--phoenix-fail-under=exact_match=0.9",
                                           "--phoenix-baseline=bl-good")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"bl: compared with baseline bl-good ({good_id})"])
    result.stdout.fnmatch_lines(["*exact_match=0.9*bl*4*50.0%*FAIL*"])


def test_main_is_the_latest_run_on_the_main_branch(pytester: pytest.Pytester, phoenix_env: str,
                                                   admin: PhoenixAdmin,
                                                   bl_dataset: dict[str, Any]) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=pytester.path, check=True, capture_output=True)

    result = _run(pytester, GOOD, "--phoenix-baseline=main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR or "main" in result.stderr.str()
    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q",
        "--allow-empty", "-m", "start")
    on_main = _run(pytester, GOOD, "--phoenix-experiment-name=bl-on-main")
    on_main.assert_outcomes(passed=4)
    main_id = _experiment(admin, bl_dataset["id"], "bl-on-main")["id"]
    git("checkout", "-q", "-b", "feature")
    _run(pytester, GOOD, "--phoenix-experiment-name=bl-on-feature")
    result = _run(pytester, BAD, "--phoenix-baseline=main")
    result.stdout.fnmatch_lines([f"bl: compared with baseline bl-on-main ({main_id})"])


def test_a_baseline_that_does_not_exist_is_a_usage_error(
        pytester: pytest.Pytester, phoenix_env: str, bl_dataset: dict[str, Any]) -> None:
    result = _run(pytester, GOOD, "--phoenix-baseline=no-such-run")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-baseline: no experiment 'no-such-run' on "
                                 "dataset 'bl'; the latest: *"])
    result = pytester.runpytest("--phoenix-max-regression=0.1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*a regression is measured against a baseline: add "
                                 "--phoenix-baseline=EXPERIMENT*"])
