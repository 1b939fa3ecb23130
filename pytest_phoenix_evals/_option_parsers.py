"""The option table's parsers: from an option's value as given to its setting.

Each takes the value as the command line, the ini file or the environment gave it (a str, a list
of str for list options, a bool for flags) and where it came from (``--phoenix-limit``, ``ini
phoenix_evals_limit``, ``env PHOENIX_EVALS_LIMIT``). It returns the setting, or None to keep the
default, and raises :class:`pytest.UsageError` naming where the value came from. The option table
is in ``_options.py``; this module is loaded with it in every pytest run, so what a parser needs
beyond pytest and the standard library is imported when it is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from ._judge_settings import parse_price

if TYPE_CHECKING:
    from ._core.gates import Gate
    from ._core.verdict import Threshold

# (the value as given, where it came from) -> the setting; None keeps the default.
Parse = Callable[[Any, str], Any]


def verbatim(value: str, source: str) -> str:
    return value


def text(value: str, source: str) -> str | None:
    """The text as given; an empty one is not set."""
    return value or None


def flag(value: bool, source: str) -> bool:
    return bool(value)


def strings(values: list[str], source: str) -> tuple[str, ...]:
    return tuple(values)


def comma_separated(values: list[str], source: str) -> tuple[str, ...]:
    return tuple(part.strip() for given in values for part in given.split(",") if part.strip())


def number(kind: type[int] | type[float], minimum: float = 0) -> Parse:
    what = "an integer" if kind is int else "a number"

    def parse(value: str, source: str) -> float:
        got: float | None
        try:
            got = kind(str(value).strip())
        except ValueError:
            got = None
        if got is not None and not math.isfinite(got):  # nan, inf: float only
            raise pytest.UsageError(f"{source}: {value!r} is not a finite number >= {minimum}")
        if got is None or got < minimum:
            raise pytest.UsageError(f"{source}: {value!r} is not {what} >= {minimum}")
        return got

    return parse


class Several(dict[str, Any]):
    """What a parser returns when one option fills several settings: each by its name."""


def repetitions(value: str, source: str) -> int | Several:
    """--phoenix-repetitions: N runs of each example, or ``auto[:N]`` (once, again only while
    its verdict is unsettled, at most N times: the bound and ``repetitions_auto``)."""
    from ._core.repeat import parse_repetitions

    try:
        n, auto = parse_repetitions(str(value))
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None
    return Several(repetitions=n, repetitions_auto=True) if auto else n


def regression(value: str, source: str) -> float | str:
    """--phoenix-max-regression: a fraction of a pass rate (0.05 = 5 points), or
    ``significant`` (a regression the paired test finds at --phoenix-alpha)."""
    if str(value).strip().lower() == "significant":
        return "significant"
    return float(number(float)(value, source))


def fraction_open(value: str, source: str) -> float:
    """A probability strictly between 0 and 1 (a significance level)."""
    try:
        got = float(str(value).strip())
    except ValueError:
        got = math.nan
    if not 0 < got < 1:
        raise pytest.UsageError(f"{source}: {value!r} is not a level between 0 and 1, for "
                                f"example 0.05")
    return got


def choice(choices: tuple[str, ...]) -> Parse:
    """One of ``choices``, in any case; an empty value keeps the default."""
    quoted = [f"{one!r}" for one in choices]
    listed = ", ".join(quoted[:-1]) + " or " + quoted[-1]

    def parse(value: str, source: str) -> str | None:
        if not value:
            return None
        picked = value.strip().lower()
        if picked not in choices:
            raise pytest.UsageError(f"{source}: {value!r} is not {listed}")
        return picked

    return parse


def task(value: str, source: str) -> str:
    kind, _, rest = value.partition(":")
    if kind in ("prompt", "prompt-file"):
        if not rest.strip() or rest.startswith("@") or rest.endswith("@"):
            raise pytest.UsageError(f"{source}: {value!r} names no prompt: prompt:NAME, "
                                    f"prompt:NAME@TAG or prompt-file:PATH")
        return value
    if value.count(":") != 1 or not all(value.split(":")):
        raise pytest.UsageError(f"{source}: {value!r} is not of the form module:function (for "
                                f"example my_app.qa:answer), prompt:NAME[@TAG] or "
                                f"prompt-file:PATH")
    return value


def dot_path(value: str, source: str) -> str:
    """A dot path into the example (the playground's); "" or "." is the whole context."""
    value = value.strip()
    if value in ("", "."):
        return ""
    if any(not part or not part.strip() for part in value.split(".")):
        raise pytest.UsageError(f"{source}: {value!r} is not a dot path such as input or "
                                f"input.question")
    return value


def thresholds(values: list[str], source: str) -> dict[str, Threshold]:
    from ._core.verdict import parse_threshold

    found = {}
    for given in values:
        try:
            threshold = parse_threshold(given)
        except ValueError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
        found[threshold.name] = threshold
    return found


def gates(values: list[str], source: str) -> tuple[Gate, ...]:
    if not values:
        return ()
    from ._core.gates import parse_gate

    found = []
    for given in values:
        try:
            found.append(parse_gate(given))
        except ValueError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
    return tuple(found)


def results_path(value: str, source: str) -> str | None:
    if not value:
        return None
    from ._report.outputs import check_results_path

    if problem := check_results_path(value):
        raise pytest.UsageError(f"{source}: {problem}")
    return value


def moment(value: str, source: str) -> Any:
    if not value:
        return None
    from ._core.window import parse_moment

    try:
        return parse_moment(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def seconds(value: str, source: str) -> float:
    """A duration (``90s``, ``2m``); a bare number is seconds."""
    from ._core.window import check_seconds, parse_duration

    try:
        return check_seconds(float(value), value) if value.strip().replace(".", "", 1).isdigit() \
            else parse_duration(value).total_seconds()
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def shard(value: str, source: str) -> tuple[int, int] | None:
    """``K/N``: the K-th of N shards (1-based)."""
    if not value:
        return None
    from ._core.window import parse_shard

    try:
        return parse_shard(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: {exc}") from None


def jsonpath(value: str, source: str) -> str | None:
    """A JSONPath the server would store (its syntax check)."""
    if not value:
        return None
    from ._evaluators.mapping import path_problem

    if problem := path_problem(value):
        raise pytest.UsageError(f"{source}: {value!r}: {problem}")
    return value


def fraction(value: str, source: str) -> float:
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0 < share <= 1:
        raise pytest.UsageError(f"{source}: {value!r} is not a fraction in (0, 1], for "
                                f"example 0.8 for 80 %% of the spans".replace("%%", "%"))
    return share


def prices(values: list[str], source: str) -> dict[str, tuple[float, float]]:
    found = {}
    for given in values:
        try:
            model, price = parse_price(given)
        except ValueError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None
        found[model] = price
    return found
