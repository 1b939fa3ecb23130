"""Bad input fails well: a clear message naming the thing to fix, never a traceback from inside
the plugin, and the run still recorded (a real Phoenix)."""

from __future__ import annotations

from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin

HANGING_APP = """
import asyncio, time

async def slow_async(input):
    await asyncio.sleep(30)
    return "late"

def slow_sync(input):
    time.sleep(3)
    return "late"
"""


@pytest.mark.parametrize("task", ["slow_async", "slow_sync"])
def test_a_hanging_task_times_out_and_its_run_is_recorded(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any], task: str) -> None:
    pytester.makepyfile(app=HANGING_APP)
    pytester.syspathinsert()
    name = f"timeout-{task}"
    result = pytester.runpytest("--phoenix-dataset=judged", f"--phoenix-task=app:{task}",
                                "--phoenix-task-timeout=0.5", "--phoenix-concurrency=3",
                                f"--phoenix-experiment-name={name}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["task error: TaskTimeout: the task did not finish within "
                                 "0.5 s (--phoenix-task-timeout)"])
    assert result.duration < 15  # not 3 x 30 s
    experiment = next(e for e in admin.experiments(judged_dataset["id"])
                      if e.get("name") == name)
    runs = admin.runs(experiment["id"])
    assert len(runs) == 3 and all("TaskTimeout" in (r.get("error") or "") for r in runs)


def test_an_empty_dataset_says_so(pytester: pytest.Pytester, phoenix_env: str,
                                  admin: PhoenixAdmin) -> None:
    # The server refuses to create a dataset without examples; deleting its only example
    # makes a new, empty version.
    dataset_id = admin.create_dataset("emptied", [{"input": {"question": "q"},
                                                   "output": {}, "metadata": {}}])
    listed = admin.http.get(f"/v1/datasets/{dataset_id}/examples").json()["data"]
    admin.graphql("mutation($input: DeleteDatasetExamplesInput!) { deleteDatasetExamples("
                  "input: $input) { dataset { id } } }",
                  input={"exampleIds": [e["id"] for e in listed["examples"]]})
    pytester.makepyfile(app="def answer(input):\n    return 'x'\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=emptied", "--phoenix-task=app:answer",
                                "--phoenix-no-upload")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["phoenix-evals: dataset 'emptied' has no examples at version "
                                 "*: there is nothing to run"])


def test_output_with_invalid_unicode_is_a_case_error(pytester: pytest.Pytester, phoenix_env: str,
                                                     judged_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app="def answer(input):\n    return {'text': b'caf\\xe9'.decode("
                            "'utf-8', 'surrogateescape')}\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "task error: the task's output holds text that is not valid Unicode (\\udce9 at "
        "character 13 of its JSON): decode bytes with errors='replace' before returning them"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert "could not upload" not in result.stdout.str()  # the error run went up


def test_a_megabyte_value_runs_reports_briefly_and_uploads(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    big = "x" * 1_000_000
    dataset_id = admin.create_dataset("big-values", [
        {"input": {"question": "echo", "text": big}, "output": {"answer": big + "!"},
         "metadata": {}}])
    pytester.makepyfile(app="def answer(input):\n    return input['text']\n")
    pytester.makeconftest("def pytest_phoenix_evals_evaluators(config, dataset):\n"
                          "    return [lambda output, expected: output == expected['answer']]\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=big-values", "--phoenix-task=app:answer",
                                "--phoenix-experiment-name=megabyte")
    result.assert_outcomes(failed=1)
    assert len(result.stdout.str()) < 20_000  # the report shortens the values
    result.stdout.fnmatch_lines(["output:    xxxx*…"])
    assert "could not upload" not in result.stdout.str()
    experiment = next(e for e in admin.experiments(dataset_id) if e.get("name") == "megabyte")
    [run] = admin.runs(experiment["id"])
    assert run["output"] == big


def test_an_input_without_what_the_task_needs_names_the_keys_it_has(
        pytester: pytest.Pytester, phoenix_env: str, judged_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app="def answer(input):\n    return input['query']\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer",
                                "--phoenix-no-upload")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["task error: KeyError: 'query' (the example's input has no key "
                                 "'query'; its keys: question)"])


@pytest.mark.parametrize(("conftest", "message"), [
    ("from pytest_phoenix_evals import evaluator\n"
     "@evaluator(threshold='high')\n"
     "def score(output):\n    return 1.0\n"
     "def pytest_phoenix_evals_evaluators(config, dataset):\n    return [score]\n",
     "*threshold*'high'*"),
    ("def pytest_phoenix_evals_evaluators(config, dataset):\n    return ['not a function']\n",
     "*'not a function'*"),
])
def test_an_invalid_evaluator_config_is_a_clear_error(
        pytester: pytest.Pytester, phoenix_env: str, judged_dataset: dict[str, Any],
        conftest: str, message: str) -> None:
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    pytester.makeconftest(conftest)
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer",
                                "--phoenix-no-upload")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    assert "INTERNALERROR" not in output and "Traceback" not in output
    result.stdout.fnmatch_lines([message]) if result.ret == pytest.ExitCode.INTERRUPTED \
        else result.stderr.fnmatch_lines([message])
