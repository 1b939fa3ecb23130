"""LLM judges defined in code, against the stand-in judge over real HTTP and a real Phoenix."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
        pytester: pytest.Pytester, judge: StandInJudge, phoenix_url: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any]) -> None:
    result = run_judged(pytester)
    result.assert_outcomes(passed=2, failed=1)
    line = next(line for line in result.outlines if line.startswith("traces: "))
    experiment = latest_experiment(admin, judged_dataset["id"])
    run_traces = {run["trace_id"] for run in admin.runs(experiment["id"])}
    parts = dict(part.split(" ") for part in line.removeprefix("traces: ").split("; "))
    assert set(parts) == {"task", "qa_correctness"}
    assert parts["task"] != parts["qa_correctness"]
    assert parts["task"] in run_traces and len(run_traces) == 3  # every run has its task trace
    with httpx.Client(base_url=phoenix_url, timeout=10) as http:
        found = _wait_for_span(http, "pytest-phoenix-evals judges", parts["qa_correctness"])
        names = {span["name"] for span in found}
        assert names == {"Evaluator: qa_correctness", "ChatCompletion"}  # two spans a call
        llm = next(span for span in found if span["name"] == "ChatCompletion")
        assert llm["attributes"]["llm.token_count.total"] > 0


def _wait_for_span(http: httpx.Client, project: str, trace_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        response = http.get(f"/v1/projects/{project}/spans", params={"trace_id": trace_id})
        if response.status_code == 200 and len(response.json()["data"]) >= 2:
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
    result = run_judged(pytester, "--phoenix-no-upload")
    # Said once, before anything runs, with every way out; not once per case.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: judged: LLM judge(s) 'qa_correctness' cannot call a model: OPENAI_API_KEY is "
        "not set: set it, or point --phoenix-judge-base-url (or OPENAI_BASE_URL) at an "
        "OpenAI-compatible server. Or run the attached ones on Phoenix with "
        "--phoenix-evaluate-on=server, or leave them out with "
        "--phoenix-skip-evaluators=qa_correctness"])
    assert result.stderr.str().count("OPENAI_API_KEY") == 1
    assert judge.requests == []
    skipped = run_judged(pytester, "--phoenix-no-upload",
                         "--phoenix-skip-evaluators=qa_correctness")
    skipped.assert_outcomes(passed=3)


def test_azure_openai_judges_call_the_azure_v1_endpoint(
        pytester: pytest.Pytester, judge: StandInJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", judge.url.removesuffix("/v1"))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-for-tests")
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        judges="qa_correctness(provider='AZURE_OPENAI', model='my-deployment')")
    result.assert_outcomes(passed=1, deselected=2)
    assert [r["path"] for r in judge.requests] == ["/openai/v1/chat/completions"]
    assert judge.requests[0]["body"]["model"] == "my-deployment"
    assert judge.requests[0]["authorization"]


@pytest.mark.parametrize(("model", "route"), [
    ("my-deployment", "/openai/v1/chat/completions"),
    ("gpt-4o", "/openai/v1/chat/completions"),
    ("o3-mini", "/openai/v1/responses"),
    ("o4-mini", "/openai/v1/responses"),
    ("gpt-5", "/openai/v1/responses"),
])
def test_azure_reasoning_models_go_to_the_responses_api_as_on_the_server(
        pytester: pytest.Pytester, judge: StandInJudge, monkeypatch: pytest.MonkeyPatch,
        model: str, route: str) -> None:
    # The server's routing (get_openai_client_class): on Azure, Chat Completions by default,
    # the reasoning models to Responses (they refuse function tools on Chat Completions).
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", judge.url.removesuffix("/v1"))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-for-tests")
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        judges=f"qa_correctness(provider='AZURE_OPENAI', model={model!r})")
    result.assert_outcomes(passed=1, deselected=2)
    assert [r["path"] for r in judge.requests] == [route]


def test_azure_without_its_settings_names_them(
        pytester: pytest.Pytester, judge: StandInJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        judges="qa_correctness(provider='AZURE_OPENAI')")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*LLM judge(s) 'qa_correctness' cannot call a model: Azure "
                                 "OpenAI judge: set AZURE_OPENAI_ENDPOINT and "
                                 "AZURE_OPENAI_API_KEY. Or run*"])


def test_other_providers_are_named_in_a_clear_error(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        judges="qa_correctness(provider='ANTHROPIC')")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model provider ANTHROPIC is not supported for local judging*"])


def test_judge_settings_reach_the_request_and_the_cost_is_summed(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    result = run_judged(pytester, "--phoenix-no-upload", "--phoenix-judge-model=my-local-model",
                        "--phoenix-judge-price=my-local-model=1000/2000")
    result.assert_outcomes(passed=2, failed=1)
    assert {r["body"]["model"] for r in judge.requests} == {"my-local-model"}
    usage = next(line for line in result.outlines if line.startswith("judge usage: 3 calls"))
    assert usage.split(", ")[-1].startswith("$") and usage.split(", ")[-1] != "$0.0000"


@pytest.mark.parametrize(("cap", "expected"), [("1", 1), ("2", 2)])
def test_judge_calls_are_capped(pytester: pytest.Pytester, judge: StandInJudge, cap: str,
                                expected: int) -> None:
    judge.configure(latency=0.3)  # the case's two judges run at once unless capped
    result = run_judged(pytester, "-k", "france", "--phoenix-no-upload",
                        f"--phoenix-judge-concurrency={cap}",
                        judges="qa_correctness(), hallucination()")
    result.assert_outcomes(passed=1, deselected=2)
    assert judge.max_in_flight == expected


def test_no_judge_call_starts_once_the_budget_is_spent_even_if_it_queued_before(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    # Six calls queue at a cap of one at once; the first spends the budget, and the five that
    # waited for their place are not started (they were, when the budget was checked before
    # the wait).
    result = run_judged(pytester, "--phoenix-no-upload", "--phoenix-judge-model=m",
                        "--phoenix-judge-price=m=1000/1000", "--phoenix-budget-usd=0.01",
                        "--phoenix-judge-concurrency=1",
                        judges="qa_correctness(), hallucination()")
    assert len(judge.requests) == 1
    assert "--phoenix-budget-usd=0.01 is spent" in result.stdout.str()


def test_under_xdist_the_judge_limits_are_the_runs_not_each_workers(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    # Two workers, three cases of two judges each, a cap of 2: each worker may call one judge
    # at once, so the provider never sees more than the cap (each worker's own 2 made 4).
    judge.configure(latency=0.3)
    pytester.makeconftest(JUDGES_CONFTEST.format(judges="qa_correctness(), hallucination()"))
    result = pytester.runpytest_subprocess(
        "--phoenix-dataset=judged", "--phoenix-task=qa_app:answer", "--phoenix-no-upload",
        "--phoenix-judge-concurrency=2", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    assert len(judge.requests) == 6
    assert judge.max_in_flight <= 2  # (the workers may not overlap on a busy machine)
    # The budget too: a worker stops at its share, and says which.
    spent = pytester.runpytest_subprocess(
        "--phoenix-dataset=judged", "--phoenix-task=qa_app:answer", "--phoenix-no-upload",
        "--phoenix-judge-model=m", "--phoenix-judge-price=m=1000/1000",
        "--phoenix-budget-usd=0.01", "--phoenix-judge-concurrency=2", "-n", "2",
        "-p", "no:cacheprovider")  # (one call at a time a worker: the first spends it)
    assert "this worker's share (1/2) of --phoenix-budget-usd=0.01 is spent" in \
        spent.stdout.str()
    from pytest_phoenix_evals._judge_settings import JudgeSettings
    from pytest_phoenix_evals._run.handover import judges_share

    share = judges_share(JudgeSettings(concurrency=8, budget_usd=3.0), 3)
    assert (share.concurrency, share.budget_usd) == (2, 1.0)
    assert judges_share(JudgeSettings(concurrency=2), 4).concurrency == 1
    assert judges_share(JudgeSettings(), 1) == JudgeSettings()


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
                                f"--phoenix-experiment-name=leak {secret}",
                                "--log-cli-level=DEBUG")  # every library's debug log shown
    result.assert_outcomes(passed=1, failed=2)
    assert secret not in result.stdout.str() + result.stderr.str()
    assert "cannot answer with key ***" in result.stdout.str()
    assert all(r["authorization"] for r in judge.requests)  # the key was sent, to the judge
    experiment = latest_experiment(admin, judged_dataset["id"])
    uploaded = json.dumps([experiment, admin.runs(experiment["id"]),
                           admin.annotations(experiment["id"])])
    assert secret not in uploaded
    assert "cannot answer with key ***" in uploaded


def test_phoenix_judge_fetches_the_server_template_at_run_time(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin) -> None:
    result = run_judged(pytester, "--phoenix-no-upload",
                        judges="__import__('pytest_phoenix_evals').phoenix_judge('correctness')")
    result.assert_outcomes(passed=3)  # the stand-in judge's default label is the first
    template = next(t for t in admin.classification_configs() if t["name"] == "correctness")
    body = judge.requests[0]["body"]
    assert body["tools"][0]["function"]["name"] == "correctness"
    assert body["tools"][0]["function"]["parameters"]["properties"]["label"]["enum"] == list(
        template["choices"])
    # The server's own words, rendered with each case's input and output.
    sent = [r["body"]["messages"][0]["content"] for r in judge.requests]
    assert any("What is the capital of France?" in text and "Paris" in text for text in sent)
    assert all(len(text) > 200 and "{{" not in text for text in sent)


def test_an_unknown_phoenix_judge_lists_the_known_ones(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    result = run_judged(pytester, "--phoenix-no-upload", "-k", "france",
                        judges="__import__('pytest_phoenix_evals').phoenix_judge('corectness')")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["corectness error: Phoenix has no judge template 'corectness'; "
                                 "it has: *correctness*faithfulness*"])


class _Remote(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    failures = {"flaky": 1}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Remote.calls.append({"path": self.path, "body": body,
                              "token": self.headers.get("X-Token")})
        kind = self.path.strip("/")
        if kind == "flaky" and _Remote.failures["flaky"] > 0:
            _Remote.failures["flaky"] -= 1
            return self._answer(429, b'{"error": "slow down"}', {"Retry-After": "0"})
        if kind == "broken":
            return self._answer(500, b"it broke")
        if kind == "notjson":
            return self._answer(200, b"<html>oops</html>")
        good = "Paris" in str(body["output"])
        answer = {"label": "good" if good else "bad", "score": 1.0 if good else 0.0,
                  "explanation": f"checked {body['input']['question']}"}
        return self._answer(200, json.dumps(answer).encode())

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def remote_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Remote)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Remote.calls.clear()
    _Remote.failures["flaky"] = 1
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_evaluators_post_the_context_and_read_the_result(
        pytester: pytest.Pytester, remote_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_TOKEN", "remote-secret-token-42")
    judges = (f"__import__('pytest_phoenix_evals').remote_evaluator('{remote_url}/flaky', "
              f"name='remote_check', pass_labels={{'good'}}, "
              f"headers={{'X-Token': __import__('os').environ['REMOTE_TOKEN']}})")
    result = run_judged(pytester, "--phoenix-no-upload", judges=judges)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["remote_check: label must be good (declared)"])
    first = _Remote.calls[0]
    assert set(first["body"]) == {"evaluator", "example_id", "input", "output", "reference",
                                  "metadata"}
    assert first["token"] == "remote-secret-token-42"
    assert len(_Remote.calls) == 4  # one 429, retried, then one call per case
    assert "remote-secret-token-42" not in result.stdout.str()


@pytest.mark.parametrize(("path", "expected"), [
    ("broken", "remote_check error: */broken failed after 2 attempt(s): HTTP 500: it broke"),
    ("notjson", "remote_check error: */notjson answered with invalid JSON: '<html>oops</html>'"),
])
def test_remote_evaluator_failures_are_errors_that_say_what_happened(
        pytester: pytest.Pytester, remote_url: str, path: str, expected: str) -> None:
    judges = (f"__import__('pytest_phoenix_evals').remote_evaluator('{remote_url}/{path}', "
              f"name='remote_check', retries=1)")
    result = run_judged(pytester, "--phoenix-no-upload", "-k", "france", judges=judges)
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines([expected])


def test_no_upload_means_no_tracing_work_at_all(
        pytester: pytest.Pytester, judge: StandInJudge) -> None:
    # (arize-phoenix-client imports OpenTelemetry itself, so sys.modules cannot tell.)
    pytester.makeconftest(JUDGES_CONFTEST.format(judges="qa_correctness()") + """
def pytest_sessionfinish(session):
    state = session.config.pluginmanager.get_plugin("phoenix-evals-session")
    judges = [e for e in state.ctx._handed_out.values() if hasattr(e, "tracing")]
    print("TRACING:", state.ctx._tracing, [j.tracing for j in judges])
""")
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=qa_app:answer",
                                "--phoenix-no-upload", "-s")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*TRACING: None ?None?"])
    assert "traces:" not in result.stdout.str()
