"""LLM judges defined in code, against the stand-in judge over real HTTP and a real Phoenix."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge

pytestmark = pytest.mark.usefixtures("qa_app", "judged_dataset")

JUDGES_CONFTEST = """
from pytest_phoenix_evals import qa_correctness, hallucination

def pytest_phoenix_evals_evaluators(config, dataset):
    return [{judges}]
"""


def run_judged(pytester: pytest.Pytester, *args: str, judges: str = "qa_correctness()"
               ) -> pytest.RunResult:
    pytester.makeconftest(JUDGES_CONFTEST.format(judges=judges))
    return pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=qa_app:answer", *args)


def latest_experiment(admin: PhoenixAdmin, dataset_id: str) -> dict[str, Any]:
    return admin.experiments(dataset_id)[0]


def test_judge_verdicts_fail_the_wrong_answer_only(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any]) -> None:
    result = run_judged(pytester, judges="qa_correctness(), hallucination()")
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    assert "what-is-the-capital-of-spain failed: qa_correctness, hallucination" in text
    assert "incorrect" in text and "hallucinated" in text
    assert "the answer does not contain the reference" in text
    assert "judge usage: 6 calls" in text
    # The judge was asked the way Phoenix Evals' judges are: one record_response tool, forced.
    body = judge.requests[0]["body"]
    assert [t["function"]["name"] for t in body["tools"]] == ["record_response"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "record_response"}}
    assert body["tools"][0]["function"]["parameters"]["properties"]["label"]["enum"] in (
        ["correct", "incorrect"], ["factual", "hallucinated"])
    assert "<answer>\nBarcelona\n</answer>" in json.dumps(
        [r["body"]["messages"] for r in judge.requests]).replace("\\n", "\n")

    experiment = latest_experiment(admin, judged_dataset["id"])
    annotations = admin.annotations(experiment["id"])
    judged = [a for a in annotations if a["name"] == "qa_correctness"]
    assert sorted(a["label"] for a in judged) == ["correct", "correct", "incorrect"]
    assert {a["annotatorKind"] for a in judged} == {"LLM"}
    assert all(a["metadata"]["total_tokens"] > 0 and a["metadata"]["model"] for a in judged)


def test_failure_prints_task_and_judge_trace_ids_which_exist_in_phoenix(
        pytester: pytest.Pytester, judge: StandInJudge, phoenix_url: str) -> None:
    result = run_judged(pytester)
    result.assert_outcomes(passed=2, failed=1)
    line = next(line for line in result.outlines if line.startswith("traces: "))
    parts = dict(part.split(" ") for part in line.removeprefix("traces: ").split("; "))
    assert set(parts) == {"task", "qa_correctness"}
    assert parts["task"] != parts["qa_correctness"]
    with httpx.Client(base_url=phoenix_url, timeout=10) as http:
        found = _wait_for_span(http, "pytest-phoenix-evals judges", parts["qa_correctness"])
        names = {span["name"] for span in found}
        assert {"Evaluator: qa_correctness", "Prompt: qa_correctness",
                "ChatCompletion"} <= names
        llm = next(span for span in found if span["name"] == "ChatCompletion")
        assert llm["attributes"]["llm.token_count.total"] > 0


def _wait_for_span(http: httpx.Client, project: str, trace_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        response = http.get(f"/v1/projects/{project}/spans", params={"trace_id": trace_id})
        if response.status_code == 200 and len(response.json()["data"]) >= 3:
            return list(response.json()["data"])
        if time.monotonic() > deadline:
            raise AssertionError(f"trace {trace_id} not in {project}: {response.text[:300]}")
        time.sleep(0.3)


def test_rate_limits_are_retried_honouring_retry_after(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    judge.configure(fail_429=2, retry_after="0")
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload")
    result.assert_outcomes(passed=1, deselected=2)
    assert judge.stats() == {"429": 2, "ok": 1}


def test_server_errors_after_the_last_retry_fail_the_case_with_the_error(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    judge.configure(fail_5xx=100, error_status=503)
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        "--phoenix-judge-retries=1")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*qa_correctness error: the judge at * (model gpt-4o-mini) "
                                 "failed after 2 attempt(s): HTTP 503*"])
    assert judge.stats() == {"5xx": 2}


def test_a_judge_that_hangs_times_out_and_errors(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    judge.configure(hang=100, hang_seconds=3)
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        "--phoenix-judge-timeout=0.3", "--phoenix-judge-retries=0")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*qa_correctness error: *failed after 1 attempt(s): "
                                 "timed out*"])


@pytest.mark.parametrize(("mode", "expected"), [
    ("no_tool_call", "No tool calls received from LLM; the judge answered: "
                     "'I think it is correct.'*"),
    ("bad_label", "the judge answered label 'maybe', which is not one of qa_correctness's "
                  "labels (correct, incorrect)*"),
    ("bad_json", "Expecting*the judge's arguments for record_response were*"),
    ("missing_label", "LLM response missing required 'label' field*record_response(*"),
    ("wrong_tool", "the judge called none of this evaluator's tools (record_response); "
                   "it called not_a_tool*"),
])
def test_malformed_answers_are_evaluator_errors_quoting_the_answer(
        pytester: pytest.Pytester, judge: StandInJudge, mode: str, expected: str) -> None:
    judge.configure(malformed=mode)
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["qa_correctness error: " + expected])
    assert "Traceback" not in result.stdout.str()


def test_without_key_or_base_url_the_error_says_what_to_set(
        pytester: pytest.Pytester, judge: StandInJudge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*qa_correctness error: OPENAI_API_KEY is not set: set it, "
                                 "or point --phoenix-judge-base-url*"])


def test_other_providers_are_named_in_a_clear_error(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        judges="qa_correctness(provider='ANTHROPIC')")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*model provider ANTHROPIC is not supported for local judging*"])


def test_judge_settings_reach_the_request_and_the_cost_is_summed(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    result = run_judged(pytester, "--phoenix-no-upload", "--phoenix-judge-model=my-local-model",
                        "--phoenix-judge-price=my-local-model=1000/2000")
    result.assert_outcomes(passed=2, failed=1)
    assert {r["body"]["model"] for r in judge.requests} == {"my-local-model"}
    usage = next(line for line in result.outlines if line.startswith("judge usage: 3 calls"))
    assert usage.split(", ")[-1].startswith("$") and usage.split(", ")[-1] != "$0.0000"


def test_the_judge_concurrency_cap_is_an_option_with_a_clear_error(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    result = run_judged(pytester, "--phoenix-judge-concurrency=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--phoenix-judge-concurrency: '0' is not an integer >= 1*"])


def test_api_keys_never_reach_output_or_phoenix(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-never-print-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    pytester.makepyfile(leaky_app="""
import os
def answer(input):
    if "Spain" in input["question"]:
        raise RuntimeError("cannot answer with key " + os.environ["OPENAI_API_KEY"])
    return "Paris"
""")
    pytester.makeconftest(JUDGES_CONFTEST.format(judges="qa_correctness()"))
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=leaky_app:answer",
                                f"--phoenix-experiment-name=leak {secret}")
    result.assert_outcomes(passed=1, failed=2)
    assert secret not in result.stdout.str() + result.stderr.str()
    assert "cannot answer with key ***" in result.stdout.str()
    assert all(r["authorization"] for r in judge.requests)  # the key was sent, to the judge
    experiment = latest_experiment(admin, judged_dataset["id"])
    uploaded = json.dumps([experiment, admin.runs(experiment["id"]),
                           admin.annotations(experiment["id"])])
    assert secret not in uploaded
    assert "cannot answer with key ***" in uploaded
