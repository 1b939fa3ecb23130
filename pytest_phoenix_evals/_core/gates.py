"""Aggregate gates (--phoenix-fail-under): a session passes or fails on pass rates and means.

A gate is ``NAME=0.9`` (at least 90 % of the cases pass annotation NAME; ``NAME>=0.9`` and
``NAME=90%`` say the same) or ``mean(NAME)>=0.8`` (the mean score; ``>``, ``<=`` and ``<``
too, for scores where lower is better). A judge benchmarked against human labels
(``--phoenix-benchmark``) is gated on its agreement with them: ``agreement(NAME)>=0.9``,
``kappa(NAME)>=0.7`` (Cohen's), ``precision(NAME=LABEL)``, ``recall(NAME=LABEL)``,
``f1(NAME=LABEL)``, and ``spearman(NAME)`` for a judge that gives scores. With
--phoenix-judge-calibration, ``corrected(NAME)=0.9`` gates an LLM judge's pass rate corrected
for the judge's own measured error (``_core/calibration.py``). A suffix scopes it:
``@split`` checks each split of the dataset on its own, ``@split=hard`` only the examples in
split ``hard``, ``@metadata.KEY`` each value of the example metadata KEY,
``@metadata.KEY=VALUE`` only those examples.

The run's measures are gated by a statistic: ``p95(latency)<=2.5``, ``mean(latency)<=1.2``,
``max(latency)``, ``sum(cost)<=0.50``, ``mean(cost)`` (``p1`` to ``p99``, ``mean``, ``max``,
``sum``; ``latency`` and ``cost`` in them are the measures, never annotations). Latency is the
task's run time in seconds, as the experiment run records it; cost is what Phoenix computed in
USD for the LLM spans of the run's trace (:mod:`.measures`).

Every selected case is in every denominator. A case whose task failed, whose evaluator
errored, or that never ran (``-x``, an interrupt, a crash) counts as failing a pass-rate gate;
a mean gate fails outright when any of its cases has no score, and so does any gate when a
case never ran: a gate never passes on an incomplete run.

A run with no case at all (a scheduled production run with nothing new to judge) gives its
gates nothing to judge: each is not applicable, says so, and passes without deciding the exit
status. A run that did have cases and lacks the gate's annotation still fails it.
"""

from __future__ import annotations

import math
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .agreement import METRICS
from .measures import (
    MEASURES,
    STATISTICS,
    RunCost,
    costs_of,
    latency,
    quantile_of,
    statistic,
    usd,
)
from .types import Case, CaseResult, Example

if TYPE_CHECKING:
    from .calibration import Calibration

