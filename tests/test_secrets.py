"""The secret filter: known values, secret query parameters, header lists, the command line, and
every text of every span sent to Phoenix (through a real OTLP/HTTP receiver). No Phoenix server
is needed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.trace import Link, Status, StatusCode
from pytest_phoenix_evals._core import secrets
from pytest_phoenix_evals._core.secrets import redact, redact_value, register, safe_command_line
from pytest_phoenix_evals._tracing.export import Tracing, redact_request
from pytest_phoenix_evals._tracing.spans import llm_attributes, start_child_span, start_root_span

PHOENIX_KEY = "phx-test-key-2468ace0-secrets"
OPENAI_KEY = "sk-test-openai-13579bdf-secrets"
SECRETS = (PHOENIX_KEY, OPENAI_KEY)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_API_KEY", PHOENIX_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("https://x/y?api-key=abc&b=1", "https://x/y?api-key=***&b=1"),
    ("https://x/y?b=1&api_key=abc", "https://x/y?b=1&api_key=***"),
    ("https://x/y?apikey=abc#top", "https://x/y?apikey=***#top"),
    ("https://x/y?key=abc", "https://x/y?key=***"),
    ("https://x/y?x-api-key=abc", "https://x/y?x-api-key=***"),
    ("https://x/y?token=abc&access_token=def&pageToken=ghi",
     "https://x/y?token=***&access_token=***&pageToken=***"),
    ("https://acct.blob/c/f?sv=2024&sig=abc%2Bdef%3D&se=1",
     "https://acct.blob/c/f?sv=2024&sig=***&se=1"),
    ("https://s3/b/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=0a1b&X-Amz-Security-Token=t",
     "https://s3/b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***"),
    ("https://x/cb?code=oauth-code&state=s", "https://x/cb?code=***&state=s"),
    ("https://x/y?client_secret=s1&password=p&pwd=q&auth=r&jwt=j",
     "https://x/y?client_secret=***&password=***&pwd=***&auth=***&jwt=***"),
    ("https://x/y?CREDENTIALS=c&Signature=s", "https://x/y?CREDENTIALS=***&Signature=***"),
    # Inside JSON, a repr and prose: the value ends with the URL.
    ('{"url": "https://x/y?token=abc"}', '{"url": "https://x/y?token=***"}'),
    ("{'url': 'https://x/y?token=abc'}", "{'url': 'https://x/y?token=***'}"),
    ("failed (https://x/y?token=abc) twice", "failed (https://x/y?token=***) twice"),
    ("GET https://x/y?token=abc HTTP/1.1", "GET https://x/y?token=*** HTTP/1.1"),
])
def test_secret_query_values_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


@pytest.mark.parametrize("text", [
    "https://x/y?q=what+is+2%2B2&page=3&monkey=1&keyword=k&token_type=bearer",
    "https://x/y?country_code=fr&zipcode=75001&signed=1&author=me",
    "https://x/y?token=",
    "What is 2 + 2? a=b & c=d",
])
def test_other_query_values_are_kept(text: str) -> None:
    assert redact(text) == text


def test_url_credentials_are_masked() -> None:
    assert redact("cannot reach https://user:pa55@host:9/p?x=1") == \
        "cannot reach https://***@host:9/p?x=1"
    assert redact("git clone https://ghp_token@github.example/o/r") == \
        "git clone https://***@github.example/o/r"
    assert redact("mail a@b.example from https://host/p") == "mail a@b.example from https://host/p"


# --------------------------------------------------------------------------------------------
# Values from the environment
# --------------------------------------------------------------------------------------------


def test_otlp_header_values_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS",
                       "Authorization=Bearer%20otlp-token-abc123, x-team=team%2Fkey-456")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=traces-key-789")
    text = ("sent Authorization: Bearer otlp-token-abc123, x-team: team/key-456 and "
            "team%2Fkey-456, x-api-key: traces-key-789")
    assert redact(text) == "sent Authorization: ***, x-team: *** and ***, x-api-key: ***"
    assert redact("the token otlp-token-abc123 alone") == "the token *** alone"
    assert "team/key-456" not in json.dumps(redact_value({"h": ["team/key-456"]}))


def test_client_header_values_are_hidden_decoded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_CLIENT_HEADERS", "x-key=client%3Dheader%3Dvalue")
    assert redact("x-key: client=header=value") == "x-key: ***"


def test_short_values_and_ordinary_variables_are_not_hidden(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=b,x-short=abc")
    monkeypatch.setenv("PYTEST_PHOENIX_EVALS_COLOUR", "magenta-fuchsia")
    assert redact("abc magenta-fuchsia") == "abc magenta-fuchsia"


def test_values_are_hidden_inside_json_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    tricky = 'pa"ss\\word-é-0123'
    monkeypatch.setenv("SERVICE_PASSWORD", tricky)
    for ensure_ascii in (True, False):
        text = json.dumps({"debug": f"with {tricky}"}, ensure_ascii=ensure_ascii)
        assert tricky not in json.loads(redact(text))["debug"]
        assert json.loads(redact(text)) == {"debug": "with ***"}


def test_registered_values_are_hidden() -> None:
    register("registered-0f1e2d3c4b5a-secret")
    assert redact("key registered-0f1e2d3c4b5a-secret") == "key ***"


def test_the_environment_scan_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_API_KEY", PHOENIX_KEY)
    redact("x")
    cached = secrets._cache
    assert redact(f"a {PHOENIX_KEY}") == "a ***"
    assert secrets._cache is cached  # nothing changed: no new scan
    monkeypatch.setenv("PHOENIX_API_KEY", OPENAI_KEY)
    assert redact(f"a {OPENAI_KEY} {PHOENIX_KEY}") == f"a *** {PHOENIX_KEY}"
    assert secrets._cache is not cached


def test_the_command_line(keys: None) -> None:
    args = ["--phoenix-dataset=qa", "--phoenix-url=https://u:p@host/?api-key=abc&x=1",
            "--judge-token=tok", "-k", "paris", f"--note={OPENAI_KEY}",
            "--webhook=https://hook/run?sig=s1&v=2"]
    assert safe_command_line(args) == (
        "pytest --phoenix-dataset=qa --phoenix-url=https://***@host/?api-key=***&x=1 "
        "--judge-token=*** -k paris --note=*** --webhook=https://hook/run?sig=***&v=2")


def test_a_secret_in_the_servers_url_is_never_printed(pytester: pytest.Pytester) -> None:
    # Nothing listens there: the message names the server, with the secret masked.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:pa55word@127.0.0.1:{port}/?token=tok-0123456789&region=eu"
    result = pytester.runpytest(f"--phoenix-url={url}", "--phoenix-dataset=qa",
                                "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert f"Phoenix at http://***@127.0.0.1:{port}/?token=***&region=eu" in out, out
    assert "tok-0123456789" not in out and "pa55word" not in out


# --------------------------------------------------------------------------------------------
# Spans: every text of every span sent to Phoenix
# --------------------------------------------------------------------------------------------


class OtlpReceiver:
    """A real OTLP/HTTP endpoint on 127.0.0.1 that keeps the bodies posted to /v1/traces."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/traces":
                    receiver.bodies.append(body)
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def spans(self) -> list[Any]:
        found = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    found += scope_spans.spans
        return found


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def attributes(items: Any) -> dict[str, Any]:
    """OTLP key-values as Python values (strings, numbers, lists of strings)."""
    found: dict[str, Any] = {}
    for item in items:
        kind = item.value.WhichOneof("value")
        if kind == "array_value":
            found[item.key] = [v.string_value for v in item.value.array_value.values]
        else:
            found[item.key] = getattr(item.value, kind)
    return found


