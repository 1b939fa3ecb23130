"""Aggregate gates (--phoenix-fail-under): a session passes or fails on pass rates and means.

A gate is ``NAME=0.9`` (at least 90 % of the cases pass annotation NAME; ``NAME>=0.9`` and
``NAME=90%`` say the same) or ``mean(NAME)>=0.8`` (the mean score; ``>``, ``<=`` and ``<``
too, for scores where lower is better). A suffix scopes it: ``@split`` checks each split of
the dataset on its own, ``@split=hard`` only the examples in split ``hard``, ``@metadata.KEY``
each value of the example metadata KEY, ``@metadata.KEY=VALUE`` only those examples.

Every selected case is in every denominator. A case whose task failed, whose evaluator
errored, or that never ran (``-x``, an interrupt, a crash) counts as failing a pass-rate gate;
a mean gate fails outright when any of its cases has no score, and so does any gate when a
case never ran: a gate never passes on an incomplete run.
"""

from __future__ import annotations

import math
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .types import Case, CaseResult, Example

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_GATE = re.compile(
    r"""^\s*(?:(?P<mean>mean)\(\s*(?P<mean_name>[^()]+?)\s*\)|(?P<name>[^=<>@]+?))\s*
    (?P<op>>=|<=|=|>|<)\s*(?P<value>[-+0-9.eE]+)\s*(?P<percent>%)?\s*
    (?:@\s*(?P<scope>split|metadata\.[^=\s]+)\s*(?:=\s*(?P<only>.+?))?)?\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Gate:
    text: str
    name: str  # the annotation
    mean: bool  # a mean score, else a pass rate
    op: str
    value: float
    scope: str | None = None  # "split" or "metadata.KEY"
    only: str | None = None  # the one split / metadata value checked, else each one

    def describe(self) -> str:
        what = f"mean({self.name})" if self.mean else f"pass rate of {self.name}"
        bound = f"{self.value:g}" if self.mean else f"{100 * self.value:g}%"
        return f"{what} {self.op} {bound}"


def parse_gate(text: str) -> Gate:
    match = _GATE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a gate: use NAME=0.9 (pass rate), mean(NAME)>=0.8 (mean score; "
            f"also >, <=, <), optionally followed by @split, @split=NAME, @metadata.KEY or "
            f"@metadata.KEY=VALUE")
    mean = match["mean"] is not None
    name = (match["mean_name"] if mean else match["name"]).strip()
    op = ">=" if match["op"] == "=" else match["op"]
    try:
        value = float(match["value"])
    except ValueError:
        raise ValueError(f"{text!r}: {match['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r}: the bound must be a finite number")
    if match["percent"]:
        value /= 100
    if not mean:
        if op != ">=":
            raise ValueError(f"{text!r}: a pass-rate gate is NAME=RATE (at least RATE); "
                             f"use mean(NAME){op}X for other comparisons")
        if not 0 <= value <= 1:
            raise ValueError(f"{text!r}: a pass rate is between 0 and 1 (or 0% and 100%)")
    return Gate(text=text.strip(), name=name, mean=mean, op=op, value=value,
                scope=match["scope"], only=match["only"])


@dataclass
class GateResult:
    gate: Gate
    dataset: str
    group: str | None  # the split or metadata value, for a scoped gate
    cases: int
    value: float | None
    passed: bool
    detail: str = ""

    @property
    def where(self) -> str:
        if self.gate.scope is None:
            return self.dataset
        return f"{self.dataset} [{self.gate.scope}={self.group}]"

    def shown_value(self) -> str:
        if self.value is None:
            return "-"
        return f"{self.value:.4g}" if self.gate.mean else f"{100 * self.value:.1f}%"


def _groups(gate: Gate, example: Example) -> list[str]:
    """The values of the gate's scope this example belongs to (several splits, at most)."""
    if gate.scope is None:
        return [""]
    if gate.scope == "split":
        values = list(example.splits)
    else:
        value: Any = example.metadata
        for key in gate.scope.split(".", 1)[1].split("."):
            value = value.get(key) if isinstance(value, dict) else None
        values = [] if value is None else [str(value)]
    return [v for v in values if gate.only is None or v == gate.only]


def evaluate_gates(gates: Sequence[Gate], expected: Iterable[Case],
                   results: Iterable[CaseResult]) -> list[GateResult]:
    """Each gate on each group of cases (a dataset spec, a test function; and the gate's own
    scope): ``expected`` holds every selected case (with its example's splits); a case
    without a result never ran."""
    by_key: dict[tuple[str, str, int], list[CaseResult]] = defaultdict(list)
    for result in results:
        by_key[result.case.key].append(result)
    datasets: dict[str, list[tuple[Example, CaseResult | None]]] = defaultdict(list)
    for case in expected:
        found = by_key.get(case.key)
        datasets[case.group.label].append((case.example, found.pop(0) if found else None))
    out: list[GateResult] = []
    for gate in gates:
        known = False
        for dataset, cases in datasets.items():
            names = {s.name for _, r in cases if r is not None for s in r.scores}
            if gate.name not in names and any(r is not None and r.error is None
                                              for _, r in cases):
                continue  # this dataset has no such annotation
            known = True
            groups: dict[str, list[tuple[Example, CaseResult | None]]] = defaultdict(list)
            for example, outcome in cases:
                for group in _groups(gate, example):
                    groups[group].append((example, outcome))
            if not groups:
                out.append(GateResult(gate, dataset, gate.only or "?", 0, None, False,
                                      "no case in this group"))
            for group, members in sorted(groups.items()):
                out.append(_evaluate(gate, dataset, group if gate.scope else None, members))
        if not known:
            every = sorted({s.name for cases in datasets.values() for _, r in cases
                            if r is not None for s in r.scores})
            out.append(GateResult(gate, "(every dataset)", None, 0, None, False,
                                  f"no annotation named {gate.name!r}; annotations: "
                                  f"{', '.join(every) or 'none'}"))
    return out


def _evaluate(gate: Gate, dataset: str, group: str | None,
              members: list[tuple[Example, CaseResult | None]]) -> GateResult:
    total = len(members)
    missing = sum(result is None for _, result in members)
    passed = scored = 0
    values: list[float] = []
    asserted = False
    for _, result in members:
        if result is None or result.error is not None:
            continue
        for score, verdict in zip(result.scores, result.verdicts):
            if score.name != gate.name:
                continue
            asserted = asserted or verdict.status != "recorded"
            passed += verdict.status == "pass"
            if score.score is not None and score.error is None:
                scored += 1
                values.append(score.score)
            break
    notes = []
    if missing:
        notes.append(f"{missing} of {total} cases did not run")
    if gate.mean:
        value = sum(values) / len(values) if values else None
        unscored = total - missing - scored
        if unscored:
            notes.append(f"{unscored} case{'s' if unscored != 1 else ''} without a score")
        ok = (value is not None and not missing and not unscored
              and _OPS[gate.op](value, gate.value))
        return GateResult(gate, dataset, group, total, value, ok, "; ".join(notes))
    if not asserted and total > missing:
        return GateResult(gate, dataset, group, total, None, False,
                          f"{gate.name} has no pass rule (a label or score config with a "
                          f"direction, a threshold, or an @evaluator rule); gate on "
                          f"mean({gate.name}) instead")
    value = passed / total if total else None
    ok = value is not None and not missing and value >= gate.value
    return GateResult(gate, dataset, group, total, value, ok, "; ".join(notes))


