"""Time windows and deterministic samples of a project's spans (no pytest, no Phoenix).

``--phoenix-since`` / ``--phoenix-until`` take a duration back from now (``90s``, ``15m``,
``2h``, ``7d``) or an ISO time; ``--phoenix-settle`` keeps the newest spans out of the window,
because spans become queryable some time after they were exported.

A sample of a fraction ``f`` keeps the spans whose id, read as a hexadecimal number, falls in
the lowest ``f`` of the id space: the same span is in or out on every run and host, a lower
rate's sample is inside a higher rate's, and the server can apply it as a filter on the id
(``span_id < '...'``, compared as text, which for ids of the same length is the same order).

A shard ``K/N`` (``--phoenix-shard``) cuts the same id space the same way: the sample's part of
it (all of it without a sample) in N equal ranges, of which it keeps range K. The N shards
together hold every id of the sample exactly once, each shard is the same on every host, and the
server applies it as a filter too (``span_id >= '...' and span_id < '...'``). Ids that are not
hexadecimal (a session's id is whatever the app chose) are placed by the SHA-256 of their text
instead, on this side only.
"""

from __future__ import annotations

import hashlib
import math
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
    #: The seconds --phoenix-settle cut from the end (0 when --phoenix-until ends it earlier,
    #: or there is no settle): a subject newer than the end can be judged once it is this old.
    settle: float = 0.0

    def describe(self) -> str:
        start = self.start.isoformat(timespec="seconds") if self.start else "the first span"
        return f"{start} to {self.end.isoformat(timespec='seconds')}"

    def ready(self, moment: datetime) -> datetime:
        """When something that happened at ``moment`` is old enough for the settle."""
        return moment + timedelta(seconds=self.settle)


def window(since: timedelta | datetime | None, until: timedelta | datetime | None,
           settle: float, now: datetime | None = None) -> Window:
    """The window to list, with the newest ``settle`` seconds left for a later run."""
    now = now or datetime.now(UTC)
    settled = now - timedelta(seconds=settle)
    until_at = _at(until, now) if until is not None else None
    end = min(until_at if until_at is not None else now, settled)
    start = _at(since, now) if since is not None else None
    if start is not None and start >= end:
        raise ValueError(f"the window is empty: it starts {start.isoformat(timespec='seconds')}"
                         f" and ends {end.isoformat(timespec='seconds')} (after --phoenix-"
                         f"settle={settle:g}s)")
    cut = settle if settle > 0 and (until_at is None or until_at > settled) else 0.0
    return Window(start, end, cut)


def parse_time(text: str) -> datetime | None:
    """An ISO time as Phoenix writes it (UTC when it names no zone); None if unreadable."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def describe_ready(ready: datetime, now: datetime | None = None) -> str:
    """``12:03:10 UTC (in 41 s)``: when a subject waiting for the settle can be judged (the
    date too when it is not today's)."""
    now = now or datetime.now(UTC)
    ready = ready.astimezone(UTC)
    shown = ready.strftime("%H:%M:%S UTC" if ready.date() == now.date()
                           else "%Y-%m-%d %H:%M:%S UTC")
    wait = (ready - now).total_seconds()
    if wait <= 0:
        return f"{shown} (now)"
    if wait < 120:
        return f"{shown} (in {math.ceil(wait)} s)"
    if wait < 7200:
        return f"{shown} (in {math.ceil(wait / 60)} min)"
    return f"{shown} (in {wait / 3600:.1f} h)"


def sample_bound(fraction: float) -> str | None:
    """The id prefix below which a span is in a sample of ``fraction`` (None: everything)."""
    if fraction >= 1:
        return None
    return format(int(fraction * 16 ** SAMPLE_DIGITS), f"0{SAMPLE_DIGITS}x")


def in_sample(span_id: str, fraction: float | None) -> bool:
    """The same rule on this side (for what the server could not filter)."""
    return in_selection(span_id, fraction, None)


#: The id space the sample and the shards divide (8 hex digits).
SPACE = 16 ** SAMPLE_DIGITS
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1-based: ``1/4`` to ``4/4``); ValueError naming the form otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a shard K/N, for example 2/4 for the second of "
                         f"four")
    k, n = int(match.group(1)), int(match.group(2))
    if not 1 <= k <= n:
        raise ValueError(f"{text!r}: K must be 1 to N (the shards of {n} are 1/{n} to "
                         f"{n}/{n})" if n else f"{text!r}: N must be at least 1")
    return k, n


def id_range(sample: float | None, shard: tuple[int, int] | None
             ) -> tuple[str | None, str | None]:
    """The id prefixes kept, ``[low, high)`` (None: no bound on that side): the lowest
    ``sample`` of the id space, cut in N equal ranges of which range K is kept. Integer
    arithmetic, so shard K's ``high`` is exactly shard K+1's ``low``."""
    top = SPACE if sample is None or sample >= 1 else int(sample * SPACE)
    low, high = 0, top
    if shard is not None:
        k, n = shard
        low, high = (k - 1) * top // n, k * top // n
    return (format(low, f"0{SAMPLE_DIGITS}x") if low > 0 else None,
            format(high, f"0{SAMPLE_DIGITS}x") if high < SPACE else None)


def id_key(subject: str) -> str:
    """What the sample and the shards compare: a hexadecimal id in lower case; any other id
    (a session's) as the SHA-256 of its text."""
    if _HEX.match(subject):
        return subject.lower()
    return hashlib.sha256(subject.encode()).hexdigest()


def in_selection(subject: str, sample: float | None, shard: tuple[int, int] | None) -> bool:
    """Whether a subject's id is in the sample and the shard (the server's filter, on this
    side)."""
    low, high = id_range(sample, shard)
    key = id_key(subject)[:SAMPLE_DIGITS]
    return (low is None or key >= low) and (high is None or key < high)
