"""Baselines and regating against experiments really in Phoenix: compare with the dataset's
baseline, the previous run or the last run on main; fail on a regression; re-decide an old
experiment with new gates, calling no task and no judge."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any, cast

import pytest
from pytest_phoenix_evals._core.baseline import results_of
from pytest_phoenix_evals._core.types import Example, Group
from pytest_phoenix_evals._phoenix.gateway import LoadedDataset
from pytest_phoenix_evals._run.baselines import Baselines

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
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        bl_dataset: dict[str, Any]) -> None:
    # An experiment of its own, so that the dataset has one whatever ran before on 'bl'.
    admin.http.post(f"/v1/datasets/{bl_dataset['id']}/experiments",
                    json={"name": "bl-exists"}).raise_for_status()
    result = _run(pytester, GOOD, "--phoenix-baseline=no-such-run")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-baseline: no experiment 'no-such-run' on "
                                 "dataset 'bl'; the latest: *bl-exists*"])
    result = pytester.runpytest("--phoenix-max-regression=0.1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*a regression is measured against a baseline: add "
                                 "--phoenix-baseline=EXPERIMENT*"])


def test_an_experiment_older_than_the_newest_fifty_is_found_by_name(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    # The server lists 50 experiments a page unless asked: the rest must be paged to.
    dataset_id = admin.create_dataset("many-experiments", EXAMPLES[:1])
    for n in range(52):
        admin.http.post(f"/v1/datasets/{dataset_id}/experiments",
                        json={"name": "the-old-one" if n == 0 else f"later-{n}"}
                        ).raise_for_status()
    result = pytester.runpytest_subprocess("--phoenix-regate=the-old-one",
                                           "--phoenix-dataset=many-experiments",
                                           "-p", "no:cacheprovider")
    assert "regating experiment 'the-old-one'" in result.stdout.str(), result.stderr.str()


# --- a comparison that compares nothing ----------------------------------------------------

def test_a_baseline_that_shares_no_example_fails_the_regression_check(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    """The examples were replaced since the baseline ran (same questions, new example ids): no
    example is in both runs. The table said "pass" for every annotation and the run exited 0;
    now it says that nothing was compared and why, and the regression check fails."""
    dataset_id = admin.create_dataset("bl-moved", EXAMPLES[:2])
    admin.attach_builtin(dataset_id, "exact_match", "answer_exact",
                         {"expected": "$.reference.answer", "actual": "$.output"})

    def run(*args: str) -> pytest.RunResult:
        pytester.makepyfile(app=GOOD + APP)
        return pytester.runpytest_subprocess("--phoenix-dataset=bl-moved",
                                             "--phoenix-task=app:answer",
                                             "-p", "no:cacheprovider", *args)

    run("--phoenix-experiment-name=moved-before").assert_outcomes(passed=2)
    before = _experiment(admin, dataset_id, "moved-before")
    listed = admin.http.get(f"/v1/datasets/{dataset_id}/examples").json()["data"]
    admin.graphql("mutation($input: DeleteDatasetExamplesInput!) { deleteDatasetExamples("
                  "input: $input) { dataset { id } } }",
                  input={"exampleIds": [e["id"] for e in listed["examples"]]})
    admin.http.post("/v1/datasets/upload", params={"sync": "true"}, json={
        "action": "append", "name": "bl-moved",
        "inputs": [e["input"] for e in EXAMPLES[:2]],
        "outputs": [e["output"] for e in EXAMPLES[:2]],
        "metadata": [e["metadata"] for e in EXAMPLES[:2]]}).raise_for_status()

    now = run("--phoenix-baseline=moved-before", "--phoenix-max-regression=0.05")
    now.assert_outcomes(passed=2)
    assert now.ret == pytest.ExitCode.TESTS_FAILED
    now.stdout.fnmatch_lines([
        f"bl-moved: nothing was compared with baseline moved-before ({before['id']}): the "
        f"baseline shares no example with this run (it ran on dataset version "
        f"{before['dataset_version_id']}, this run on *)",
        "  regression check: FAIL (--phoenix-max-regression): with nothing compared, no "
        "regression was measured",
        "  side by side in Phoenix: */compare?experimentId=*&experimentId=*",
    ])
    assert "annotation" not in now.stdout.str().split("nothing was compared")[1]  # no table


GROUP = Group(kind="dataset", key="bl-unit", label="bl", dataset_id="D", dataset_name="bl",
              version_id="V2")


def _example(number: int) -> Example:
    return Example(id=f"E{number}", input={"question": f"q{number}"}, reference={},
                   metadata={}, dataset_name="bl", dataset_id="D", version_id="V2")


def _runs(verdicts: dict[int, dict[str, bool]]) -> list[dict[str, Any]]:
    """Runs as the gateway reads them: example number -> annotation -> passed."""
    return [{"example_id": f"E{number}", "repetition": 1, "error": None,
             "annotations": [{"name": name, "label": str(passed), "score": float(passed),
                              "explanation": None, "error": None, "annotatorKind": "CODE"}
                             for name, passed in annotations.items()]}
            for number, annotations in verdicts.items()]


class _Gateway:
    """What Baselines reads from the gateway: the baseline experiment and its runs."""

    def __init__(self, runs: list[dict[str, Any]], version: str) -> None:
        self.runs, self.version = runs, version

    def find_experiment(self, spec: str, dataset_id: str, dataset_name: str,
                        exclude: Any = ()) -> dict[str, Any]:
        return {"id": "EXP1", "name": "old"}

    def experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        return self.runs

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return {"id": experiment_id, "dataset_version_id": self.version}

    def experiment_url(self, dataset_id: str, experiment_id: str) -> str:
        return f"http://phoenix/datasets/{dataset_id}/compare?experimentId={experiment_id}"


def _compare(baseline: dict[int, dict[str, bool]], now: dict[int, dict[str, bool]],
             max_regression: float | None, version: str = "V2") -> tuple[bool, list[str]]:
    examples = [_example(n) for n in (3, 4)]  # this run's dataset version: E3 and E4
    baselines = Baselines(cast(Any, _Gateway(_runs(baseline), version)), "old", max_regression,
                          {})
    baselines.load(GROUP)
    current = results_of(_runs(now), examples, {}, {}, GROUP)
    loaded = LoadedDataset(id="D", name="bl", version_id="V2", splits=(), examples=examples)
    return baselines.compare(current, lambda group: loaded, lambda group: [], None)


NOW = {3: {"exact": True}, 4: {"exact": False}}


@pytest.mark.parametrize(("baseline", "version", "why"), [
    ({1: {"exact": True}, 2: {"exact": True}}, "V1",
     "the baseline shares no example with this run (it ran on dataset version V1, this run "
     "on V2)"),
    ({}, "V2", "the baseline experiment has no runs"),
    ({3: {"other": True}, 4: {"other": False}}, "V2",
     "no annotation has a pass/fail verdict in both runs on the 2 example(s) they share (this "
     "run: exact; the baseline: other)"),
])
@pytest.mark.parametrize("max_regression", [0.05, None])
def test_a_comparison_of_nothing_says_why_and_fails_the_check(
        baseline: dict[int, dict[str, bool]], version: str, why: str,
        max_regression: float | None) -> None:
    ok, lines = _compare(baseline, NOW, max_regression, version)
    assert lines[1] == f"bl: nothing was compared with baseline old (EXP1): {why}"
    failing = ["  regression check: FAIL (--phoenix-max-regression): with nothing compared, no "
               "regression was measured"] if max_regression is not None else []
    assert lines[2:] == [*failing, "  side by side in Phoenix: http://phoenix/datasets/D/"
                                   "compare?experimentId=EXP1"]
    assert ok is (max_regression is None)  # without a limit the comparison only informs


def test_other_examples_of_the_same_version_are_named_so() -> None:
    ok, lines = _compare({3: {"exact": True}}, {4: {"exact": True}}, 0.05)
    assert not ok
    assert lines[1].endswith("the baseline shares no example with this run (both ran on "
                             "dataset version V2, on other examples)")


def test_an_annotation_the_baseline_lacks_is_not_compared_rather_than_passed() -> None:
    ok, lines = _compare({3: {"exact": True}, 4: {"exact": False}},
                         {3: {"exact": True, "new": True}, 4: {"exact": False, "new": False}},
                         0.05)
    assert ok  # exact did not move; new has nothing to compare with
    [new_row] = [line for line in lines if line.startswith("new ")]
    assert new_row.split()[1:] == ["0", "-", "-", "-", "0", "0", "-"]
    assert ("  not compared: new (the baseline has no pass/fail verdict of it on an example "
            "of this run)") in lines


def test_a_run_with_no_case_of_the_dataset_says_so_and_does_not_fail() -> None:
    # For example -k that deselected every case: there is nothing that could have regressed.
    ok, lines = _compare({3: {"exact": True}}, {}, 0.05)
    assert ok
    assert lines[1:] == ["bl: nothing was compared with baseline old (EXP1): no case of this "
                         "dataset ran in this run",
                         "  side by side in Phoenix: http://phoenix/datasets/D/compare?"
                         "experimentId=EXP1"]


# --- significance: did this change really regress? -----------------------------------------

SIG_EXAMPLES = [{"input": {"question": f"q{i}"}, "output": {"answer": f"a{i}"}, "metadata": {}}
                for i in range(8)]


def _sig_app(wrong: int) -> str:
    """A task that answers the first ``wrong`` questions wrongly, the rest rightly."""
    return (f"WRONG = {wrong}\n\ndef answer(input):\n    i = int(input['question'][1:])\n"
            f"    return 'nope' if i < WRONG else f'a{{i}}'\n")


def test_a_regression_fails_only_when_the_paired_test_finds_it(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    """Against the same baseline, two wrong answers out of eight (b=2, c=0: p=0.25) are not a
    significant regression and pass; six (p=1/64) are, and fail the session, with b, c, the
    change, its interval and p in the terminal and the markdown summary."""
    name = f"sig-{uuid.uuid4().hex[:8]}"
    dataset_id = admin.create_dataset(name, SIG_EXAMPLES)
    admin.attach_builtin(dataset_id, "exact_match", "answer_exact",
                         {"expected": "$.reference.answer", "actual": "$.output"})

    def run(wrong: int, *args: str) -> pytest.RunResult:
        pytester.makepyfile(sig_app=_sig_app(wrong))
        return pytester.runpytest_subprocess(f"--phoenix-dataset={name}",
                                             "--phoenix-task=sig_app:answer",
                                             "-p", "no:cacheprovider", *args)

    good = run(0, f"--phoenix-experiment-name={name}-good")
    good.assert_outcomes(passed=8)
    gated = (f"--phoenix-baseline={name}-good", "--phoenix-max-regression=significant",
             "--phoenix-fail-under=exact_match=0.2")

    slight = run(2, f"--phoenix-experiment-name={name}-slight", *gated,
                 "--phoenix-summary-md=slight.md")
    assert slight.ret == pytest.ExitCode.OK, slight.stdout.str()
    slight.stdout.fnmatch_lines([
        f"{name}: compared with baseline {name}-good (*), a regression fails the run when "
        f"the paired test finds it (p < 0.05)",
        "exact_match*8*100.0%*75.0%*-25.0 pts*2*0*pass",
        "  example by example (b: pass to fail, c: fail to pass; 95% intervals by a paired "
        "bootstrap over examples; p: one-sided exact McNemar test of a regression):",
        "  exact_match*2*0*-25.0 pts [[]-*, +0.0]*0.25*-0.25 [[]-*, +0]",  # ([[] is "[")
    ])
    markdown = (pytester.path / "slight.md").read_text()
    assert "p (regression)" in markdown and "-25.0 pts [" in markdown

    big = run(6, f"--phoenix-experiment-name={name}-big", *gated)
    assert big.ret == pytest.ExitCode.TESTS_FAILED, big.stdout.str()
    big.stdout.fnmatch_lines([
        "exact_match*8*100.0%*25.0%*-75.0 pts*6*0*FAIL",
        "  exact_match*6*0*-75.0 pts [[]-*, -*]*0.0156*",
    ])
    # The gate alone would pass (25 % >= 20 %): the significant regression failed the run,
    # and the summary says so.
    big.stdout.fnmatch_lines(["exit status 1: a regression against the baseline "
                              "(--phoenix-max-regression)",
                              "*exact_match=0.2*25.0%*pass*"])

    # The level decides: p = 1/64 is not below 0.01; p = 0.25 is below 0.3.
    stricter = run(6, f"--phoenix-experiment-name={name}-a01", *gated, "--phoenix-alpha=0.01")
    assert stricter.ret == pytest.ExitCode.OK, stricter.stdout.str()
    looser = run(2, f"--phoenix-experiment-name={name}-a30", *gated, "--phoenix-alpha=0.3")
    assert looser.ret == pytest.ExitCode.TESTS_FAILED, looser.stdout.str()
