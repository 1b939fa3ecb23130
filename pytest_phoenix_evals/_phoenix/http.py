"""HTTP to Phoenix: where the server is, what every request sends, and the one retry policy.

Every request to Phoenix (the gateway's reads and uploads, the tracing exporter's OTLP posts)
is retried by :func:`with_retries` / :func:`awith_retries`: on connection errors and other
transport failures, on 5xx answers and on 429, waiting the delays of :data:`RETRY_DELAYS` in
turn, or what the server asks for in ``Retry-After`` (or ``retry-after-ms``). Every failure
the user sees becomes a :class:`PhoenixError` (:func:`explain`) whose message names the server
and what to do.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: Seconds to wait before each retry; one attempt more than there are delays. Read at every
#: call, so that tests may monkeypatch it.
RETRY_DELAYS: Sequence[float] = (0.5, 1.0, 2.0)
#: A server asking to wait longer than this (Retry-After) is not waited for: the request
#: fails at once, with the server's answer, rather than holding a test session for minutes.
MAX_RETRY_AFTER = 60.0
# The client's own precedence for the server's address (phoenix.client.utils.config).
CLIENT_URL_VARIABLES = ("PHOENIX_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT",
                        "OTEL_EXPORTER_OTLP_ENDPOINT", "PHOENIX_BASE_URL", "PHOENIX_HOST")


class PhoenixError(Exception):
    """A failure talking to Phoenix, with a message meant for the user.

    ``status`` and ``body`` are the HTTP status and the start of the answer's text when the
    server answered (None when it was not reached).
    """

    def __init__(self, message: str, *, status: int | None = None,
                 body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def mask_url(url: str) -> str:
    """The URL safe to print: no user:password part, no value of a query parameter named
    like a secret (``?api-key=***``), no known secret (the secret filter's rules)."""
    from .._core.secrets import redact

    return redact(url)


def resolve_url(explicit: str | None, explicit_source: str | None) -> tuple[str, str]:
    """The server's URL and where it came from (for messages)."""
    if explicit:
        return explicit.rstrip("/"), explicit_source or "--phoenix-url"
    from phoenix.client.utils.config import get_base_url

    url = str(get_base_url()).rstrip("/")
    source = next((var for var in CLIENT_URL_VARIABLES if os.environ.get(var)), None)
    return url, source or "arize-phoenix-client's default (no PHOENIX_* variable set)"


def headers() -> dict[str, str]:
    """The headers every request to Phoenix carries: ``PHOENIX_CLIENT_HEADERS`` and the
    ``PHOENIX_API_KEY`` as a bearer token, read the way arize-phoenix-client reads them."""
    from phoenix.client.utils.config import get_env_client_headers, get_env_phoenix_api_key

    found = dict(get_env_client_headers())
    if api_key := get_env_phoenix_api_key():
        found["Authorization"] = f"Bearer {api_key}"
    return found


def explain(exc: BaseException, doing: str, where: str) -> PhoenixError:
    """``exc`` (raised while ``doing``) as a message for the user naming ``where``."""
    if isinstance(exc, PhoenixError):
        return exc
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        text = exc.response.text.strip()
        if status in (401, 403):
            return PhoenixError(
                f"{where} refused {doing} ({status}): set PHOENIX_API_KEY to a valid "
                f"API key for this server", status=status, body=text[:1000])
        return PhoenixError(f"{where} answered {status} while {doing}: {text[:300]}",
                            status=status, body=text[:1000])
    if isinstance(exc, httpx.TransportError):
        return PhoenixError(
            f"cannot reach {where} while {doing}: {type(exc).__name__}: {exc}. "
            f"Point --phoenix-url (or PHOENIX_COLLECTOR_ENDPOINT) at a running Phoenix, or "
            f"start one: 'pip install arize-phoenix' then 'phoenix serve', or 'docker run -p "
            f"6006:6006 arizephoenix/phoenix' (installing this plugin installs no server; "
            f"see docs/your-project.md).")
    return PhoenixError(f"{where}: {doing} failed: {type(exc).__name__}: {exc}")


def json_body(response: httpx.Response, doing: str, where: str,
              field: str | None = None) -> Any:
    """The answer's JSON (with ``field``: an object that has it). Anything else, such as an
    SSO login page or another service answering at the URL, is a :class:`PhoenixError`
    saying that this is not the Phoenix API and what came back, never a JSONDecodeError."""
    try:
        body = response.json()
    except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
        raise not_the_api(response, doing, where) from None
    if field is not None and not (isinstance(body, dict) and field in body):
        raise not_the_api(response, doing, where)
    return body


def not_the_api(response: httpx.Response, doing: str, where: str) -> PhoenixError:
    """The message for an answer that is not one of the Phoenix API's."""
    kind = response.headers.get("content-type") or "no content type"
    try:
        text = response.text
    except Exception:  # an encoding httpx cannot decode
        text = repr(response.content[:300])
    start = " ".join(text.split())[:200] or "(an empty body)"
    return PhoenixError(
        f"{where} is not the Phoenix API: while {doing} it answered {response.status_code} "
        f"({kind}): {start!r}. Check --phoenix-url / PHOENIX_COLLECTOR_ENDPOINT: is it the "
        f"Phoenix server itself, or an SSO or proxy login page in front of it?",
        status=response.status_code, body=text[:1000])


# --- the retry policy ---------------------------------------------------------------------


def retryable_status(status: int) -> bool:
    """An answer worth another attempt: the server failed (5xx) or is at capacity (429)."""
    return status >= 500 or status == 429


def retryable(exc: BaseException, *, retry_connect: bool = True) -> bool:
    """Whether the request that raised ``exc`` is worth another attempt. ``retry_connect``
    False gives up at once when nobody listens (a refused connection)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return retryable_status(exc.response.status_code)
    if isinstance(exc, httpx.ConnectError) and not retry_connect:
        return False
    return isinstance(exc, httpx.TransportError)


def refusal(exc: BaseException) -> str | None:
    """``"<status> <start of the answer>"`` when ``exc`` is the server refusing a request
    (4xx: another attempt would be refused too), None for any other failure."""
    if isinstance(exc, httpx.HTTPStatusError):
        status, text = exc.response.status_code, exc.response.text
    elif isinstance(exc, PhoenixError) and exc.status is not None:
        status, text = exc.status, exc.body or ""
    else:
        return None
    return None if retryable_status(status) else f"{status} {text[:200]}"


def raise_for_retryable(response: httpx.Response) -> httpx.Response:
    """The response, unless its status is worth a retry (then HTTPStatusError): for calls
    that read 4xx answers themselves (404 = not found) but leave 5xx and 429 to the policy."""
    if retryable_status(response.status_code):
        response.raise_for_status()
    return response


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asks to wait before trying again (``retry-after-ms``, else
    ``Retry-After`` as seconds or an HTTP date); None when it does not say."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _pause(exc: BaseException, delay: float | None, retry_connect: bool,
           deadline: float | None) -> float | None:
    """How long to wait before the next attempt after ``exc``; None to give up."""
    if delay is None or not retryable(exc, retry_connect=retry_connect):
        return None
    pause = delay
    if isinstance(exc, httpx.HTTPStatusError):
        asked = retry_after(exc.response)
        if asked is not None:
            if asked > MAX_RETRY_AFTER:
                return None
            pause = asked
    if deadline is not None and time.monotonic() + pause >= deadline:
        return None
    return pause


def with_retries(fn: Callable[[], T], *, delays: Sequence[float] | None = None,
                 retry_connect: bool = True, deadline: float | None = None,
                 wait: Callable[[float], object] = time.sleep) -> T:
    """Run ``fn`` (which raises httpx errors, e.g. by ``raise_for_status``), again after each
    delay (default :data:`RETRY_DELAYS`) while it fails in a way worth a retry; the last
    error is raised. ``deadline`` (``time.monotonic()``) bounds the waiting; ``wait`` sleeps
    and returns true to stop retrying (``threading.Event.wait``)."""
    schedule = RETRY_DELAYS if delays is None else delays
    for delay in (*schedule, None):
        try:
            return fn()
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            pause = _pause(exc, delay, retry_connect, deadline)
            if pause is None or wait(pause):
                raise
    raise AssertionError("unreachable")


#: Told of each attempt's answer: its seconds, and None when it was accepted or the HTTP status
#: when it was refused (how the uploads pace themselves: ``_run/sinks/pace.py``).
Observe = Callable[[float, "int | None"], None]


async def awith_retries(fn: Callable[[], Awaitable[T]], *,
                        delays: Sequence[float] | None = None,
                        observe: Observe | None = None) -> T:
    """:func:`with_retries` for a coroutine function, waiting with ``asyncio.sleep``;
    ``observe`` is told of every attempt that got an answer."""
    schedule = RETRY_DELAYS if delays is None else delays
    for delay in (*schedule, None):
        started = time.monotonic()
        try:
            result = await fn()
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            if observe is not None and isinstance(exc, httpx.HTTPStatusError):
                observe(time.monotonic() - started, exc.response.status_code)
            pause = _pause(exc, delay, True, None)
            if pause is None:
                raise
            await asyncio.sleep(pause)
        else:
            if observe is not None:
                observe(time.monotonic() - started, None)
            return result
    raise AssertionError("unreachable")