def test_every_text_of_every_span_is_redacted_before_export(
        keys: None, receiver: OtlpReceiver) -> None:
    leak = f"with {PHOENIX_KEY} and {OPENAI_KEY}"
    url = "https://hook.example/run?token=tok-123&x=1"
    tracing = Tracing(receiver.url)
    try:
        tracer = tracing.tracer("secrets-project")
        # The helpers' spans: a task that fails, as the engine records it.
        with start_root_span(tracer, "Task: leaky", "CHAIN", {"question": leak}) as task:
            task.set_output({"answer": "Paris", "debug": leak, "url": url})
            task.record_error(RuntimeError(f"cannot answer {leak}"))
        # A judge's trace: input messages and values.
        messages = [{"role": "user", "content": f"Is this right? {leak}"},
                    {"role": "user", "content": [{"type": "text", "text": leak}]}]
        with start_root_span(tracer, "Evaluator: judge", "EVALUATOR", {"output": leak}) as root:
            with start_child_span(tracer, "Prompt: p", "PROMPT", {"answer": leak}) as prompt:
                prompt.set_output({"messages": messages})
            with start_child_span(tracer, "ChatCompletion", "LLM", {"messages": messages},
                                  attributes=llm_attributes(input_messages=messages)):
                pass
        # The raw OpenTelemetry API, past every helper: name, array attribute, event, link,
        # status.
        with tracer.start_as_current_span(
                f"raw {OPENAI_KEY}", links=[Link(root.span.get_span_context(),
                                                 {"link.note": leak})],
                record_exception=False, set_status_on_exception=False) as raw:
            raw.set_attribute("tags", ["plain", leak])
            raw.set_attribute("count", 3)
            raw.add_event(f"event {PHOENIX_KEY}", {"detail": leak, "where": url})
            raw.set_status(Status(StatusCode.ERROR, f"failed {leak}"))
        assert tracing.flush(timeout_seconds=10)
    finally:
        tracing.shutdown()

    body = b"".join(receiver.bodies)
    for secret in (*SECRETS, "tok-123"):
        assert secret.encode() not in body
    spans = {span.name: span for span in receiver.spans()}
    masked = "with *** and ***"
    assert set(spans) == {"Task: leaky", "Evaluator: judge", "Prompt: p", "ChatCompletion",
                          "raw ***"}

    task_span = spans["Task: leaky"]
    values = attributes(task_span.attributes)
    assert json.loads(values["input.value"]) == {"question": masked}
    assert json.loads(values["output.value"]) == {
        "answer": "Paris", "debug": masked, "url": "https://hook.example/run?token=***&x=1"}
    (event,) = task_span.events
    exception = attributes(event.attributes)
    assert exception["exception.type"] == "RuntimeError"
    assert exception["exception.message"] == f"cannot answer {masked}"
    assert f"cannot answer {masked}" in exception["exception.stacktrace"]
    assert task_span.status.message == f"RuntimeError: cannot answer {masked}"

    assert json.loads(attributes(spans["Evaluator: judge"].attributes)["input.value"]) == {
        "output": masked}
    prompt_values = attributes(spans["Prompt: p"].attributes)
    assert json.loads(prompt_values["input.value"]) == {"answer": masked}
    assert json.loads(prompt_values["output.value"])["messages"][1]["content"][0]["text"] == \
        masked
    llm_values = attributes(spans["ChatCompletion"].attributes)
    assert llm_values["llm.input_messages.0.message.content"] == f"Is this right? {masked}"
    assert llm_values["llm.input_messages.1.message.contents.0.message_content.text"] == masked
    assert masked in json.loads(llm_values["input.value"])["messages"][0]["content"]

    raw_span = spans["raw ***"]
    assert attributes(raw_span.attributes) == {"tags": ["plain", masked], "count": 3}
    (event,) = raw_span.events
    assert event.name == "event ***"
    assert attributes(event.attributes) == {
        "detail": masked, "where": "https://hook.example/run?token=***&x=1"}
    assert attributes(raw_span.links[0].attributes) == {"link.note": masked}
    assert raw_span.status.message == f"failed {masked}"
    # The resource (which routes spans to their project) and attribute keys are untouched.
    request = ExportTraceServiceRequest.FromString(receiver.bodies[0])
    assert attributes(request.resource_spans[0].resource.attributes)[
        "openinference.project.name"] == "secrets-project"


def test_nested_values_are_redacted(keys: None) -> None:
    """Key-value lists and arrays inside attribute values (OTLP allows them; the SDK's span
    API makes none today) are walked too."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="k", value=AnyValue(string_value=PHOENIX_KEY)))
    nested.kvlist_value.values.append(KeyValue(key="n", value=AnyValue(int_value=7)))
    inner = nested.kvlist_value.values.add(key="list")
    inner.value.array_value.values.append(AnyValue(string_value=f"x {OPENAI_KEY}"))
    span.attributes.append(KeyValue(key="nested", value=nested))
    span.attributes.append(KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x00raw")))
    redact_request(request)
    value = span.attributes[0].value.kvlist_value.values
    assert value[0].value.string_value == "***"
    assert value[1].value.int_value == 7
    assert value[2].value.array_value.values[0].string_value == "x ***"
    assert span.attributes[1].value.bytes_value == b"\x00raw"
    assert not span.HasField("status")  # an unset status stays unset
