"""Text that can always be written: every string a result carries is encodable as UTF-8."""

from __future__ import annotations

from typing import Any


def encodable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8. A lone surrogate (text decoded
    with ``surrogateescape``, or cut from a UTF-16 pair) cannot be written to a file or sent;
    it becomes its ``\\udcXX`` escape, so the rest of the text still goes everywhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value
