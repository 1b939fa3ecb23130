"""Tracing: spans reach the right Phoenix projects, asyncio tasks stay apart, failures are quiet."""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openinference.semconv.trace import (
    OpenInferenceLLMProviderValues,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from pytest_phoenix_evals._tracing.export import Tracing
from pytest_phoenix_evals._tracing.spans import (
    SpanHandle,
    llm_attributes,
    start_child_span,
    start_root_span,
)

SECRET = "Bearer sk-test-secret-0123456789"
CHAIN = OpenInferenceSpanKindValues.CHAIN
EVALUATOR = OpenInferenceSpanKindValues.EVALUATOR
PROMPT = OpenInferenceSpanKindValues.PROMPT
LLM = OpenInferenceSpanKindValues.LLM
JSON = OpenInferenceMimeTypeValues.JSON.value
TEXT = OpenInferenceMimeTypeValues.TEXT.value


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fetch_spans(url: str, project: str, trace_ids: list[str], count: int) -> list[dict[str, Any]]:
    """The spans of ``trace_ids`` in ``project``, once ``count`` of them are stored (<= 20 s).

    Phoenix answers an OTLP request before storing its spans, and 404 until the project exists.
    """
    deadline = time.monotonic() + 20
    spans: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        while True:
            response = client.get(
                f"/v1/projects/{project}/spans", params={"trace_id": trace_ids, "limit": 1000}
            )
            if response.status_code != 404:
                response.raise_for_status()
                spans = response.json()["data"]
                if len(spans) >= count:
                    return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(spans)} of {count} spans arrived in {project!r}")
            time.sleep(0.1)


def by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["name"]: span for span in spans}


@pytest.fixture
def tracing(phoenix_url: str) -> Iterator[Tracing]:
    tracing = Tracing(phoenix_url, headers={"Authorization": SECRET})
    yield tracing
    tracing.shutdown()


