"""A deterministic stand-in for an OpenAI-compatible LLM server: the "judge" of LLM evaluators.

Standard library only: the test suite imports it, and the example suite starts it with a bare
system Python. It answers the endpoints an OpenAI client needs and nothing else:

* ``POST /v1/chat/completions`` - JSON, or a Server-Sent Events stream when ``stream`` is true.
  With function ``tools`` (and ``tool_choice`` not ``"none"``) it answers one tool call per tool
  (only the named tool for ``{"type": "function", "function": {"name": ...}}``). A tool whose
  parameters have a ``label`` property with an ``enum`` gets a label chosen by, in order:
  the ``rules`` switch; the tagged heuristic (the first ``<answer>...</answer>`` agrees with the
  first ``<reference>...</reference>`` when the normalised reference occurs in the normalised
  answer: agreeing picks the first positive label of the enum, disagreeing the first negative
  one); else the enum's first label. An ``explanation`` property gets an explanation. Without
  tools the answer is the text ``"stand-in judge"``, unless an ``answers`` pair matches.
* ``GET /v1/models`` - one model, ``stand-in-judge``.
* Anything else under ``/v1`` - 404 with an OpenAI-shaped error body.

Switches (defaults in brackets), set with :meth:`StandInJudge.configure` or, from another process,
``POST /_control/configure`` with a JSON object; ``POST /_control/reset`` restores the defaults
(those below, overridden by the constructor's switches such as ``--latency``) and forgets the
records, which ``GET /_control/requests`` returns (``GET /_control/stats``: outcome counts).
Faults apply to chat completions, checked in this order:

* ``hang`` [0]: the next N requests sleep ``hang_seconds`` [5.0], then answer normally
  (other requests are served meanwhile: the server is threaded).
* ``fail_429`` [0]: the next N requests answer 429 with ``Retry-After: <retry_after>`` ["0"]
  (and ``retry-after-ms: <retry_after_ms>`` when that switch is set [None]).
* ``fail_5xx`` [0]: the next N requests answer HTTP ``error_status`` [500].
* ``latency`` [0.0]: seconds to sleep before answering every request.
* ``malformed`` [None] with ``malformed_count`` [None: every request, else the next N]: answers
  that carry tool calls are spoiled: ``no_tool_call``, ``bad_label``, ``bad_json``,
  ``missing_label``, ``wrong_tool`` or ``empty_arguments`` (the arguments an empty string, as
  some models send for a function without parameters).
* ``rules`` [[]]: ``[substring, label]`` pairs; the first whose substring occurs in the messages'
  text and whose label is in the enum decides the label.
* ``answers`` [[]]: ``[substring, text]`` pairs; the first whose substring occurs in the
  messages' text is the answer to a request without tools (the stand-in *model* of an app).

Every ``/v1`` request is recorded as ``{"n", "path", "body", "authorization", "outcome"}``, where
``authorization`` only says whether the header was sent (its value is never kept) and
``outcome`` is ``ok``, ``429``, ``5xx``, ``hang``, ``malformed:<mode>``, ``400`` or ``404``.

Usage::

    python scripts/stand_in_judge.py [--port N] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import signal
import string
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "stand-in-judge"
TEXT_ANSWER = "stand-in judge"
POSITIVE = ("correct", "factual", "relevant", "faithful", "non-toxic", "non_toxic", "pass", "yes",
            "true", "good")
NEGATIVE = ("incorrect", "hallucinated", "unrelated", "irrelevant", "unfaithful", "toxic", "fail",
            "no", "false", "bad")
MALFORMED_MODES = ("no_tool_call", "bad_label", "bad_json", "missing_label", "wrong_tool",
                   "empty_arguments")
DEFAULTS: dict[str, Any] = {
    "latency": 0.0, "fail_429": 0, "retry_after": "0", "retry_after_ms": None, "fail_5xx": 0,
    "error_status": 500, "hang": 0, "hang_seconds": 5.0, "malformed": None,
    "malformed_count": None, "rules": [], "answers": [],
}
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def message_text(messages: Any) -> str:
    """The text of all messages joined by newlines (string contents and ``text`` parts)."""
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [part.get("text", "") for part in content
                      if isinstance(part, dict) and part.get("type") == "text"]
    return "\n".join(texts)


def normalise(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


def choose_label(text: str, enum: list[str], rules: list[Any]) -> tuple[str, str]:
    """The label and explanation the judge gives for ``text`` among ``enum``."""
    for substring, label in rules:
        if substring in text and label in enum:
            return label, f'stand-in judge: rule "{substring}" matched'
    answer = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    reference = re.search(r"<reference>(.*?)</reference>", text, re.DOTALL)
    if answer and reference:
        expected = normalise(reference.group(1))
        agree = bool(expected) and expected in normalise(answer.group(1))
        wanted = POSITIVE if agree else NEGATIVE
        label = next((x for x in enum if str(x).lower() in wanted), enum[0] if agree else enum[-1])
        verb = "contains" if agree else "does not contain"
        return label, f"stand-in judge: the answer {verb} the reference"
    return enum[0], "stand-in judge: default label"


def tool_arguments(tool: dict[str, Any], text: str, rules: list[Any]) -> dict[str, Any]:
    """The arguments of the call to one function tool."""
    properties = (tool["function"].get("parameters") or {}).get("properties") or {}
    enum = (properties.get("label") or {}).get("enum")
    label, explanation = choose_label(text, enum, rules) if enum else (None, "stand-in judge")
    arguments: dict[str, Any] = {} if label is None else {"label": label}
    if "explanation" in properties:
        arguments["explanation"] = explanation
    return arguments


def spoil(mode: str, calls: list[dict[str, Any]]) -> None:
    """Spoil the tool calls in place according to malformed ``mode``."""
    for call in calls:
        function = call["function"]
        arguments = json.loads(function["arguments"])
        if mode == "bad_label":
            function["arguments"] = json.dumps({**arguments, "label": "maybe"})
        elif mode == "bad_json":  # cut short, as a reply truncated by a token limit would be
            kept = {"label": arguments["label"]} if "label" in arguments else arguments
            function["arguments"] = json.dumps(kept)[:-1]
        elif mode == "missing_label":
            function["arguments"] = json.dumps({"explanation": "stand-in judge: no label given"})
        elif mode == "wrong_tool":
            function["name"] = "not_a_tool"
        elif mode == "empty_arguments":
            function["arguments"] = ""


def words(text: str) -> int:
    """Whitespace-separated words in ``text``."""
    return len(text.split())


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """An error in the OpenAI shape."""
    return {"error": {"message": message, "type": type_, "code": code}}


def _function_tools(body: Any) -> list[dict[str, Any]]:
    """The well-formed function tools of a request body."""
    tools = body.get("tools") if isinstance(body, dict) else None
    return [t for t in tools or [] if isinstance(t, dict) and t.get("type") == "function"
            and isinstance(t.get("function"), dict)]


def _selected_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The function tools the answer calls (tool_choice respected)."""
    tools, choice = _function_tools(body), body.get("tool_choice")
    if choice == "none":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t["function"].get("name") == name]
    return tools


