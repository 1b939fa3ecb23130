"""The gateway's shared base: the HTTP clients, and how every request is made.

:class:`GatewayBase` holds what every resource's calls (:mod:`.datasets`, :mod:`.experiments`,
:mod:`.prompts`, :mod:`.previews`, :mod:`.traces`) go through: the sync and async httpx
clients on one server with its headers, the one retry policy of :mod:`.http` (:meth:`call`,
:meth:`acall`), the messages that name the server (:meth:`where`), the JSON checks
(:func:`.http.json_body`), REST paging (:meth:`pages`), and the read tape.

Every read answer is kept on :attr:`GatewayBase.tape`, for the local snapshot that
``--phoenix-offline`` replays (:mod:`.offline`); a pytest-xdist worker's gateway is primed
with the answers its controller read. The keys of that tape and the request extensions the
replay reads are defined here, so that the replay imports the gateway and not the other way
round.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

import httpx

from .http import (
    TIMEOUT,
    Observe,
    PhoenixError,
    awith_retries,
    explain,
    headers,
    json_body,
    mask_url,
    not_the_api,
    raise_for_retryable,
    with_retries,
)

__all__ = ["DOING", "TAPE_KEY", "GatewayBase", "answers_version", "closest", "tape_key"]

T = TypeVar("T")

#: Connections of one async client: as many as uploads may be in flight at once (the most of
#: ``_run/sinks/pace.py``), so that an upload never waits for a connection.
MAX_CONNECTIONS = 64

#: Request extensions the gateway sets on every request, read by the replay: the read's key
#: on the tape (a GET's key is made of its params as the gateway passed them, which the URL
#: cannot give back: ``limit=100`` is an int there) and what the request is doing (messages).
TAPE_KEY = "pytest_phoenix_evals.tape_key"
DOING = "pytest_phoenix_evals.doing"


def tape_key(kind: str, what: str, arguments: Any) -> str:
    """The snapshot's key for one read request. A dataset version is not part of an examples
    listing's key: the snapshot file is per version already."""
    if kind == "get" and what.endswith("/examples") and isinstance(arguments, dict):
        arguments = {k: v for k, v in arguments.items() if k != "version_id"}
    return json.dumps([kind, what, arguments], sort_keys=True, default=str)


def answers_version(answer: Mapping[str, Any], path: str, wanted: str | None) -> bool:
    """Whether a taped GET answer answers a read of version ``wanted``: an examples
    listing's key leaves its version out (the snapshot file is per version, but the tape of a
    session, or the one xdist's controller hands its workers, may hold several)."""
    if not wanted or not path.rstrip("/").endswith("/examples"):
        return True
    data = answer["json"].get("data") if isinstance(answer["json"], dict) else None
    return isinstance(data, dict) and data.get("version_id") == wanted