#: A pass rate corrected for the judge's error (--phoenix-judge-calibration).
CORRECTED = "corrected"
_FUNCTIONS = ("mean", CORRECTED, *METRICS)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_GATE = re.compile(
    r"""^\s*(?:(?P<fn>mean|max|sum|p\d{1,2}|corrected|agreement|kappa|precision|recall|f1|
    spearman)\(\s*
    (?P<fn_name>[^()=]+?)\s*(?:=\s*(?P<fn_label>[^()]+?)\s*)?\)|(?P<name>[^=<>@]+?))\s*
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
    # An agreement metric with human labels (agreement, kappa, ...), else None.
    metric: str | None = None
    label: str | None = None  # the label of precision, recall and F1
    #: The statistic of a run's measure (latency, cost): mean, max, sum, p95, ...; else None.
    stat: str | None = None

    @property
    def rate(self) -> bool:
        """A pass rate (observed or corrected), shown as a percentage."""
        return not self.mean and self.metric is None and self.stat is None or \
            self.metric == CORRECTED

    def shown(self, value: float) -> str:
        """A value of what the gate measures, with its unit."""
        if self.stat is not None:
            return usd(value) if self.name == "cost" else f"{value:.3g} s"
        return f"{100 * value:.1f}%" if self.rate else f"{value:.4g}"

    def describe(self) -> str:
        if self.stat is not None:
            return f"{self.stat}({self.name}) {self.op} {self.shown(self.value)}"
        if self.metric == CORRECTED:
            return f"pass rate of {self.name} corrected for the judge >= {100 * self.value:g}%"
        if self.metric is not None:
            what = f"{self.metric}({self.name}{'=' + self.label if self.label else ''})"
            return f"{what} {self.op} {self.value:g}"
        what = f"mean({self.name})" if self.mean else f"pass rate of {self.name}"
        bound = f"{self.value:g}" if self.mean else f"{100 * self.value:g}%"
        return f"{what} {self.op} {bound}"


def parse_gate(text: str) -> Gate:
    match = _GATE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a gate: use NAME=0.9 (pass rate), mean(NAME)>=0.8 (mean score; "
            f"also >, <=, <), or with --phoenix-benchmark agreement(NAME), kappa(NAME), "
            f"precision(NAME=LABEL), recall(NAME=LABEL), f1(NAME=LABEL), spearman(NAME), or "
            f"the run's latency (seconds) and cost (USD): p95(latency)<=2.5, sum(cost)<=0.5, "
            f"optionally followed by @split, @split=NAME, @metadata.KEY or @metadata.KEY=VALUE")
    function = match["fn"]
    named = (match["fn_name"] if function else match["name"]).strip()
    if named in MEASURES or (function and function not in _FUNCTIONS):
        return _measure_gate(text, match, function, named)
    mean = function == "mean"
    metric = function if function not in (None, "mean") else None
    name = (match["fn_name"] if function else match["name"]).strip()
    label = (match["fn_label"] or "").strip() or None
    if label is not None and metric not in ("precision", "recall", "f1"):
        raise ValueError(f"{text!r}: only precision, recall and f1 take a label "
                         f"({function}(NAME))")
    if label is None and metric in ("precision", "recall", "f1"):
        raise ValueError(f"{text!r}: {metric} is of one label: {metric}({name}=LABEL)")
    op = ">=" if match["op"] == "=" else match["op"]
    value = _bound(text, match)
    if match["percent"]:
        value /= 100
    if metric == CORRECTED:
        if op != ">=":
            raise ValueError(f"{text!r}: a corrected pass-rate gate is corrected(NAME)=RATE (at "
                             f"least RATE)")
        if not 0 <= value <= 1:
            raise ValueError(f"{text!r}: a pass rate is between 0 and 1 (or 0% and 100%)")
    elif metric is not None:
        low = -1 if metric in ("kappa", "spearman") else 0
        if not low <= value <= 1:
            raise ValueError(f"{text!r}: {metric} is between {low} and 1")
    elif not mean:
        if op != ">=":
            raise ValueError(f"{text!r}: a pass-rate gate is NAME=RATE (at least RATE); "
                             f"use mean(NAME){op}X for other comparisons")
        if not 0 <= value <= 1:
            raise ValueError(f"{text!r}: a pass rate is between 0 and 1 (or 0% and 100%)")
    return Gate(text=text.strip(), name=name, mean=mean, op=op, value=value,
                scope=match["scope"], only=match["only"], metric=metric, label=label)


def _bound(text: str, match: re.Match[str]) -> float:
    """The gate's bound, a finite number."""
    try:
        value = float(match["value"])
    except ValueError:
        raise ValueError(f"{text!r}: {match['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r}: the bound must be a finite number")
    return value


def _measure_gate(text: str, match: re.Match[str], function: str | None, name: str) -> Gate:
    """``p95(latency)<=2.5``, ``sum(cost)<=0.5``, ...: a statistic of one of the run's
    measures."""
    if name not in MEASURES:
        raise ValueError(f"{text!r}: {function} is a statistic of the run's latency or cost: "
                         f"{function}(latency) or {function}(cost)")
    if function is None or function not in STATISTICS and quantile_of(function) is None:
        raise ValueError(f"{text!r}: {name} is gated by a statistic: p95({name})<=X, "
                         f"mean({name})<=X, max({name})<=X or sum({name})<=X")
    if match["fn_label"] or match["percent"]:
        raise ValueError(f"{text!r}: a {name} gate is {function}({name})<=X, in "
                         f"{'seconds' if name == 'latency' else 'USD'}")
    value = _bound(text, match)
    op = "<=" if match["op"] == "=" else match["op"]
    return Gate(text=text.strip(), name=name, mean=False, op=op, value=value,
                scope=match["scope"], only=match["only"], stat=function)


@dataclass
class GateResult:
    gate: Gate
    dataset: str
    group: str | None  # the split or metadata value, for a scoped gate
    cases: int
    value: float | None
    passed: bool
    detail: str = ""
    #: False when the run had no case at all: the gate passes and decides nothing.
    applicable: bool = True

    @property
    def where(self) -> str:
        if self.gate.scope is None:
            return self.dataset
        return f"{self.dataset} [{self.gate.scope}={self.group}]"

    def shown_value(self) -> str:
        if self.value is None:
            return "-"
        return self.gate.shown(self.value)


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
                   results: Iterable[CaseResult],
                   calibrations: Mapping[str, Calibration] | None = None,
                   costs: Mapping[str, RunCost] | None = None,
                   costs_problem: str | None = None) -> list[GateResult]:
    """Each gate on each group of cases (a dataset spec, a test function; and the gate's own
    scope): ``expected`` holds every selected case (with its example's splits); a case
    without a result never ran. ``calibrations``: the measured error of each judge's
    annotation (--phoenix-judge-calibration), for corrected pass rates. ``costs``: what
    Phoenix computed for each run's trace, by trace id (None when it could not be read:
    ``costs_problem`` says why)."""
    by_key: dict[tuple[str, str, int], list[CaseResult]] = defaultdict(list)
    for result in results:
        by_key[result.case.key].append(result)
    datasets: dict[str, list[tuple[Example, CaseResult | None]]] = defaultdict(list)
    for case in expected:
        found = by_key.get(case.key)
        datasets[case.group.label].append((case.example, found.pop(0) if found else None))
    out: list[GateResult] = []
    if not datasets and not by_key:
        return [GateResult(gate, "(no case)", None, 0, None, True,
                           "not applicable: the run had no case to judge", applicable=False)
                for gate in gates]
    for gate in gates:
        if gate.stat is not None:  # a measure of the run: every dataset has it
            for dataset, cases in datasets.items():
                for group, members in _scoped(gate, cases):
                    out.append(_measure(gate, dataset, group, members, costs, costs_problem))
            continue
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
                out.append(_evaluate(gate, dataset, group if gate.scope else None, members,
                                     (calibrations or {}).get(gate.name)))
        if not known:
            every = sorted({s.name for cases in datasets.values() for _, r in cases
                            if r is not None for s in r.scores})
            out.append(GateResult(gate, "(every dataset)", None, 0, None, False,
                                  f"no annotation named {gate.name!r}; annotations: "
                                  f"{', '.join(every) or 'none'}"))
    return out


