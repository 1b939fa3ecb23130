"""A forwarding HTTP proxy in front of a real Phoenix server that injects faults.

Standard library only. Tests point the plugin at the proxy to see what a flaky network or an
overloaded server does to the plugin. Each :class:`Rule` matches ``METHOD /path`` (a regular
expression, searched) and hits a share of the matching requests with one kind of fault:

=========== ==============================================================================
``before``  answer 503 without forwarding (the server never saw the request)
``busy``    answer 429 Too Many Requests without forwarding (a server or gateway at capacity)
``after``   forward, then answer 503 all the same (the server did the work)
``reset``   close the connection without an answer (the server never saw the request)
``reset-after`` forward, then close the connection without an answer
``html``    answer 200 ``text/html`` with a login page, without forwarding (an SSO proxy)
``not-found`` answer 404 ``text/html``, without forwarding (an ingress during a deploy)
``slow``    wait ``delay`` seconds, then forward
=========== ==============================================================================

Which requests are hit is chosen by a :class:`random.Random` seeded with ``seed``, one draw
per matching rule and request in the order the requests arrive, so a run is reproducible
(up to the order of concurrent requests). A rule hits at most ``limit`` requests when given.
The first rule that hits a request decides its fault. Everything else is forwarded: the
answers are Phoenix's own. :attr:`FaultProxy.counts` says what the proxy did, and
:attr:`FaultProxy.most_at_once` how many requests it held at once at most.

    rules = [Rule(r"^POST /v1/experiments/[^/]+/runs", "after", share=0.2)]
    with FaultProxy(phoenix_url, rules, seed=1) as proxy:
        ...  # proxy.url instead of phoenix_url; proxy.counts["after"] faults injected
"""

from __future__ import annotations

import collections
import http.client
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("before", "busy", "after", "reset", "reset-after", "html", "slow", "not-found")

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business, not forwarded.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade"})

LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>Sign in - Example SSO</title></head>
<body><form method="post" action="/sso/login"><h1>Sign in to continue</h1>
<input name="username"><input name="password" type="password"><button>Sign in</button>
</form></body></html>
"""

NOT_FOUND_PAGE = b"""<html><head><title>404 Not Found</title></head>
<body><center><h1>404 Not Found</h1></center><hr><center>ingress</center></body></html>
"""


@dataclass
class Rule:
    """Hit ``share`` (0 to 1) of the requests whose ``METHOD /path`` matches ``match`` with a
    fault of ``kind``; ``delay`` is the wait of ``slow``; at most ``limit`` hits."""

    match: str
    kind: str
    share: float = 1.0
    delay: float = 0.0
    limit: int | None = None
    hits: int = field(default=0, init=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(KINDS)}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share {self.share} is not between 0 and 1")
        self._pattern = re.compile(self.match)

    def matches(self, line: str) -> bool:
        return self._pattern.search(line) is not None


class FaultProxy:
    """The proxy; a context manager that starts it on a free port of 127.0.0.1."""

    def __init__(self, upstream: str, rules: list[Rule] | tuple[Rule, ...] = (), *,
                 seed: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules = list(rules)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        #: What the proxy did: a count per fault kind, and "forwarded" (requests sent on).
        self.counts: collections.Counter[str] = collections.Counter()
        #: Every request, in order of arrival: (``METHOD /path``, the fault or "").
        self.log: list[tuple[str, str]] = []
        #: The most requests being handled at once (faulted, slowed or forwarded).
        self.most_at_once = 0
        self._at_once = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def faults(self) -> int:
        """How many requests got a fault other than ``slow``."""
        return sum(n for kind, n in self.counts.items() if kind not in ("forwarded", "slow"))

    def choose(self, line: str) -> Rule | None:
        """The rule whose fault this request gets (drawn under the lock), or None."""
        with self._lock:
            chosen = None
            for rule in self.rules:
                if not rule.matches(line):
                    continue
                draw = self._random.random()  # drawn even when taken: the sequence stays put
                if chosen is None and draw < rule.share and (
                        rule.limit is None or rule.hits < rule.limit):
                    chosen = rule
            if chosen is not None:
                chosen.hits += 1
                self.counts[chosen.kind] += 1
            self.log.append((line, chosen.kind if chosen else ""))
            return chosen

    def __enter__(self) -> FaultProxy:
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True,
                         name="fault-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up is no news here


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        proxy = self.proxy
        with proxy._lock:
            proxy._at_once += 1
            proxy.most_at_once = max(proxy.most_at_once, proxy._at_once)
        try:
            self._handle_one()
        finally:
            with proxy._lock:
                proxy._at_once -= 1

    def _handle_one(self) -> None:
        proxy = self.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        rule = proxy.choose(f"{self.command} {self.path}")
        kind = rule.kind if rule else ""
        if kind == "before":
            self._answer(503, "text/plain", b"fault proxy: 503 before forwarding")
            return
        if kind == "busy":
            self._answer(429, "text/plain", b"fault proxy: 429 too many requests")
            return
        if kind == "reset":
            self._reset()
            return
        if kind == "html":
            self._answer(200, "text/html; charset=utf-8", LOGIN_PAGE)
            return
        if kind == "not-found":
            self._answer(404, "text/html; charset=utf-8", NOT_FOUND_PAGE)
            return
        if kind == "slow":
            assert rule is not None
            time.sleep(rule.delay)
        forwarded = self._forward(body)
        if forwarded is None:
            return
        if kind == "after":
            self._answer(503, "text/plain", b"fault proxy: 503 after forwarding")
        elif kind == "reset-after":
            self._reset()
        else:
            status, reason, headers, data = forwarded
            self._send(status, reason, headers, data)

    def _forward(self, body: bytes | None
                 ) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
        """Phoenix's answer to the request (None once a 502 has been sent)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self.proxy.upstream, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as exc:
            self._answer(502, "text/plain", f"fault proxy: upstream: {exc}".encode())
            return None
        finally:
            connection.close()
        with self.proxy._lock:
            self.proxy.counts["forwarded"] += 1
        return response.status, response.reason, response.getheaders(), data

    def _answer(self, status: int, content_type: str, data: bytes) -> None:
        self._send(status, None, [("Content-Type", content_type)], data)

    def _send(self, status: int, reason: str | None, headers: list[tuple[str, str]],
              data: bytes) -> None:
        try:
            self.send_response(status, reason)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with no answer: a TCP reset (SO_LINGER 0), as a crashed
        server or a load balancer cutting it off would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle
