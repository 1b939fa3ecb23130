"""Secrets never leave the process: every text we print, log or upload passes :func:`redact`.

Two kinds of secret are hidden:

- **Known values**, read from the environment when first needed: provider and Phoenix API
  keys, every value in a header list (``PHOENIX_CLIENT_HEADERS``,
  ``OTEL_EXPORTER_OTLP_HEADERS`` and its per-signal variants; ``k=v`` pairs separated by
  commas, values URL-decoded), and any variable whose name says it holds a key, token, secret,
  password or credentials. Values registered at run time (a key given on the command line) are
  hidden too. Each is also hidden in its JSON-escaped form, so that a value inside a JSON
  string is found as well.
- **Secrets by position in a URL**: the value of a query parameter whose name says it is one
  (``?api-key=abc&b=1`` becomes ``?api-key=***&b=1``; the names are listed at
  :data:`QUERY_SECRET_NAMES`), and the ``user:password@`` part (``https://***@host``).

:func:`safe_command_line` gives the pytest command line as recorded on an experiment.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

_NAMED = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "PHOENIX_API_KEY", "PHOENIX_CLIENT_HEADERS",
          "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
_SECRET_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$")
#: Variables holding header lists (``Authorization=Bearer%20abc,x-key=def``).
_HEADER_LIST = re.compile(r"^(?:PHOENIX_CLIENT_HEADERS|OTEL_EXPORTER_OTLP_(?:[A-Z]+_)?HEADERS)$")
_AUTH_SCHEME = re.compile(r"(?i)^(?:bearer|basic|token|apikey|api-key)\s+")
MIN_LENGTH = 6
MASK = "***"
_extra: set[str] = set()

#: Query parameter names whose values are masked, matched without regard to case. Each may
#: follow a prefix ending in ``-``, ``_`` or ``.`` (``x-api-key``, ``X-Amz-Signature``,
#: ``client_secret``); ``*`` stands for letters and digits (``accesstoken``, ``pageToken``).
#: ``code`` (an OAuth authorisation code) counts only as the whole name, so that
#: ``country_code`` stays readable.
QUERY_SECRET_NAMES = ("key", "apikey", "api-key", "api_key", "*token", "*secret", "sig",
                      "signature", "password", "passwd", "pwd", "auth", "credential",
                      "credentials", "jwt", "code")
_SECRET_QUERY_NAME = re.compile(
    r"(?i)(?:[\w.~%-]*[-_.])?(?:api[-_]?key|key|\w*token|\w*secret|sig|signature|password"
    r"|passwd|pwd|auth|credentials?|jwt)|code"
)
#: ``?name=value`` or ``&name=value`` (``;`` too): the value ends where the URL or its query
#: does, or at a quote, a bracket or a backslash (a URL inside JSON or a repr).
_QUERY_PAIR = re.compile(r"([?&;])([\w.~%-]{1,64})=([^&#;\s\"'<>\\)\]}]+)")
#: ``scheme://user:password@`` (or ``scheme://token@``): the credentials part of a URL.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,31}://)[^/?#@\s\"'<>\\]+@")

#: An option on the command line whose name says it holds a secret: ``--api-key=abc``.
_SECRET_ARG = re.compile(r"(?i)^(--?[\w-]*(?:key|token|secret|password|auth)[\w-]*=).*$")


# The values found by the last scan, and what they were found in: redact() runs several times
# per annotation, and scanning the environment costs about 50 µs, against about 1 µs to see
# whether it changed since.
_cache: tuple[object, list[str]] | None = None


def register(value: str | None) -> None:
    """Hide ``value`` in everything redacted from now on."""
    if value and len(value) >= MIN_LENGTH:
        _extra.add(value)


def _fingerprint() -> object:
    # os.environ keeps its raw strings in ``_data``; fall back to a decoded copy elsewhere.
    raw = getattr(os.environ, "_data", None)
    items = tuple(raw.items()) if isinstance(raw, dict) else tuple(os.environ.items())
    return items, frozenset(_extra)


def _values() -> list[str]:
    global _cache
    fingerprint = _fingerprint()
    if _cache is not None and _cache[0] == fingerprint:
        return _cache[1]
    values = _scan()
    _cache = (fingerprint, values)
    return values


def header_values(header_list: str) -> list[str]:
    """The values of a header list (``k=v`` pairs separated by commas), as given and
    URL-decoded, each also without an auth scheme (``Bearer abc`` gives ``abc`` too)."""
    found = []
    for part in header_list.split(","):
        _, _, value = part.partition("=")
        for candidate in (value.strip(), unquote(value).strip()):
            found += [candidate, _AUTH_SCHEME.sub("", candidate).strip()]
    return list(dict.fromkeys(found))


def _scan() -> list[str]:
    found = set(_extra)
    for name, value in os.environ.items():
        header_list = bool(_HEADER_LIST.match(name))
        if not (header_list or name in _NAMED or _SECRET_NAME.search(name)):
            continue
        found.add(value)
        if header_list:
            # Each value on its own: it is what a request carries, and what gets echoed.
            found.update(header_values(value))
    # A value inside a JSON string is escaped (quotes, backslashes, control characters, and
    # non-ASCII characters when ensure_ascii is on): hide those forms as well.
    for value in list(found):
        for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
            found.add(escaped)
    # Longest first, so a key containing another is hidden whole.
    return sorted((v for v in found if len(v) >= MIN_LENGTH), key=len, reverse=True)


def _redact(text: str, values: Sequence[str]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    if "=" in text and ("?" in text or "&" in text or ";" in text):
        text = _QUERY_PAIR.sub(_mask_query_value, text)
    if "@" in text and "://" in text:
        text = _USERINFO.sub(r"\1" + MASK + "@", text)
    return text


def _mask_query_value(pair: re.Match[str]) -> str:
    if _SECRET_QUERY_NAME.fullmatch(pair[2]):
        return f"{pair[1]}{pair[2]}={MASK}"
    return pair[0]


def redact(text: str) -> str:
    """``text`` with every secret replaced by ``***``."""
    return _redact(text, _values())


def redactor() -> Callable[[str], str]:
    """:func:`redact` bound to the secrets known now: for many texts at once (the spans of
    one export), without looking at the environment again for each."""
    values = _values()
    return lambda text: _redact(text, values)


def redact_value(value: Any) -> Any:
    """``value`` with every string inside it redacted (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


def safe_command_line(args: Sequence[str]) -> str:
    """The pytest command line with secrets masked: the value of any option whose name says
    it holds a secret (``--api-key=***``), and everything :func:`redact` hides (known values,
    secret query parameters, URL credentials)."""
    scrub = redactor()
    return " ".join(["pytest", *(scrub(_SECRET_ARG.sub(r"\1" + MASK, arg)) for arg in args)])
