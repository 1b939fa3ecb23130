"""Mistakes users make: each gives one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin


def assert_clean_usage_error(result: pytest.RunResult, *lines: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(list(lines))
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output


def test_phoenix_unreachable_names_url_and_source(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.01,))
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=x:y")
    assert_clean_usage_error(
        result, "ERROR: cannot reach Phoenix at http://127.0.0.1:9 (from "
                "PHOENIX_COLLECTOR_ENDPOINT) while listing datasets: ConnectError*")
    # How to get a server: installing the plugin installs none.
    assert ("start one: 'pip install arize-phoenix' then 'phoenix serve', or 'docker run -p "
            "6006:6006 arizephoenix/phoenix' (installing this plugin installs no server; see "
            "docs/your-project.md)") in " ".join(result.stderr.str().split())


def test_phoenix_url_option_is_named_as_the_source(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", ())
    pytester.makeini("[pytest]\nphoenix_evals_url = http://user:pw@127.0.0.1:9\n")
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=x:y")
    assert_clean_usage_error(
        result, "ERROR: cannot reach Phoenix at http://***@127.0.0.1:9 (from ini "
                "phoenix_evals_url)*")
    assert "pw" not in result.stderr.str()


def test_unknown_dataset_lists_the_closest_names(pytester: pytest.Pytester, phoenix_env: str,
                                                 admin: PhoenixAdmin) -> None:
    # A dataset name of this test's own, misspelled: the closest names are those of whatever
    # datasets the server holds, and other tests add theirs to the same server ('qa-gold' was
    # closer to another test's 'plain-golden' than to 'qa').
    name = f"closest-{uuid.uuid4().hex[:8]}"
    admin.create_dataset(name, [{"input": {"question": "q"}, "output": {}, "metadata": {}}])
    typo = name[:-1]
    result = pytester.runpytest(f"--phoenix-dataset={typo}", "--phoenix-task=x:y")
    assert_clean_usage_error(result, f"ERROR: dataset '{typo}' not found in Phoenix at "
                                     f"* Closest datasets: {name}*")


def test_unknown_split_lists_the_splits(pytester: pytest.Pytester, phoenix_env: str,
                                        qa_dataset: dict[str, Any]) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-split=gep",
                                "--phoenix-task=x:y")
    assert_clean_usage_error(result, "ERROR: split 'gep' not found in dataset 'qa'. "
                                     "Closest splits: geo.")


def test_unknown_version_lists_the_versions(pytester: pytest.Pytester, phoenix_env: str,
                                            qa_dataset: dict[str, Any]) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=x:y",
                                "--phoenix-dataset-version=RGF0YXNldFZlcnNpb246OTk5")
    assert_clean_usage_error(result, "ERROR: version 'RGF0YXNldFZlcnNpb246OTk5' not found "
                                     "for dataset 'qa'. Newest versions:", "  RGF0*")


@pytest.mark.parametrize(("task", "message"), [
    ("nosuchmodule:answer", "ERROR: --phoenix-task 'nosuchmodule:answer': cannot import module "
                            "'nosuchmodule': No module named 'nosuchmodule'"),
    ("app:nope", "ERROR: --phoenix-task 'app:nope': module 'app' has no attribute 'nope'; "
                 "its functions: answer, two"),
    ("app:CONSTANT", "ERROR: --phoenix-task 'app:CONSTANT': 'CONSTANT' is a int, not a "
                     "callable"),
    ("app:two", "ERROR: --phoenix-task 'app:two': task 'two' has parameter(s) a, b that cannot "
                "be filled*"),
    ("broken:answer", "ERROR: --phoenix-task 'broken:answer': importing 'broken' raised "
                      "ZeroDivisionError: division by zero (*broken.py:1)"),
    ("answer", "ERROR: --phoenix-task: 'answer' is not of the form module:function*"),
])
def test_task_problems(pytester: pytest.Pytester, phoenix_env: str, qa_dataset: dict[str, Any],
                       task: str, message: str) -> None:
    pytester.makepyfile(app="CONSTANT = 1\ndef answer(input):\n    return 'x'\n"
                            "def two(a, b):\n    return a\n",
                        broken="1 / 0\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=qa", f"--phoenix-task={task}")
    assert_clean_usage_error(result, message)


def test_dataset_without_task_says_what_to_add(pytester: pytest.Pytester, phoenix_env: str,
                                               qa_dataset: dict[str, Any]) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa")
    assert_clean_usage_error(result, "ERROR: --phoenix-dataset 'qa' needs a task to run: pass "
                                     "--phoenix-task=module:function*")


def test_bad_threshold_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--phoenix-threshold=edit_distance<=x")
    assert_clean_usage_error(result, "ERROR: --phoenix-threshold: invalid threshold "
                                     "'edit_distance<=x': expected '<annotation name><op>"
                                     "<number>'*")
