"""A forwarding HTTP proxy in front of a real Phoenix server, slowing chosen requests down.

Standard library only. Tests point the plugin at the proxy to see what a slow network or an
overloaded server looks like from the plugin's side: requests whose ``METHOD /path`` matches
``slow`` (a regular expression) wait ``delay`` seconds before being forwarded, and every other
request is forwarded at once. Nothing is faked: the answers are Phoenix's own.

    with SlowProxy(phoenix_url, slow=r"^POST /v1/experiments/[^/]+/runs", delay=3) as proxy:
        ...  # proxy.url instead of phoenix_url; proxy.slowed counts the delayed requests
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business, not forwarded.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "te", "trailer", "transfer-encoding", "upgrade"})


class SlowProxy:
    def __init__(self, upstream: str, *, slow: str = r"$^", delay: float = 0.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.slow = re.compile(slow)
        self.delay = delay
        self.slowed = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> SlowProxy:
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True,
                         name="slow-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up is no news here


class _Handler(BaseHTTPRequestHandler):
    proxy: SlowProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _forward(self) -> None:
        proxy = self.proxy
        if proxy.slow.search(f"{self.command} {self.path}"):
            with proxy._lock:
                proxy.slowed += 1
            time.sleep(proxy.delay)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*proxy.upstream, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        finally:
            connection.close()
        try:
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting (that is what a test may check)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward
