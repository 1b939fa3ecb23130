"""The stand-in judge (scripts/stand_in_judge.py), over real HTTP with the real openai client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "stand_in_judge.py"
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))

from stand_in_judge import StandInJudge, choose_label


def label_tool(name: str = "record_label", enum: tuple[str, ...] = ("correct", "incorrect"),
               explanation: bool = True) -> dict[str, Any]:
    """A classifier tool in the shape LLM evaluators send."""
    properties: dict[str, Any] = {"label": {"type": "string", "enum": list(enum)}}
    if explanation:
        properties["explanation"] = {"type": "string"}
    return {"type": "function", "function": {"name": name, "description": "Record a label.",
                                             "parameters": {"type": "object",
                                                            "properties": properties,
                                                            "required": ["label"]}}}


def qa(answer: str, reference: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You grade answers."},
            {"role": "user", "content": [
                {"type": "text", "text": f"<answer>{answer}</answer>"},
                {"type": "text", "text": f"<reference>{reference}</reference>"}]}]


def arguments(completion: Any, index: int = 0) -> dict[str, Any]:
    return json.loads(completion.choices[0].message.tool_calls[index].function.arguments)


@pytest.fixture(scope="module")
def judge() -> Iterator[StandInJudge]:
    with StandInJudge().start() as running:
        yield running


@pytest.fixture(scope="module")
def client(judge: StandInJudge) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=judge.url, api_key="sk-test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture(autouse=True)
def _fresh(judge: StandInJudge) -> None:
    judge.reset()


def ask(client: openai.OpenAI, messages: Any = None, **kwargs: Any) -> Any:
    messages = messages if messages is not None else [{"role": "user", "content": "Grade it."}]
    return client.chat.completions.create(model="judge-model", messages=messages, **kwargs)


# -- answers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("answer", "reference", "label", "verb"), [
    ("The capital is Paris.", "paris", "correct", "contains"),
    ("The capital is Lyon.", "Paris", "incorrect", "does not contain"),
])
def test_tagged_heuristic(client: openai.OpenAI, answer: str, reference: str, label: str,
                          verb: str) -> None:
    completion = ask(client, qa(answer, reference), tools=[label_tool()])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls[0].id == "call_1_0"
    assert choice.message.tool_calls[0].function.name == "record_label"
    assert arguments(completion) == {
        "label": label, "explanation": f"stand-in judge: the answer {verb} the reference"}
    assert completion.id == "chatcmpl-1" and completion.model == "judge-model"
    usage = completion.usage
    assert usage.completion_tokens == len(choice.message.tool_calls[0].function.arguments.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    tools_words = len(json.dumps([label_tool()]).split())
    message_words = len(f"You grade answers. <answer>{answer}</answer> "
                        f"<reference>{reference}</reference>".split())
    assert usage.prompt_tokens == message_words + tools_words


@pytest.mark.parametrize(("answer", "reference", "enum", "expected"), [
    ("paris", "paris", ["hallucinated", "factual"], "factual"),
    ("lyon", "paris", ["factual", "hallucinated"], "hallucinated"),
    ("paris", "paris", ["A", "B", "C"], "A"),       # no positive label: the first
    ("lyon", "paris", ["A", "B", "C"], "C"),        # no negative label: the last
    ("anything", " ... ", ["correct", "incorrect"], "incorrect"),  # empty reference disagrees
])
def test_label_sets(answer: str, reference: str, enum: list[str], expected: str) -> None:
    text = f"<answer>{answer}</answer><reference>{reference}</reference>"
    assert choose_label(text, enum, [])[0] == expected


def test_default_label_without_tags(client: openai.OpenAI) -> None:
    completion = ask(client, tools=[label_tool(enum=("relevant", "unrelated"))])
    assert arguments(completion) == {"label": "relevant",
                                     "explanation": "stand-in judge: default label"}


def test_rules_win_over_the_heuristic(judge: StandInJudge, client: openai.OpenAI) -> None:
    judge.configure(rules=[["Paris", "maybe"], ["Paris", "incorrect"], ["Lyon", "correct"]])
    completion = ask(client, qa("Paris", "Paris"), tools=[label_tool()])
    assert arguments(completion) == {"label": "incorrect",
                                     "explanation": 'stand-in judge: rule "Paris" matched'}


def test_one_call_per_tool(client: openai.OpenAI) -> None:
    plain = {"type": "function", "function": {"name": "note", "parameters": {
        "type": "object", "properties": {"explanation": {"type": "string"}}}}}
    tools = [label_tool("first"), label_tool("second", ("pass", "fail"), False), plain]
    completion = ask(client, qa("yes", "yes"), tools=tools)
    calls = completion.choices[0].message.tool_calls
    assert [(c.id, c.function.name) for c in calls] == [
        ("call_1_0", "first"), ("call_1_1", "second"), ("call_1_2", "note")]
    assert arguments(completion, 0)["label"] == "correct"
    assert arguments(completion, 1) == {"label": "pass"}
    assert arguments(completion, 2) == {"explanation": "stand-in judge"}


def test_specific_tool_choice(client: openai.OpenAI) -> None:
    completion = ask(client, tools=[label_tool("first"), label_tool("second")],
                     tool_choice={"type": "function", "function": {"name": "second"}})
    calls = completion.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["second"]


@pytest.mark.parametrize("kwargs", [{}, {"tools": [label_tool()], "tool_choice": "none"}])
def test_text_answer(client: openai.OpenAI, kwargs: dict[str, Any]) -> None:
    completion = ask(client, **kwargs)
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("stand-in judge", "stop")
    assert choice.message.tool_calls is None
    assert completion.usage.completion_tokens == 2


def test_response_validates_strictly(judge: StandInJudge) -> None:
    body = {"model": "m", "messages": qa("Paris", "Paris"), "tools": [label_tool()]}
    response = httpx.post(f"{judge.url}/chat/completions", json=body)
    completion = ChatCompletion.model_validate(response.json())
    assert completion.choices[0].message.tool_calls[0].type == "function"


def test_models_and_unknown_paths(judge: StandInJudge, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["stand-in-judge"]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="m", input="x")
    response = httpx.get(f"{judge.url}/nope")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "code"}
    assert [r["outcome"] for r in judge.requests] == ["ok", "404", "404"]


def test_streaming_tool_call(client: openai.OpenAI) -> None:
    stream = ask(client, qa("Paris", "Paris"), tools=[label_tool()], stream=True,
                 stream_options={"include_usage": True})
    with stream:
        chunks = list(stream)
    calls = [call for chunk in chunks for choice in chunk.choices
             for call in choice.delta.tool_calls or []]
    assert [(c.id, c.function.name) for c in calls] == [("call_1_0", "record_label")]
    assert json.loads(calls[0].function.arguments)["label"] == "correct"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    with client.chat.completions.stream(model="m", messages=qa("Lyon", "Paris"),
                                        tools=[label_tool()]) as helper:
        final = helper.get_final_completion()
    assert arguments(final)["label"] == "incorrect"


# -- faults ----------------------------------------------------------------------------------------

def test_rate_limit(judge: StandInJudge, client: openai.OpenAI) -> None:
    judge.configure(fail_429=1, retry_after="2")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    assert caught.value.response.headers["retry-after"] == "2"
    assert "retry-after-ms" not in caught.value.response.headers
    assert caught.value.code == "rate_limit_exceeded"
    assert ask(client).choices[0].message.content == "stand-in judge"  # one failure only
    judge.configure(fail_429=1, retry_after_ms=250)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    assert caught.value.response.headers["retry-after-ms"] == "250"
    assert judge.stats() == {"429": 2, "ok": 1}


@pytest.mark.parametrize("status", [500, 503])
def test_server_error(judge: StandInJudge, client: openai.OpenAI, status: int) -> None:
    judge.configure(fail_5xx=1, error_status=status)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert caught.value.status_code == status
    assert ask(client).choices[0].finish_reason == "stop"
    assert [r["outcome"] for r in judge.requests] == ["5xx", "ok"]


def test_fault_order(judge: StandInJudge, client: openai.OpenAI) -> None:
    judge.configure(fail_429=1, fail_5xx=1, malformed="bad_label", malformed_count=1)
    with pytest.raises(openai.RateLimitError):
        ask(client, tools=[label_tool()])
    with pytest.raises(openai.InternalServerError):
        ask(client, tools=[label_tool()])
    assert arguments(ask(client, tools=[label_tool()]))["label"] == "maybe"
    assert arguments(ask(client, tools=[label_tool()]))["label"] == "correct"
    assert [r["outcome"] for r in judge.requests] == ["429", "5xx", "malformed:bad_label", "ok"]


def test_hang_times_out_without_blocking_others(judge: StandInJudge,
                                                client: openai.OpenAI) -> None:
    judge.configure(hang=1, hang_seconds=1.5)
    # openai wraps most timeouts in APITimeoutError; one while reading the body can surface
    # as the HTTP library's own ReadTimeout.
    with pytest.raises(Exception) as raised:
        ask(client.with_options(timeout=0.3))
    assert "Timeout" in type(raised.value).__name__
    started = time.monotonic()
    assert ask(client).choices[0].message.content == "stand-in judge"  # the first still sleeps
    assert time.monotonic() - started < 1.0
    assert judge.stats() == {"hang": 1, "ok": 1}


def test_latency(judge: StandInJudge, client: openai.OpenAI) -> None:
    judge.configure(latency=0.2)
    started = time.monotonic()
    ask(client)
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(("mode", "check"), [
    ("no_tool_call", lambda m: m.tool_calls is None and m.content == "I think it is correct."),
    ("bad_label", lambda m: json.loads(m.tool_calls[0].function.arguments)["label"] == "maybe"),
    ("bad_json", lambda m: m.tool_calls[0].function.arguments == '{"label": "correct"'),
    ("missing_label", lambda m: set(json.loads(m.tool_calls[0].function.arguments))
     == {"explanation"}),
    ("wrong_tool", lambda m: m.tool_calls[0].function.name == "not_a_tool"),
])
def test_malformed(judge: StandInJudge, client: openai.OpenAI, mode: str, check: Any) -> None:
    judge.configure(malformed=mode)
    for _ in range(2):  # malformed_count None: every request
        assert check(ask(client, qa("Paris", "Paris"), tools=[label_tool()]).choices[0].message)
    assert judge.stats() == {f"malformed:{mode}": 2}


def test_malformed_count(judge: StandInJudge, client: openai.OpenAI) -> None:
    judge.configure(malformed="wrong_tool", malformed_count=1)
    names = [ask(client, tools=[label_tool()]).choices[0].message.tool_calls[0].function.name
             for _ in range(2)]
    assert names == ["not_a_tool", "record_label"]
    assert judge.switches["malformed"] is None


def test_bad_switches(judge: StandInJudge) -> None:
    with pytest.raises(ValueError, match="unknown switches: fail_42"):
        judge.configure(fail_42=1)
    with pytest.raises(ValueError, match="malformed"):
        judge.configure(malformed="garbled")


# -- recording and control -------------------------------------------------------------------------

def test_recording_never_keeps_the_key(judge: StandInJudge, client: openai.OpenAI) -> None:
    ask(client, tools=[label_tool()])
    httpx.post(f"{judge.url}/chat/completions", json={"model": "m", "messages": []})
    records = judge.requests
    assert [(r["n"], r["path"], r["authorization"]) for r in records] == [
        (1, "/v1/chat/completions", True), (2, "/v1/chat/completions", False)]
    assert records[0]["body"]["tools"] == [label_tool()]
    served = httpx.get(judge.url.replace("/v1", "/_control/requests")).text
    assert "sk-test" not in json.dumps(records) and "sk-test" not in served
    assert json.loads(served) == records


def test_http_control(judge: StandInJudge, client: openai.OpenAI) -> None:
    control = judge.url.replace("/v1", "/_control")
    response = httpx.post(f"{control}/configure", json={"fail_5xx": 1, "rules": [["x", "y"]]})
    assert response.status_code == 200 and response.json()["fail_5xx"] == 1
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert [r["outcome"] for r in httpx.get(f"{control}/requests").json()] == ["5xx"]
    assert httpx.get(f"{control}/stats").json() == {"5xx": 1}
    assert httpx.post(f"{control}/configure", json={"nope": 1}).status_code == 400
    judge.configure(fail_429=3)
    assert httpx.post(f"{control}/reset").json()["fail_429"] == 0
    assert judge.requests == [] and judge.switches["rules"] == []
    assert ask(client).choices[0].finish_reason == "stop"


def test_concurrent_requests_are_numbered_once(judge: StandInJudge,
                                               client: openai.OpenAI) -> None:
    threads = [threading.Thread(target=ask, args=(client,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["n"] for r in judge.requests) == list(range(1, 9))


# -- command line ----------------------------------------------------------------------------------

def test_cli_serves_until_sigterm() -> None:
    with subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0", "--latency", "0.2"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline().strip()
            assert line.startswith("stand-in judge listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1]
            with openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0, timeout=5) as c:
                started = time.monotonic()
                assert ask(c).choices[0].message.content == "stand-in judge"
                assert time.monotonic() - started >= 0.2
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=5)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr
