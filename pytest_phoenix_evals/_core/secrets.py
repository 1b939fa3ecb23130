"""Secrets never leave the process: every text we print, log or upload passes :func:`redact`.

The values to hide are read from the environment when first needed: provider and Phoenix API
keys, client headers, and any variable whose name says it holds a key, token, secret or
password. Values registered at run time (a key given on the command line) are hidden too.
"""

from __future__ import annotations

import os
import re
from typing import Any

_NAMED = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "PHOENIX_API_KEY", "PHOENIX_CLIENT_HEADERS",
          "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
_SECRET_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$")
MASK = "***"
_extra: set[str] = set()


# The values found by the last scan, and what they were found in: redact() runs several times
# per annotation, and scanning the environment costs about 50 µs, against about 1 µs to see
# whether it changed since.
_cache: tuple[object, list[str]] | None = None


def register(value: str | None) -> None:
    """Hide ``value`` in everything redacted from now on."""
    if value and len(value) >= 6:
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


def _scan() -> list[str]:
    found = set(_extra)
    for name, value in os.environ.items():
        if (name in _NAMED or _SECRET_NAME.search(name)) and value and len(value) >= 6:
            found.add(value)
            # Header lists ("Authorization=Bearer abc,x-key=def") hide each value on its own.
            if name == "PHOENIX_CLIENT_HEADERS":
                for part in value.split(","):
                    _, _, header_value = part.partition("=")
                    if len(header_value.strip()) >= 6:
                        found.add(header_value.strip())
                        found.add(header_value.strip().removeprefix("Bearer ").strip())
    # Longest first, so a key containing another is hidden whole.
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    for value in _values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_value(value: Any) -> Any:
    """``value`` with every string inside it redacted (dicts, lists, tuples)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value
