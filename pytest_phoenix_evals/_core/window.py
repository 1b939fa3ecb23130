"""Time windows and deterministic samples of a project's spans (no pytest, no Phoenix).

``--phoenix-since`` / ``--phoenix-until`` take a duration back from now (``90s``, ``15m``,
``2h``, ``7d``) or an ISO time; ``--phoenix-settle`` keeps the newest spans out of the window,
because spans become queryable some time after they were exported.

A sample of a fraction ``f`` keeps the spans whose id, read as a hexadecimal number, falls in
the lowest ``f`` of the id space: the same span is in or out on every run and host, a lower
rate's sample is inside a higher rate's, and the server can apply it as a filter on the id
(``span_id < '...'``, compared as text, which for ids of the same length is the same order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# How many hex digits of the id decide the sample: 8 give 2**32 buckets.
SAMPLE_DIGITS = 8
# The longest duration taken: 100 years back reaches before any span, and a window computed
# as "now less the duration" stays inside the dates datetime can hold (year 1 onwards).
MAX_DAYS = 36500


def check_seconds(seconds: float, text: str) -> float:
    """``seconds`` if at most :data:`MAX_DAYS` days, else ValueError naming the largest."""
    if not seconds <= MAX_DAYS * 86400:  # (also nan)
        raise ValueError(f"{text.strip()!r} is too long: at most {MAX_DAYS}d (100 years)")
    return seconds


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d`` (ValueError naming the forms otherwise)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 2h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    return timedelta(seconds=check_seconds(seconds, text))


def parse_moment(text: str) -> timedelta | datetime:
    """A duration back from now, or an ISO time (UTC when it names no zone)."""
    if _DURATION.match(text):
        return parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration back from now (90s, 15m, 2h, 7d) "
                         f"nor an ISO time (2026-12-01T08:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _at(moment: timedelta | datetime, now: datetime) -> datetime:
    return now - moment if isinstance(moment, timedelta) else moment


@dataclass(frozen=True)
class Window:
    """Span start times from ``start`` (None: the beginning) up to ``end``, exclusive."""

    start: datetime | None
    end: datetime

    def describe(self) -> str:
        start = self.start.isoformat(timespec="seconds") if self.start else "the first span"
        return f"{start} to {self.end.isoformat(timespec='seconds')}"


def window(since: timedelta | datetime | None, until: timedelta | datetime | None,
           settle: float, now: datetime | None = None) -> Window:
    """The window to list, with the newest ``settle`` seconds left for a later run."""
    now = now or datetime.now(UTC)
    end = min(_at(until, now) if until is not None else now, now - timedelta(seconds=settle))
    start = _at(since, now) if since is not None else None
    if start is not None and start >= end:
        raise ValueError(f"the window is empty: it starts {start.isoformat(timespec='seconds')}"
                         f" and ends {end.isoformat(timespec='seconds')} (after --phoenix-"
                         f"settle={settle:g}s)")
    return Window(start, end)


def sample_bound(fraction: float) -> str | None:
    """The id prefix below which a span is in a sample of ``fraction`` (None: everything)."""
    if fraction >= 1:
        return None
    return format(int(fraction * 16 ** SAMPLE_DIGITS), f"0{SAMPLE_DIGITS}x")


def in_sample(span_id: str, fraction: float | None) -> bool:
    """The same rule on this side (for what the server could not filter)."""
    bound = sample_bound(fraction) if fraction is not None else None
    return bound is None or span_id[:SAMPLE_DIGITS].lower() < bound