def test_spans_land_in_their_projects_with_structure_and_attributes(
    tracing: Tracing,
    phoenix_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from opentelemetry import trace

    # The application's own OpenTelemetry settings must not apply to our spans.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-project-name=hijacked")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-project-name=hijacked")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=hijacked")
    global_provider = trace.get_tracer_provider()
    task_project, eval_project = unique("tasks"), unique("evals")

    tasks = tracing.tracer(task_project)
    assert tracing.tracer(task_project) is tasks
    with start_root_span(tasks, "Task: qa", CHAIN, {"question": "Capital of France?"}) as task:
        task.set_output("Paris")
    with (pytest.raises(ValueError, match="no answer"),
          start_root_span(tasks, "Task: qa", CHAIN, "Capital of Spain?") as failed):
        raise ValueError("no answer")

    judge_messages = [
        {"role": "system", "content": "You grade answers."},
        {"role": "user", "content": [{"type": "text", "text": "Is Paris right?"}]},
    ]
    tool = {"type": "function", "function": {"name": "correctness", "parameters": {
        "type": "object", "properties": {"label": {"enum": ["correct", "incorrect"]}}}}}
    evals = tracing.tracer(eval_project)
    with start_root_span(evals, "Evaluator: correctness", EVALUATOR, {"output": "Paris"}) as ev:
        with start_child_span(evals, "Prompt: judge", PROMPT, {"output": "Paris"}) as prompt:
            prompt.set_output({"messages": judge_messages})
            with start_child_span(evals, "ChatCompletion", LLM, attributes=llm_attributes(
                model_name="gpt-4o-mini", provider=OpenInferenceLLMProviderValues.OPENAI,
                system="openai", input_messages=judge_messages, tools=[tool],
                invocation_parameters={"temperature": 0},
            )) as llm:
                llm.set_attributes(llm_attributes(
                    output_messages=[{"role": "assistant", "content": None, "tool_calls": [
                        {"id": "call_1", "function": {"name": "correctness",
                                                      "arguments": {"label": "correct"}}}]}],
                    prompt_tokens=42, completion_tokens=7,
                ))
        ev.set_output({"label": "correct", "score": 1.0})

    assert tracing.flush(timeout_seconds=10)
    assert trace.get_tracer_provider() is global_provider
    assert not trace.get_current_span().get_span_context().is_valid
    for handle in (task, failed, ev):
        assert handle.trace_id_hex is not None and len(handle.trace_id_hex) == 32
        assert handle.trace_id_hex == handle.trace_id_hex.lower()
    assert len({task.trace_id_hex, failed.trace_id_hex, ev.trace_id_hex}) == 3
    assert prompt.trace_id_hex == llm.trace_id_hex == ev.trace_id_hex

    task_ids = [str(task.trace_id_hex), str(failed.trace_id_hex)]
    spans = fetch_spans(phoenix_url, task_project, task_ids, 2)
    assert len(spans) == 2
    ok, error = sorted(spans, key=lambda span: span["status_code"] != "OK")
    assert ok["context"] == {"trace_id": task.trace_id_hex, "span_id": task.span_id_hex}
    assert (ok["name"], ok["span_kind"], ok["parent_id"]) == ("Task: qa", "CHAIN", None)
    assert ok["status_code"] == "OK"
    attributes = ok["attributes"]
    assert json.loads(attributes[SpanAttributes.INPUT_VALUE]) == {"question": "Capital of France?"}
    assert attributes[SpanAttributes.INPUT_MIME_TYPE] == JSON
    assert attributes[SpanAttributes.OUTPUT_VALUE] == "Paris"
    assert attributes[SpanAttributes.OUTPUT_MIME_TYPE] == TEXT
    assert error["context"]["trace_id"] == failed.trace_id_hex
    assert error["status_code"] == "ERROR"
    assert "no answer" in error["status_message"]
    assert [event["name"] for event in error["events"]] == ["exception"]
    assert error["attributes"][SpanAttributes.INPUT_VALUE] == "Capital of Spain?"

    spans = by_name(fetch_spans(phoenix_url, eval_project, [str(ev.trace_id_hex)], 3))
    assert set(spans) == {"Evaluator: correctness", "Prompt: judge", "ChatCompletion"}
    root, prompt_span, llm_span = (spans["Evaluator: correctness"], spans["Prompt: judge"],
                                   spans["ChatCompletion"])
    assert root["parent_id"] is None
    assert prompt_span["parent_id"] == root["context"]["span_id"] == ev.span_id_hex
    assert llm_span["parent_id"] == prompt_span["context"]["span_id"]
    assert [s["span_kind"] for s in (root, prompt_span, llm_span)] == ["EVALUATOR", "PROMPT", "LLM"]
    assert json.loads(root["attributes"][SpanAttributes.OUTPUT_VALUE]) == {
        "label": "correct", "score": 1.0}
    assert json.loads(prompt_span["attributes"][SpanAttributes.OUTPUT_VALUE]) == {
        "messages": judge_messages}
    expected = {
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You grade answers.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Is Paris right?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "correctness",
        "llm.token_count.prompt": 42,
        "llm.token_count.completion": 7,
        "llm.token_count.total": 49,
    }
    attributes = llm_span["attributes"]
    assert {key: attributes.get(key) for key in expected} == expected
    arguments = "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments"
    assert json.loads(attributes[arguments]) == {"label": "correct"}
    assert json.loads(attributes["llm.tools.0.tool.json_schema"]) == tool
    assert json.loads(attributes["llm.invocation_parameters"]) == {"temperature": 0}

    # Routed by resource, not by the environment: nothing crossed over between projects.
    assert fetch_spans(phoenix_url, eval_project, task_ids, 0) == []
    with httpx.Client(base_url=phoenix_url) as client:
        assert client.get("/v1/projects/hijacked").status_code == 404
    captured = capfd.readouterr()
    assert captured.out == captured.err == ""
    assert SECRET not in repr(tracing)


def test_concurrent_asyncio_tasks_get_separate_traces(tracing: Tracing, phoenix_url: str) -> None:
    """Two tasks on an event loop in a background thread, interleaved at every step."""
    project = unique("concurrent")
    tracer = tracing.tracer(project)

    async def run(name: str, barrier: asyncio.Barrier) -> tuple[SpanHandle, SpanHandle]:
        with start_root_span(tracer, f"Evaluator: {name}", EVALUATOR, name) as root:
            await barrier.wait()  # both roots are open now
            with start_child_span(tracer, f"Prompt: {name}", PROMPT):
                await barrier.wait()
                with start_child_span(tracer, f"ChatCompletion {name}", LLM) as llm:
                    await barrier.wait()
                await barrier.wait()
        return root, llm

    async def main() -> list[tuple[SpanHandle, SpanHandle]]:
        barrier = asyncio.Barrier(2)
        # Roots ignore whatever span is current where their task was created.
        with start_root_span(tracer, "outer", CHAIN):
            return await asyncio.gather(run("a", barrier), run("b", barrier))

    results: list[tuple[SpanHandle, SpanHandle]] = []
    thread = threading.Thread(target=lambda: results.extend(asyncio.run(main())))
    thread.start()
    thread.join(10)
    (root_a, llm_a), (root_b, llm_b) = results

    assert root_a.trace_id_hex != root_b.trace_id_hex
    assert llm_a.trace_id_hex == root_a.trace_id_hex
    assert llm_b.trace_id_hex == root_b.trace_id_hex
    assert tracing.flush()
    assert tracing.lost_spans == (0, 7)  # every span ended reached Phoenix
    for root in (root_a, root_b):
        spans = fetch_spans(phoenix_url, project, [str(root.trace_id_hex)], 3)
        spans_by_name = {span["name"].split()[0].rstrip(":"): span for span in spans}
        assert len(spans) == 3
        assert spans_by_name["Evaluator"]["parent_id"] is None
        assert spans_by_name["Prompt"]["parent_id"] == root.span_id_hex
        assert spans_by_name["ChatCompletion"]["parent_id"] == (
            spans_by_name["Prompt"]["context"]["span_id"])
        suffix = spans_by_name["Evaluator"]["name"][-1]
        assert all(span["name"].endswith(suffix) for span in spans)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_spans(tracing: Tracing) -> None:
    for project in ("p1", "p2"):
        tracer = tracing.tracer(project)
        with (start_root_span(tracer, "Task: t", CHAIN, {"x": 1}) as root,
              start_child_span(tracer, "ChatCompletion", LLM)):
            root.set_output("y")


def test_dead_server_is_quiet(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    tracing = Tracing(f"http://127.0.0.1:{free_port()}", headers={"Authorization": SECRET})
    make_spans(tracing)
    started = time.monotonic()
    assert tracing.flush(timeout_seconds=5) is False
    tracing.shutdown()
    assert time.monotonic() - started < 3
    assert tracing.dropped_spans == 4
    assert tracing.lost_spans == (4, 4)  # what the session's summary then says
    make_spans(tracing)  # after shutdown: no-op tracers
    tracing.shutdown()
    captured = capfd.readouterr()
    assert captured.out == captured.err == ""
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry")]


def test_unresponsive_server_does_not_block(capfd: pytest.CaptureFixture[str]) -> None:
    """A server that accepts connections but never answers: flush and shutdown keep time."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        tracing = Tracing(f"http://127.0.0.1:{listener.getsockname()[1]}")
        make_spans(tracing)
        started = time.monotonic()
        assert tracing.flush(timeout_seconds=0.3) is False
        tracing.shutdown(timeout_seconds=0.3)
        assert time.monotonic() - started < 2
    captured = capfd.readouterr()
    assert captured.out == captured.err == ""


def test_dead_server_is_quiet_without_logging_configured() -> None:
    """Without handlers, warnings would reach stderr through logging.lastResort."""
    script = textwrap.dedent(f"""
        from pytest_phoenix_evals._tracing.export import Tracing
        from pytest_phoenix_evals._tracing.spans import start_root_span
        tracing = Tracing("http://127.0.0.1:{free_port()}", headers={{"Authorization": "{SECRET}"}})
        for _ in range(3):
            with start_root_span(tracing.tracer("p"), "Task: t", "CHAIN", {{"x": 1}}):
                pass
        assert tracing.flush(2) is False
        tracing.shutdown(2)
        print(repr(tracing))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Tracing(") and SECRET not in result.stdout


def test_import_does_not_load_opentelemetry() -> None:
    script = ("import sys, pytest_phoenix_evals._tracing.export, "
              "pytest_phoenix_evals._tracing.spans\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('opentelemetry', 'openinference')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def stored_trace_ids(url: str, project: str, expected: int) -> list[str]:
    """The trace id of every span of ``project``, once the server lists ``expected`` spans
    (it stores them after it has answered the posts; a busy 2-core machine takes minutes)."""
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            found: list[str] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                response = client.get(f"/v1/projects/{project}/spans", params=params)
                if response.status_code == 404:  # no span stored yet
                    break
                response.raise_for_status()
                body = response.json()
                found += [span["context"]["trace_id"] for span in body["data"]]
                cursor = body.get("next_cursor")
                if not cursor:
                    break
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(2)


def test_every_judge_span_reaches_phoenix_through_a_small_spool_and_a_busy_server(
        phoenix_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lossless export: judge calls traced from four threads at once, spooled in batches of 16
    and posted 64 spans at a time, to a server that answers a third of the posts 503 (at
    capacity, unseen) and two more 503 after taking them: not one span is lost, and the
    server holds each exactly once (read back from it)."""
    from concurrent.futures import ThreadPoolExecutor

    from pytest_phoenix_evals._evaluators.llm.trace import JudgeTrace
    from pytest_phoenix_evals._tracing import export

    from fault_proxy import FaultProxy, Rule

    monkeypatch.setattr(export, "_SPOOL_BATCH", 16)
    monkeypatch.setattr(export, "_POST_SPANS", 64)
    monkeypatch.setattr(export, "_RETRY_DELAYS", (0.05,) * 200)
    project, calls_per_thread = unique("many-judge-spans"), 150
    rules = [Rule(r"^POST /v1/traces", "after", limit=2),
             Rule(r"^POST /v1/traces", "before", share=0.3)]
    with FaultProxy(phoenix_url, rules) as proxy:
        tracing = Tracing(proxy.url)
        judge = JudgeTrace(tracing, project)

        def judge_calls(worker: int) -> list[str]:
            made = []
            for i in range(calls_per_thread):
                context = {"input": f"question {worker}-{i}", "output": "an answer",
                           "reference": "", "metadata": {"span_id": f"{worker:08x}{i:08x}"}}
                with judge.evaluator("correctness", context) as call:
                    with call.llm("gpt-4o-mini", "OPENAI", {
                            "messages": [{"role": "user", "content": f"judge {worker}-{i}"}],
                            "temperature": 0}) as llm:
                        llm.set_attributes(llm_attributes(
                            output_messages=[{"role": "assistant", "content": "correct"}],
                            prompt_tokens=5, completion_tokens=1))
                    call.finish([{"name": "correctness", "label": "correct", "score": 1.0}],
                                None)
                made.append(str(call.trace_id))
            return made

        with ThreadPoolExecutor(4) as pool:
            trace_ids = [t for made in pool.map(judge_calls, range(4)) for t in made]
        assert tracing.waiting() == 2 * len(trace_ids)  # spooled, none sent yet, none lost
        tracing.shutdown(timeout_seconds=120)
    assert tracing.lost_spans == (0, 2 * len(trace_ids))
    assert proxy.counts["before"] >= 1 and proxy.counts["after"] == 2  # retried, not lost
    stored = stored_trace_ids(phoenix_url, project, 2 * len(trace_ids))
    assert len(stored) == 2 * len(trace_ids)  # every span, none twice
    assert sorted(set(stored)) == sorted(trace_ids)
    assert all(count == 2 for count in collections.Counter(stored).values())
