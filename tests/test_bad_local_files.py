"""Bad local files and odd inputs end in a clear message naming the file or value, never a
traceback: a judge cache that is not a database, snapshots of the wrong shape, dataset names
that are not file names, an output nested too deeply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge

QA = [{"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"},
       "metadata": {}}]


def test_a_judge_cache_that_is_not_a_database_only_misses(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        judged_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    pytester.makeconftest('''
        from pytest_phoenix_evals import qa_correctness

        def pytest_phoenix_evals_evaluators(config, dataset):
            return [qa_correctness(answer="$.output", reference="$.reference.answer")]
    ''')
    cache = pytester.path / ".phoenix-evals" / "judge-cache.sqlite"
    cache.parent.mkdir()
    cache.write_bytes(b"this is not a database, just some text" * 100)
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "--phoenix-cache", "-p",
                                "no:cacheprovider", "-k", "france")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["the judge cache *judge-cache.sqlite cannot be used "
                                 "(DatabaseError: *); every judge was called (delete the file "
                                 "to start a new cache)"])
    assert len(judge.requests) == 1  # asked, not failed
    assert "Traceback" not in result.stdout.str()


def test_datasets_whose_names_are_no_file_names_run_offline(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        monkeypatch: pytest.MonkeyPatch) -> None:
    long_name = "a-dataset-name-" + "x" * 240
    for name in ("x@y:z", long_name):
        admin.create_dataset(name, QA)
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    pytester.makeconftest('''
        def pytest_phoenix_evals_evaluators(config, dataset):
            return [lambda output: output == "Paris"]
    ''')
    for name in ("x@y:z", long_name):
        args = (f"--phoenix-dataset={name}", "--phoenix-task=app:answer", "-p",
                "no:cacheprovider")
        online = pytester.runpytest(*args, "--phoenix-no-upload")
        online.assert_outcomes(passed=1)
        monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", "http://127.0.0.1:9")
        offline = pytester.runpytest(*args, "--phoenix-offline")
        offline.assert_outcomes(passed=1)
        monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix_env)


def test_a_snapshot_of_the_wrong_shape_names_the_fix(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    folder = pytester.path / ".phoenix-evals" / "snapshots" / "qa"
    folder.mkdir(parents=True)
    (folder / "v1.json").write_text(json.dumps({"something": "else"}))
    (folder / "latest").write_text("v1")
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "--phoenix-offline", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --phoenix-offline: the local snapshot of dataset 'qa' "
                                 "is not one this plugin wrote (its fields are missing): delete "
                                 "*snapshots*qa and run once without --phoenix-offline"])


def test_an_output_nested_too_deeply_is_a_task_error_that_says_so(
        pytester: pytest.Pytester, phoenix_env: str, judged_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app='''
        def answer(input):
            output = []
            for _ in range(5000):
                output = [output]
            return output
    ''')
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "-p", "no:cacheprovider", "-k", "france")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["task error: the task returned a list nested too deeply to "
                                 "store (JSON this deep cannot be written or read back): "
                                 "flatten it"])
    assert "RecursionError" not in result.stdout.str()