class GatewayBase:
    """Synchronous reads for collection time; ``a*`` methods on the engine's loop (one loop).

    ``transport`` (sync and, for the ``a*`` methods, async) replaces the network: the offline
    replay. ``where`` replaces "Phoenix at <url> (from <source>)" in messages.
    """

    def __init__(self, url: str, source: str, *, where: str | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 tape: dict[str, Any] | None = None,
                 primed: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.source = source
        self._where = where
        self._request_headers = _env_headers() if headers is None else dict(headers)
        self._transport = transport
        self._http = httpx.Client(base_url=url, headers=self._request_headers, timeout=TIMEOUT,
                                  transport=transport)
        self._ahttp: httpx.AsyncClient | None = None
        # Every read answer, by request, for the local snapshot (--phoenix-offline replays it).
        self.tape: dict[str, Any] = {} if tape is None else tape
        # A pytest-xdist worker's: the answers xdist's controller read (the datasets, their
        # evaluators), taken instead of asking again, so that every worker runs the version
        # the controller made the experiment for, and the server is asked once, not N+1 times.
        self._primed = dict(primed or {})

    def close(self) -> None:
        self._http.close()

    def reopened(self) -> Self:
        """A gateway to the same server with the same headers, for work after this one was
        closed (the session closes its clients before it decides its gates)."""
        return type(self)(self.url, self.source, where=self._where,
                          headers=self._request_headers, transport=self._transport)

    async def aclose(self) -> None:
        """Close the async client (on the loop that used it)."""
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None

    # --- error handling and retries -------------------------------------------------------

    def where(self) -> str:
        return self._where or f"Phoenix at {mask_url(self.url)} (from {self.source})"

    def explain(self, exc: BaseException, doing: str) -> PhoenixError:
        return explain(exc, doing, self.where())

    def call(self, doing: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the retry policy; its httpx errors become PhoenixError."""
        try:
            return with_retries(fn)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            raise self.explain(exc, doing) from None

    async def acall(self, doing: str, fn: Callable[[], Awaitable[T]], *,
                    observe: Observe | None = None) -> T:
        """:meth:`call` for a coroutine function; ``observe`` is told of every answer."""
        try:
            return await awith_retries(fn, observe=observe)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            raise self.explain(exc, doing) from None

    # --- requests -------------------------------------------------------------------------

    @staticmethod
    def _extensions(doing: str, key: str | None = None) -> dict[str, Any]:
        return {DOING: doing} if key is None else {DOING: doing, TAPE_KEY: key}

    def _graphql(self, query: str, variables: dict[str, Any], doing: str, *,
                 read: bool = True) -> dict[str, Any]:
        """A GraphQL request; its ``data`` (a query's answer goes on the tape)."""
        key = tape_key("graphql", query, variables) if read else None
        if key is not None and key in self._primed:
            self.tape[key] = self._primed[key]
            return dict(self._primed[key].get("data") or {})

        def post() -> dict[str, Any]:
            response = self._http.post("graphql", json={"query": query, "variables": variables},
                                       extensions=self._extensions(doing, key))
            response.raise_for_status()
            return self._graphql_answer(response, doing)

        payload = self.call(doing, post)
        if payload.get("errors"):
            messages = "; ".join(e.get("message", str(e)) for e in payload["errors"])
            raise PhoenixError(f"{self.where()} rejected the query while {doing}: {messages}")
        if key is not None:
            self.tape[key] = payload
        return dict(payload.get("data") or {})

    def _get(self, path: str, params: Any, doing: str, *, read: bool = True) -> httpx.Response:
        """A REST read; 4xx answers are the caller's to read (a JSON one goes on the tape,
        unless ``read`` is False: what no offline run replays, such as spans)."""
        key = tape_key("get", path, params) if read else None

        def get() -> httpx.Response:
            return raise_for_retryable(self._http.get(
                path, params=params, extensions=self._extensions(doing, key)))

        primed = self._primed.get(key) if key is not None else None
        wanted = params.get("version_id") if isinstance(params, dict) else None
        if primed is not None and not answers_version(primed, path, wanted):
            primed = None
        response = httpx.Response(
            primed["status"], json=primed["json"],
            request=httpx.Request("GET", f"{self.url.rstrip('/')}/{path}")) \
            if primed is not None else self.call(doing, get)
        if key is not None and "json" in response.headers.get("content-type", ""):
            self.tape[key] = {"status": response.status_code,
                              "json": self._json(response, doing)}
        return response

    def _json(self, response: httpx.Response, doing: str, field: str | None = None) -> Any:
        """The answer's JSON (with ``field``: an object holding it); PhoenixError saying this
        is not the Phoenix API when it is anything else (an SSO login page, another service).
        Every JSON answer the gateway reads goes through here."""
        return json_body(response, doing, self.where(), field)

    def _graphql_answer(self, response: httpx.Response, doing: str) -> dict[str, Any]:
        """A GraphQL answer: an object with ``data`` or ``errors`` (else not the API)."""
        payload = self._json(response, doing)
        if not isinstance(payload, dict) or not {"data", "errors"} & payload.keys():
            raise not_the_api(response, doing, self.where())
        return payload

    def _raise_for_status(self, response: httpx.Response, doing: str) -> None:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise self.explain(exc, doing) from None

    # --- listings, addresses, the async client --------------------------------------------

    def pages(self, path: str, doing: str, *, limit: int = 100,
              read: bool = True) -> Iterator[dict[str, Any]]:
        """Every item of a REST listing, page by page (``limit`` a page, following
        ``next_cursor``); ``read`` as for :meth:`_get`."""
        cursor = None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            response = self._get(path, params, doing, read=read)
            self._raise_for_status(response, doing)
            body = self._json(response, doing, "data")
            yield from body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def experiment_url(self, dataset_id: str, experiment_id: str) -> str:
        return f"{mask_url(self.url)}/datasets/{dataset_id}/compare?experimentId={experiment_id}"

    # --- on the engine's loop -------------------------------------------------------------

    def async_http(self) -> httpx.AsyncClient:
        """A new HTTP client on the same server, with the same headers; one loop only (the
        caller closes it)."""
        transport = self._transport
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError("the gateway's transport has no async side")
        return httpx.AsyncClient(base_url=self.url, headers=self._request_headers,
                                 timeout=TIMEOUT, transport=transport,
                                 limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                                                     max_keepalive_connections=MAX_CONNECTIONS))

    def _async(self) -> httpx.AsyncClient:
        """The gateway's own async client (closed by :meth:`aclose`)."""
        if self._ahttp is None:
            self._ahttp = self.async_http()
        return self._ahttp


def _env_headers() -> dict[str, str]:
    # GatewayBase.__init__'s ``headers`` parameter hides the module's function of that name.
    return headers()


def closest(what: str, wanted: str, available: Sequence[str]) -> str:
    """A message's end naming the ``available`` names closest to ``wanted`` (else some)."""
    if not available:
        return f" There are no {what}."
    close = difflib.get_close_matches(wanted, available, n=5, cutoff=0.4)
    if close:
        return f" Closest {what}: {', '.join(close)}."
    shown = sorted(available)[:10]
    more = f" and {len(available) - 10} more" if len(available) > 10 else ""
    return f" Available {what}: {', '.join(shown)}{more}."