def _scoped(gate: Gate, cases: list[tuple[Example, CaseResult | None]]
            ) -> list[tuple[str | None, list[tuple[Example, CaseResult | None]]]]:
    """The cases of each value of the gate's scope (one group, None, without a scope)."""
    groups: dict[str, list[tuple[Example, CaseResult | None]]] = defaultdict(list)
    for example, outcome in cases:
        for group in _groups(gate, example):
            groups[group].append((example, outcome))
    if not groups and gate.scope is not None:
        return [(gate.only or "?", [])]
    return [(group if gate.scope else None, members)
            for group, members in sorted(groups.items())]


def _measure(gate: Gate, dataset: str, group: str | None,
             members: list[tuple[Example, CaseResult | None]],
             costs: Mapping[str, RunCost] | None, problem: str | None) -> GateResult:
    """A statistic of the task's latency or cost over the group's cases, with its interval."""
    assert gate.stat is not None
    total = len(members)
    if not total:
        return GateResult(gate, dataset, group, 0, None, False, "no case in this group")
    ran = [result for _, result in members if result is not None]
    missing = total - len(ran)
    notes = [f"{missing} of {total} cases did not run"] if missing else []
    if gate.name == "latency":
        values = [v for r in ran if (v := latency(r)) is not None]
        unmeasured = len(ran) - len(values)
        if unmeasured:
            notes.append(f"{unmeasured} case(s) without a run time")
    else:
        if costs is None:
            return GateResult(gate, dataset, group, total, None, False,
                              problem or "the cost was not read from Phoenix")
        values, untraced, unpriced = costs_of(ran, costs)
        unmeasured = untraced + unpriced
        if untraced:
            notes.append(f"{untraced} case(s) whose trace Phoenix does not have: cost unknown")
        if unpriced:
            notes.append(f"{unpriced} case(s) spent tokens of a model Phoenix has no price "
                         f"for: add one in Phoenix (Settings, Models)")
    found = statistic(gate.stat, values)
    if found.value is not None and found.method:
        notes.append(_interval_note(gate, found))
    ok = (found.value is not None and not missing and not unmeasured
          and _OPS[gate.op](found.value, gate.value))
    return GateResult(gate, dataset, group, total, found.value, ok, "; ".join(notes))


