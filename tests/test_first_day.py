"""What a new user meets on the first day: experiment names that tell runs apart, a partial run
that says so, a missing judge key said once before anything runs, and attached evaluators left
out on request."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_phoenix_evals._run.sinks.experiment import default_experiment_name

from phoenix_admin import PhoenixAdmin


def test_default_names_tell_runs_apart() -> None:
    at = datetime(2026, 12, 2, 13, 58, 15, 250_999, tzinfo=UTC)
    ran = "my_app.qa:answer on qa-golden v3"
    clean = {"git_commit": "0123456789abcdef", "git_branch": "main", "git_dirty": "false"}
    assert default_experiment_name(ran, clean, at) == \
        "my_app.qa:answer on qa-golden v3 main@01234567 2026-12-02 13:58:15.250Z"
    dirty = {**clean, "git_dirty": "true"}
    assert default_experiment_name(ran, dirty, at) == \
        "my_app.qa:answer on qa-golden v3 main@01234567+dirty 2026-12-02 13:58:15.250Z"
    assert default_experiment_name(ran, {}, at) == \
        "my_app.qa:answer on qa-golden v3 2026-12-02 13:58:15.250Z"  # no git


def test_two_runs_get_two_names(pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
                                qa_dataset: dict[str, Any]) -> None:
    before = {e["id"] for e in admin.experiments(qa_dataset["id"])}
    for _ in range(2):
        pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                           "-p", "no:cacheprovider")
    made = [e for e in admin.experiments(qa_dataset["id"]) if e["id"] not in before]
    assert len(made) == 2
    assert made[0]["name"] != made[1]["name"]
    assert all(e["name"].startswith("qa_app:answer on qa v") for e in made)


def test_outside_git_an_experiment_is_named_by_what_ran_and_described_by_its_command(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_phoenix_evals._core.naming import row_id

    # A project of one's own that is no git repository (nor inside one).
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(pytester.path.parent))
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=pytester.path,
                          capture_output=True).returncode != 0
    pytester.makeconftest("""
def pytest_phoenix_evals_task(config, dataset):
    from qa_app import answer
    return answer
""")
    before = {e["id"] for e in admin.experiments(qa_dataset["id"])}
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-judge-base-url=http://user:s3cr3t-value-0123456789"
                                "@localhost:1/v1", "-k", "spain", "-p", "no:cacheprovider")
    assert result.ret in (0, 1), result.stdout.str()
    made = [e for e in admin.experiments(qa_dataset["id"]) if e["id"] not in before]
    assert len(made) == 1
    experiment = made[0]
    assert "git_commit" not in experiment["metadata"]
    version = row_id(experiment["dataset_version_id"])
    # What ran, not "pytest <time>": the hook's task by its function, the dataset's version.
    assert experiment["name"].startswith(f"qa_app:answer on qa v{version} "), experiment["name"]
    # The description is the command line, with its secret masked.
    description = experiment["description"]
    assert description.startswith("pytest --phoenix-dataset=qa"), description
    assert "-k spain" in description
    assert "s3cr3t-value" not in description and "--phoenix-judge-base-url=" in description


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_partial_run_says_so_in_the_summary_and_the_experiment(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any], xdist: list[str]) -> None:
    # Under xdist each worker runs a share of the cases, which is not a partial run; the
    # controller makes the experiment before any worker has collected, and notes the
    # selection in it afterwards.
    run = pytester.runpytest_subprocess if xdist else pytester.runpytest
    name = f"partial-k{len(xdist)}"
    result = run("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "-k", "spain or france",
                 f"--phoenix-experiment-name={name}", "-p", "no:cacheprovider", *xdist)
    result.stdout.fnmatch_lines(["qa: a partial run: 2 of 4 examples selected "
                                 "(-k 'spain or france'); Phoenix shows the others as not run in "
                                 "this experiment"])
    made = next(e for e in admin.experiments(qa_dataset["id"]) if e["name"] == name)
    assert made["metadata"]["partial_run"] == {"cases": 2, "examples": 4,
                                               "selected_by": "-k 'spain or france'"}
    whole = run("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                f"--phoenix-experiment-name=whole{len(xdist)}", "-p", "no:cacheprovider",
                *xdist)
    assert "partial run" not in whole.stdout.str()
    made = next(e for e in admin.experiments(qa_dataset["id"])
                if e["name"] == f"whole{len(xdist)}")
    assert "partial_run" not in made["metadata"]


def test_attached_evaluators_can_be_left_out_and_the_experiment_says_which(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                                "--phoenix-skip-evaluators=edit_distance,mentions_answer",
                                "--phoenix-experiment-name=skipping", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "exact_match" in out and "edit_distance" not in out and "contains" not in out
    made = next(e for e in admin.experiments(qa_dataset["id"]) if e["name"] == "skipping")
    assert made["metadata"]["skipped_evaluators"] == ["edit_distance", "mentions_answer"]
    assert {a["name"] for a in admin.annotations(made["id"])} == {"exact_match"}
    unknown = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                                 "--phoenix-skip-evaluators=grounded", "-p", "no:cacheprovider")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["ERROR: --phoenix-skip-evaluators: grounded is not an "
                                  "evaluator of qa (its evaluators: answer_exact, "
                                  "edit_distance, mentions_answer)"])


def test_shards_of_a_run_record_into_one_experiment_and_are_gated_together(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    import subprocess
    import sys
    import uuid

    run = uuid.uuid4().hex[:8]
    args = [sys.executable, "-m", "pytest", "--phoenix-dataset=qa",
            "--phoenix-task=qa_app:answer", f"--phoenix-run-id={run}", "--splits", "2",
            "-p", "no:cacheprovider", "-q"]
    # The two shards of a job matrix (pytest-split), started at once: both may look for the
    # run's experiment before either made it; one experiment remains all the same.
    shards = [subprocess.Popen([*args, "--group", str(group)], cwd=pytester.path,
                               stdout=subprocess.PIPE, text=True) for group in (1, 2)]
    outputs = [shard.communicate(timeout=300)[0] for shard in shards]
    assert all("2 deselected" in out for out in outputs), outputs  # two cases each
    made = [e for e in admin.experiments(qa_dataset["id"])
            if (e.get("metadata") or {}).get("run_id") == run]
    assert len(made) == 1, made
    assert made[0]["name"].endswith(f"run {run}")
    assert len(admin.runs(made[0]["id"])) == 4  # both shards' cases, once each
    assert not any("partial run" in out for out in outputs)

    # The last step of the job decides the gates over the whole run, calling nothing.
    lenient = pytester.runpytest("--phoenix-dataset=qa", f"--phoenix-run-id={run}",
                                 "--phoenix-regate=run", "--phoenix-fail-under=exact_match=0.5",
                                 "-p", "no:cacheprovider")
    assert lenient.ret == 0, lenient.stdout.str()
    assert "with 4 runs" in lenient.stdout.str()
    strict = pytester.runpytest("--phoenix-dataset=qa", f"--phoenix-run-id={run}",
                                "--phoenix-regate=run", "--phoenix-fail-under=exact_match=0.75",
                                "-p", "no:cacheprovider")
    assert strict.ret == 1
