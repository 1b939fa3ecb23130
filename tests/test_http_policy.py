"""The one retry policy (``_phoenix.http``) against a real HTTP server on 127.0.0.1: 5xx and
429 are retried, Retry-After is honoured, 4xx is not retried, and nobody listening is either
retried (the gateway) or given up at once (the tracing exporter)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pytest_phoenix_evals._phoenix import http as policy
from pytest_phoenix_evals._phoenix.gateway import Gateway
from pytest_phoenix_evals._phoenix.http import PhoenixError, awith_retries, with_retries

Answer = tuple[int, dict[str, str], Any]


class Scripted:
    """A server answering each path from its script, one answer per request; the last
    answer of a script repeats. Counts the requests per path."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Answer]] = {}
        self.hits: dict[str, list[float]] = {}
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                scripted.hits.setdefault(path, []).append(time.monotonic())
                script = scripted.scripts.get(path) or [(404, {}, {"detail": "no such path"})]
                status, headers, body = script.pop(0) if len(script) > 1 else script[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def get(self, path: str) -> httpx.Response:
        response = httpx.get(f"{self.url}{path}", timeout=5)
        response.raise_for_status()
        return response


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    scripted.thread.start()
    try:
        yield scripted
    finally:
        scripted.server.shutdown()
        scripted.server.server_close()


@pytest.fixture(autouse=True)
def short_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "RETRY_DELAYS", (0.05, 0.05, 0.05))


def refused_url() -> str:
    """A URL on which nobody listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


OK: Answer = (200, {}, {"ok": True})


def test_429_waits_as_long_as_retry_after_says(server: Scripted) -> None:
    server.scripts["/busy"] = [(429, {"Retry-After": "1"}, {"detail": "slow down"}), OK]
    started = time.monotonic()
    assert with_retries(lambda: server.get("/busy")).json() == {"ok": True}
    first, second = server.hits["/busy"]
    assert second - first >= 0.95  # the server's 1 s, not the policy's 0.05 s
    assert time.monotonic() - started < 5


def test_retry_after_ms_is_honoured_too(server: Scripted) -> None:
    server.scripts["/busy"] = [(429, {"retry-after-ms": "400"}, {}), OK]
    assert with_retries(lambda: server.get("/busy")).status_code == 200
    first, second = server.hits["/busy"]
    assert second - first >= 0.38


def test_a_retry_after_too_long_to_wait_fails_at_once(server: Scripted) -> None:
    server.scripts["/busy"] = [(429, {"Retry-After": str(int(policy.MAX_RETRY_AFTER) + 60)}, {}),
                               OK]
    with pytest.raises(httpx.HTTPStatusError) as raised:
        with_retries(lambda: server.get("/busy"))
    assert raised.value.response.status_code == 429
    assert len(server.hits["/busy"]) == 1


def test_503_is_retried_after_the_policy_delay(server: Scripted) -> None:
    server.scripts["/flaky"] = [(503, {}, {"detail": "at capacity"}), OK]
    assert with_retries(lambda: server.get("/flaky")).json() == {"ok": True}
    assert len(server.hits["/flaky"]) == 2


def test_a_server_that_keeps_failing_is_tried_once_per_delay_and_once_more(
        server: Scripted) -> None:
    server.scripts["/down"] = [(500, {}, {"detail": "boom"})]
    with pytest.raises(httpx.HTTPStatusError) as raised:
        with_retries(lambda: server.get("/down"))
    assert raised.value.response.status_code == 500
    assert len(server.hits["/down"]) == len(policy.RETRY_DELAYS) + 1


def test_4xx_is_not_retried(server: Scripted) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        with_retries(lambda: server.get("/missing"))
    assert len(server.hits["/missing"]) == 1


def test_connection_refused_is_retried_then_raised() -> None:
    url = refused_url()
    attempts = []

    def get() -> httpx.Response:
        attempts.append(time.monotonic())
        return httpx.get(url, timeout=5)

    with pytest.raises(httpx.ConnectError):
        with_retries(get)
    assert len(attempts) == len(policy.RETRY_DELAYS) + 1
    attempts.clear()
    with pytest.raises(httpx.ConnectError):  # the exporter's choice: nobody listens, give up
        with_retries(get, retry_connect=False)
    assert len(attempts) == 1


def test_async_calls_follow_the_same_policy(server: Scripted) -> None:
    server.scripts["/busy"] = [(429, {"Retry-After": "0.5"}, {}), (502, {}, {}), OK]

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            async def get() -> httpx.Response:
                response = await client.get("/busy")
                return response.raise_for_status()

            return await awith_retries(get)

    assert asyncio.run(main()).json() == {"ok": True}
    first, second, third = server.hits["/busy"]
    assert second - first >= 0.45


def test_the_gateway_retries_429_and_names_the_server_when_it_cannot_reach_it(
        server: Scripted) -> None:
    server.scripts["/v1/datasets"] = [
        (429, {"Retry-After": "0.3"}, {"detail": "slow down"}),
        (200, {}, {"data": [{"name": "qa", "id": "RGF0YXNldDox"}], "next_cursor": None})]
    gateway = Gateway(server.url, "a test", headers={})
    try:
        assert gateway.dataset_names() == {"qa": "RGF0YXNldDox"}
    finally:
        gateway.close()
    assert len(server.hits["/v1/datasets"]) == 2

    url = refused_url()
    gateway = Gateway(url, "a test", headers={})
    try:
        with pytest.raises(PhoenixError) as raised:
            gateway.dataset_names()
    finally:
        gateway.close()
    assert str(raised.value).startswith(
        f"cannot reach Phoenix at {url} (from a test) while listing datasets: ConnectError")
    assert raised.value.status is None


def test_the_gateway_reports_a_server_that_stays_busy(server: Scripted) -> None:
    server.scripts["/v1/datasets"] = [(429, {}, {"detail": "slow down"})]
    gateway = Gateway(server.url, "a test", headers={})
    try:
        with pytest.raises(PhoenixError) as raised:
            gateway.dataset_names()
    finally:
        gateway.close()
    assert str(raised.value).startswith(
        f"Phoenix at {server.url} (from a test) answered 429 while listing datasets:")
    assert raised.value.status == 429
    assert len(server.hits["/v1/datasets"]) == len(policy.RETRY_DELAYS) + 1