def _interval_note(gate: Gate, found: Any) -> str:
    """n, the 95 % interval and how it was made (or why there is none)."""
    if found.low is None and found.high is None:
        return f"n={found.n}; {found.method}"
    low = gate.shown(found.low) if found.low is not None else "-inf"
    high = gate.shown(found.high) if found.high is not None else "unbounded"
    note = f"n={found.n}, 95% CI [{low}, {high}] ({found.method})"
    q = quantile_of(gate.stat or "")
    if q is not None and found.high is None:
        note += (f"; {math.ceil(math.log(0.025) / math.log(q))} cases bound a "
                 f"{gate.stat} from above")
    return note


def _evaluate(gate: Gate, dataset: str, group: str | None,
              members: list[tuple[Example, CaseResult | None]],
              calibration: Calibration | None = None) -> GateResult:
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
    if gate.metric is not None and gate.metric != CORRECTED:
        return _agreement(gate, dataset, group, members, notes)
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
    if calibration is not None:  # the observed rate, and the rate the judge's error implies
        corrected = calibration.corrected(passed, total)
        shown = "undefined" if corrected.value is None else f"{100 * corrected.value:.1f}%"
        if corrected.low is not None and corrected.high is not None:
            shown += f" [{100 * corrected.low:.1f}%, {100 * corrected.high:.1f}%]"
        notes.append(f"corrected for the judge: {shown}"
                     + (f" ({corrected.why})" if corrected.why else "")
                     + f"; observed {passed}/{total}; {calibration.describe()}")
        if gate.metric == CORRECTED:
            value = corrected.value
    elif gate.metric == CORRECTED:
        return GateResult(gate, dataset, group, total, None, False,
                          f"{gate.name} has no measured judge error: only an LLM judge's "
                          f"annotation, with --phoenix-judge-calibration, is corrected")
    ok = value is not None and not missing and value >= gate.value
    return GateResult(gate, dataset, group, total, value, ok, "; ".join(notes))




#: The judge's "label" where it gave none (an error): a disagreement with any human label.
NO_LABEL = "(no label)"


def human_pairs(name: str, results: Iterable[CaseResult | None], *, scores: bool = False
                ) -> tuple[list[tuple[Any, Any]], int]:
    """(judge, human) pairs of annotation ``name`` from benchmarked results: labels (a judge
    that gave none is paired as :data:`NO_LABEL`, a disagreement), or with ``scores`` the
    scores (a judge that gave none is left out); and how many cases the judge did not
    answer."""
    pairs: list[tuple[Any, Any]] = []
    unanswered = 0
    key = "human_score" if scores else "human_label"
    for result in results:
        for score in result.scores if result is not None else ():
            if score.name != name or key not in (score.metadata or {}):
                continue
            human = (score.metadata or {})[key]
            judged = score.score if scores else score.label
            if score.error is not None or judged is None:
                unanswered += 1
                if not scores:
                    pairs.append((NO_LABEL, human))
            else:
                pairs.append((judged, human))
            break
    return pairs, unanswered


def _agreement(gate: Gate, dataset: str, group: str | None,
               members: list[tuple[Example, CaseResult | None]], notes: list[str]
               ) -> GateResult:
    from .agreement import metric, spearman

    total = len(members)
    missing = sum(result is None for _, result in members)
    continuous = gate.metric == "spearman"
    pairs, unanswered = human_pairs(gate.name, (r for _, r in members), scores=continuous)
    if not pairs and not unanswered:
        return GateResult(gate, dataset, group, total, None, False,
                          f"no case of {gate.name} has a human label to compare with (run it "
                          f"with --phoenix-benchmark={gate.name})")
    if unanswered:
        notes.append(f"{unanswered} case(s) the judge did not answer"
                     + (" (left out)" if continuous else ", counted as disagreeing"))
    estimate = spearman(pairs) if continuous else metric(gate.metric or "", pairs, gate.label)
    if estimate.value is None:
        notes.append("undefined on these cases")
    elif estimate.low is not None and estimate.high is not None:
        notes.append(f"n={estimate.n}, 95% CI [{estimate.low:.3f}, {estimate.high:.3f}]")
    ok = (estimate.value is not None and not missing
          and _OPS[gate.op](estimate.value, gate.value))
    return GateResult(gate, dataset, group, total, estimate.value, ok, "; ".join(notes))
