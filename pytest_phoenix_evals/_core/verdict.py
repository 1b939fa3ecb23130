"""Verdicts: whether a score passes, and why.

Rules, in order (README, "Verdict rules"):
1. An evaluator error fails.
2. A user threshold on the annotation's name (``--phoenix-threshold 'name<=3'``) decides.
3. A pass rule the evaluator declares itself (code evaluators) decides.
4. A categorical config with direction MAXIMIZE or MINIMIZE passes the best label(s).
5. A freeform config with its own threshold compares the score in the config's direction.
6. A boolean result of a code evaluator (label "True"/"False") passes when True.
7. Anything else (continuous scores without a threshold, direction NONE) is recorded only.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .types import OutputConfig, Score, Verdict

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
_THRESHOLD = re.compile(r"^\s*(?P<name>[^<>=!\s][^<>=!]*?)?\s*(?P<op><=|>=|==|!=|<|>)\s*"
                        r"(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Threshold:
    """``score <op> value`` for the annotation called ``name``."""

    name: str
    op: str
    value: float

    def check(self, score: float) -> bool:
        return _OPS[self.op](score, self.value)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


def parse_threshold(text: str, *, name: str | None = None) -> Threshold:
    """Parse ``'edit_distance<=3'`` (or ``'>=0.8'`` when ``name`` is given).

    Raises ValueError naming the expected form.
    """
    match = _THRESHOLD.match(text)
    parsed_name = (match.group("name") or "").strip() if match else ""
    if not match or not (parsed_name or name) or (parsed_name and name):
        form = "'<op><number>', for example '>=0.8'" if name else \
            "'<annotation name><op><number>', for example 'levenshtein_distance<=3'"
        raise ValueError(f"invalid threshold {text!r}: expected {form}; <op> is one of "
                         f"{', '.join(_OPS)}")
    return Threshold(name=parsed_name or str(name), op=match.group("op"),
                     value=float(match.group("value")))


def decide(
    score: Score,
    thresholds: Mapping[str, Threshold],
    declared: Callable[[Score], Verdict | None] | None = None,
) -> Verdict:
    """The verdict for one score (see the module docstring for the rules)."""
    if score.error is not None:
        return Verdict("error", "the evaluator errored")
    threshold = thresholds.get(score.name) or thresholds.get(score.evaluator)
    if threshold is not None:
        return compare(score, threshold, "--phoenix-threshold")
    if declared is not None and (verdict := declared(score)) is not None:
        return verdict
    config = score.config
    if config is not None:
        labelled = _label_verdicts(config)
        if labelled is not None:
            best, passed, failed = labelled
            return passed if score.label in best else failed
        if config.kind == "FREEFORM" and config.threshold is not None and \
                config.direction != "NONE":
            op = ">=" if config.direction == "MAXIMIZE" else "<="
            return compare(score, Threshold(score.name, op, config.threshold), "config")
        if config.direction == "NONE":
            return Verdict("recorded", "direction NONE: recorded, not asserted")
        return Verdict("recorded", "no threshold set")
    if score.label in ("True", "False") and score.score in (0.0, 1.0):
        return Verdict("pass" if score.label == "True" else "fail", "boolean result")
    return Verdict("recorded", "no threshold set")


@functools.lru_cache(maxsize=256)
def _label_verdicts(config: OutputConfig) -> tuple[frozenset[str], Verdict, Verdict] | None:
    """A categorical config's best labels and its two verdicts, made once per config: every
    case's verdict is one of these (a run of 10,000 spans holds 20,000 verdicts, issue 28)."""
    best = config.best_labels()
    if best is None:
        return None
    rule = f"label must be {' or '.join(sorted(best))} (best for {config.direction})"
    return best, Verdict("pass", rule), Verdict("fail", rule)


def compare(score: Score, threshold: Threshold, source: str) -> Verdict:
    rule = f"score must be {threshold.op} {threshold.value:g} ({source})"
    if score.score is None:
        return Verdict("fail", f"{rule}, but there is no score")
    return Verdict("pass" if threshold.check(score.score) else "fail", rule)


def declared(score: Score, threshold: Threshold | None = None,
             pass_labels: frozenset[str] | None = None,
             passes: Callable[[Score], bool] | None = None) -> Verdict | None:
    """The pass rule an evaluator declared for itself, or None to use the default rules."""
    if passes is not None:
        return Verdict("pass" if passes(score) else "fail",
                       f"{callable_name(passes)}(score) must be true (declared)")
    if pass_labels is not None:
        ok = score.label in pass_labels
        return Verdict("pass" if ok else "fail",
                       f"label must be {' or '.join(sorted(pass_labels))} (declared)")
    if threshold is not None:
        return compare(score, threshold, "declared")
    return None


def callable_name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, functools.partial):
        return fn.func.__qualname__
    qualname = getattr(fn, "__qualname__", None)
    if qualname and not qualname.endswith("<lambda>"):
        return str(qualname.split(".<locals>.")[-1])
    return str(getattr(fn, "__name__", fn))
