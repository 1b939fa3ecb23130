"""--phoenix-offline: the last local snapshot of a dataset and its evaluators, no server."""

from __future__ import annotations

import json
from typing import Any

import pytest

RUN = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "-p", "no:cacheprovider")


def test_an_offline_run_replays_the_last_snapshot_with_no_server(
        pytester: pytest.Pytester, qa_app: None, monkeypatch: pytest.MonkeyPatch,
        qa_dataset: dict[str, Any]) -> None:
    online = pytester.runpytest(*RUN, "--phoenix-no-upload", "-v")
    online.assert_outcomes(passed=2, failed=2)
    snapshots = list((pytester.path / ".phoenix-evals" / "snapshots" / "qa").glob("*.json"))
    assert len(snapshots) == 1
    # Nobody listens on port 9: any request to a server would fail the run.
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", "http://127.0.0.1:9")
    offline = pytester.runpytest(*RUN, "--phoenix-offline", "-v")
    offline.assert_outcomes(passed=2, failed=2)
    offline.stdout.fnmatch_lines([
        "phoenix-evals: dataset(s) qa; the local snapshot (qa version * saved *); upload off "
        "(--phoenix-offline)"])
    # The same cases, with the same attached evaluators and verdicts.
    cases = [line for line in online.outlines if line.startswith("phoenix:qa::")]
    assert [line for line in offline.outlines if line.startswith("phoenix:qa::")] == cases
    offline.stdout.fnmatch_lines(["edit_distance*8*RECORDED*",
                                  "exact_match    answer_exact     4        50.0%        0.5"])
    # A version kept, by the short form; a split never run online is not in the snapshot.
    version = json.loads(snapshots[0].read_text())["version_id"]
    again = pytester.runpytest(f"--phoenix-dataset=qa@{version}",
                               "--phoenix-task=qa_app:answer", "--phoenix-offline")
    again.assert_outcomes(passed=2, failed=2)
    split = pytester.runpytest(f"--phoenix-dataset=qa@{version}:geo",
                               "--phoenix-task=qa_app:answer", "--phoenix-offline")
    assert split.ret == pytest.ExitCode.USAGE_ERROR
    split.stderr.fnmatch_lines(["ERROR: the local snapshot (qa version *) has no answer for "
                                "loading the examples of dataset 'qa': run once without "
                                "--phoenix-offline, with the same options, to refresh it"])


def test_offline_without_a_snapshot_says_how_to_take_one(pytester: pytest.Pytester,
                                                         qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-offline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-offline: no local snapshot of dataset 'qa' "
                                 "in */.phoenix-evals/snapshots; run once without "
                                 "--phoenix-offline to take one"])
    pytester.runpytest(*RUN, "--phoenix-no-upload")
    result = pytester.runpytest(*RUN, "--phoenix-offline", "--phoenix-dataset-version=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no local snapshot of dataset 'qa' at version 'nope' in *; "
                                 "versions kept: *"])