def as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses API request seen as the Chat Completions request it stands for."""
    items = body.get("input")
    messages = ([{"role": "user", "content": items}] if isinstance(items, str) else
                [{"role": i.get("role"), "content": i.get("content")} for i in items or ()
                 if i.get("type", "message") == "message"])
    tools = [{"type": "function", "function": {k: v for k, v in t.items() if k != "type"}}
             for t in body.get("tools") or () if t.get("type") == "function"]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    chat = {"model": body.get("model", MODEL_ID), "messages": messages, "tools": tools}
    return {**chat, "tool_choice": choice} if choice is not None else chat


def as_response(completion: dict[str, Any], tools: Any = None) -> dict[str, Any]:
    """A chat completion answered the Responses API's way; like OpenAI, the answer echoes the
    request's function tools with every field filled in."""
    message = completion["choices"][0]["message"]
    n = completion["id"].removeprefix("chatcmpl-")
    if message.get("tool_calls"):
        output = [{"type": "function_call", "id": f"fc_{c['id']}", "call_id": c["id"],
                   "name": c["function"]["name"], "arguments": c["function"]["arguments"],
                   "status": "completed"} for c in message["tool_calls"]]
    else:
        output = [{"type": "message", "id": f"msg_{n}", "role": "assistant",
                   "status": "completed", "content": [
                       {"type": "output_text", "text": message["content"], "annotations": []}]}]
    usage = completion["usage"]
    return {"id": f"resp_{n}", "object": "response", "created_at": completion["created"],
            "model": completion["model"], "status": "completed", "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [{"type": "function", "name": t.get("name"),
                       "description": t.get("description"), "parameters": t.get("parameters"),
                       "strict": t.get("strict") if t.get("strict") is not None else True}
                      for t in tools or () if isinstance(t, dict) and t.get("type") == "function"],
            "metadata": {},
            "error": None, "incomplete_details": None, "instructions": None,
            "usage": {"input_tokens": usage["prompt_tokens"],
                      "output_tokens": usage["completion_tokens"],
                      "total_tokens": usage["total_tokens"],
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The chat.completion.chunk objects streaming ``completion``."""
    message, choice = completion["choices"][0]["message"], completion["choices"][0]
    base = {"id": completion["id"], "object": "chat.completion.chunk",
            "created": completion["created"], "model": completion["model"]}
    text = message["content"] is not None
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "" if text else None}]
    if text:
        deltas.append({"content": message["content"]})
    deltas += [{"tool_calls": [{"index": i, **call}]}
               for i, call in enumerate(message.get("tool_calls") or [])]
    extra = {"usage": None} if include_usage else {}
    out = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None, "logprobs": None}],
            **extra} for d in deltas]
    last = {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"], "logprobs": None}
    out.append({**base, "choices": [last], **extra})
    if include_usage:
        out.append({**base, "choices": [], "usage": completion["usage"]})
    return out


class StandInJudge:
    """A deterministic OpenAI-compatible chat server with switchable faults (see the module doc)."""

    def __init__(self, **switches: Any) -> None:
        """``switches`` become this judge's defaults, which :meth:`reset` restores."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._switches: dict[str, Any] = copy.deepcopy(DEFAULTS)
        self._records: list[dict[str, Any]] = []
        self._stats: Counter[str] = Counter()
        self._count = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._generation = 0  # bumped by reset(): requests admitted before it no longer count
        self._defaults = self.configure(**switches)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> StandInJudge:
        """Serve on ``host:port`` (0: a free port) in a daemon thread."""
        handler = type("Handler", (_Handler,), {"judge": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="stand-in-judge",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """The base URL for an OpenAI client, ``http://HOST:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("the stand-in judge is not started")
        host, port = self._server.server_address[:2]
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        """Stop serving, wake sleeping requests and close the socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> StandInJudge:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------------

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Merge ``switches`` into the current ones; return them all."""
        unknown = set(switches) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown switches: {', '.join(sorted(unknown))}")
        if switches.get("malformed") not in (None, *MALFORMED_MODES):
            raise ValueError(f"malformed must be one of {', '.join(MALFORMED_MODES)} or None")
        for key in ("rules", "answers"):
            if not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in switches.get(key, [])):
                raise ValueError(f"{key} must be a list of [substring, text] pairs")
        with self._lock:
            self._switches.update(copy.deepcopy(switches))
            return copy.deepcopy(self._switches)

    def reset(self) -> None:
        """Restore the default switches; forget the records, counts and request numbers."""
        with self._lock:
            self._switches = copy.deepcopy(self._defaults)
            self._records.clear()
            self._stats.clear()
            self._count = 0
            self._max_in_flight = 0
            self._in_flight = 0
            self._generation += 1

    @property
    def switches(self) -> dict[str, Any]:
        """A copy of the current switches."""
        with self._lock:
            return copy.deepcopy(self._switches)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the records of the ``/v1`` requests so far."""
        with self._lock:
            return copy.deepcopy(self._records)

    @property
    def max_in_flight(self) -> int:
        """The most chat requests being answered at the same time since the last reset."""
        with self._lock:
            return self._max_in_flight

    def _flight(self, change: int, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._in_flight += change
                self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def stats(self) -> dict[str, int]:
        """How many requests ended with each outcome."""
        with self._lock:
            return dict(self._stats)

    # -- requests ------------------------------------------------------------------------------

    def _admit(self, path: str, body: Any, authorization: bool, kind: str
               ) -> tuple[int, str, dict[str, Any]]:
        """Number and record a request. ``kind`` is "chat", "responses", "models", "400" or
        "404"; a chat or responses request takes the first fault due. Returns
        ``(n, outcome, switches)``."""
        with self._lock:
            self._count += 1
            s = self._switches
            outcome = {"chat": "ok", "responses": "ok", "models": "ok"}.get(kind, kind)
            if kind in ("chat", "responses"):
                for fault, name in (("hang", "hang"), ("fail_429", "429"), ("fail_5xx", "5xx")):
                    if s[fault] > 0:
                        s[fault] -= 1
                        outcome = name
                        break
                else:
                    view = as_chat(body) if kind == "responses" else body
                    if s["malformed"] and _selected_tools(view):
                        outcome = f"malformed:{s['malformed']}"
                        if s["malformed_count"] is not None:
                            s["malformed_count"] -= 1
                            if s["malformed_count"] <= 0:
                                s["malformed"] = s["malformed_count"] = None
            self._records.append({"n": self._count, "path": path, "body": copy.deepcopy(body),
                                  "authorization": authorization, "outcome": outcome})
            self._stats[outcome] += 1
            return self._count, outcome, copy.deepcopy(s)

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the judge stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    @staticmethod
    def completion(n: int, body: dict[str, Any], rules: list[Any], malformed: str | None = None,
                   answers: Sequence[Any] = ()) -> dict[str, Any]:
        """The chat completion answering request ``n``."""
        text = message_text(body.get("messages"))
        tools = _selected_tools(body)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if tools and malformed != "no_tool_call":
            calls = [{"id": f"call_{n}_{i}", "type": "function",
                      "function": {"name": tool["function"]["name"],
                                   "arguments": json.dumps(tool_arguments(tool, text, rules))}}
                     for i, tool in enumerate(tools)]
            if malformed:
                spoil(malformed, calls)
            message["tool_calls"] = calls
            finish, produced = "tool_calls", " ".join(c["function"]["arguments"] for c in calls)
        else:
            answer = next((a for s, a in answers if s in text), TEXT_ANSWER)
            message["content"] = "I think it is correct." if malformed else answer
            finish, produced = "stop", message["content"]
        prompt = words(text) + (words(json.dumps(body["tools"])) if body.get("tools") else 0)
        completion = max(1, words(produced))
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", MODEL_ID),
                "choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": None}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the :class:`StandInJudge` set on the subclass made by ``start``."""

    judge: StandInJudge
    server_version = "StandInJudge/1"
    # Connections are kept open between requests, as OpenAI's API keeps them: a client that
    # pools its connections (the openai client does) then pays for one connection, not one a
    # call. Every answer has a Content-Length; a stream ends its connection instead.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, method: str, path: str) -> None:
        message = f"unknown endpoint {method} {path}"
        self._send(404, error_body(message, "invalid_request_error", "not_found"))

    def _body(self) -> tuple[Any, bool]:
        """The parsed JSON body (None when empty) and whether it parsed."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return (json.loads(raw) if raw else None), True
        except (ValueError, UnicodeDecodeError):
            return None, False

    def _route(self, method: str) -> None:
        try:
            self._dispatch(method, self.path.split("?", 1)[0])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout, say); nobody is left to answer

    def _dispatch(self, method: str, path: str) -> None:
        body, parsed = self._body() if method == "POST" else (None, True)
        if path.startswith("/_control/"):
            self._control(method, path, body)
            return
        # Azure OpenAI's v1 API lives under /openai/v1: the same endpoints.
        route = path.removeprefix("/openai")
        if route != "/v1" and not route.startswith("/v1/"):
            self._not_found(method, path)
            return
        kind = {("POST", "/v1/chat/completions"): "chat", ("POST", "/v1/responses"): "responses",
                ("GET", "/v1/models"): "models"}.get((method, route), "404")
        if kind in ("chat", "responses") and not (parsed and isinstance(body, dict)):
            kind = "400"
        n, outcome, s = self.judge._admit(path, body, "Authorization" in self.headers, kind)
        if kind == "models":
            self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model",
                                                         "created": 0, "owned_by": "stand-in"}]})
        elif kind == "400":
            self._send(400, error_body("the body must be a JSON object", "invalid_request_error",
                                       None))
        elif kind == "404":
            self._not_found(method, path)
        elif outcome == "429":
            headers = {"Retry-After": str(s["retry_after"])}
            if s["retry_after_ms"] is not None:
                headers["retry-after-ms"] = str(s["retry_after_ms"])
            self._send(429, error_body("Rate limit reached for stand-in-judge (injected fault).",
                                       "requests", "rate_limit_exceeded"), headers)
        elif outcome == "5xx":
            self._send(int(s["error_status"]), error_body(
                "The server had an error while processing your request (injected fault).",
                "server_error", None))
        else:
            # In flight while "thinking": up to the answer, which the client may act on at once.
            generation = self.judge._generation
            self.judge._flight(+1, generation)
            try:
                if outcome == "hang":
                    self.judge.sleep(float(s["hang_seconds"]))
                self.judge.sleep(float(s["latency"]))
            finally:
                self.judge._flight(-1, generation)
            malformed = outcome.partition("malformed:")[2] or None
            if kind == "responses":
                self._send(200, as_response(StandInJudge.completion(
                    n, as_chat(body), s["rules"], malformed, s["answers"]), body.get("tools")))
                return
            completion = StandInJudge.completion(n, body, s["rules"], malformed,
                                                 s["answers"])
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(chunks(completion, usage))
            else:
                self._send(200, completion)

    def _stream(self, events: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # no length: the stream ends with it
        self.close_connection = True
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _control(self, method: str, path: str, body: Any) -> None:
        judge = self.judge
        if method == "POST" and path == "/_control/configure":
            try:
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object of switches")
                self._send(200, judge.configure(**body))
            except (TypeError, ValueError) as error:
                self._send(400, error_body(str(error), "invalid_request_error", None))
        elif method == "POST" and path == "/_control/reset":
            judge.reset()
            self._send(200, judge.switches)
        elif method == "GET" and path == "/_control/requests":
            self._send(200, judge.requests)
        elif method == "GET" and path == "/_control/stats":
            self._send(200, judge.stats())
        else:
            self._not_found(method, path)


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="A deterministic OpenAI-compatible judge.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: it may arrive ignored
        signal.signal(signum, interrupt)
    judge = StandInJudge(latency=args.latency).start(port=args.port)
    print(f"stand-in judge listening on {judge.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        judge.stop()


if __name__ == "__main__":
    main()
