"""Experiments already in Phoenix: baselines to compare a run with (--phoenix-baseline,
--phoenix-max-regression, --phoenix-set-baseline) and regating (--phoenix-regate).

An experiment's annotations are judged with the verdict rules of *this* command line (the
dataset's evaluator configs, code evaluators' declared rules, --phoenix-threshold), so that a
baseline and the current run, or an old run and new gates, are held to the same rules.

The experiments and their runs come from the gateway (``find_experiment``,
``experiment_runs``, ``set_baseline``) as plain data; nothing here talks to Phoenix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .naming import annotation_names
from .paired import PairedChange, paired_change
from .types import Case, CaseResult, Example, Group, OutputConfig, Score, Verdict
from .verdict import Threshold, decide

if TYPE_CHECKING:
    from .._evaluators.protocol import Evaluator

Rule = tuple[str, OutputConfig | None, Callable[[Score], Verdict | None] | None]


def rules_of(evaluators: Sequence[Evaluator]) -> dict[str, Rule]:
    """Annotation name -> (evaluator name, config, declared rule), from the session's
    evaluators: how a score of that name is judged."""
    rules: dict[str, Rule] = {}
    for evaluator in evaluators:
        declared = getattr(evaluator, "verdict", None)
        configs = list(getattr(evaluator, "output_configs", ()) or ())
        names = annotation_names(configs) or [evaluator.name]
        for name, config in zip(names, configs or [None]):
            rules[name] = (evaluator.name, config, declared)
    return rules


def judge(annotation: Mapping[str, Any], rules: Mapping[str, Rule],
          thresholds: Mapping[str, Threshold]) -> tuple[Score, Verdict]:
    name = annotation["name"]
    evaluator, config, declared = rules.get(name, (name, None, None))
    score = Score(name=name, evaluator=evaluator, label=annotation.get("label"),
                  score=annotation.get("score"), explanation=annotation.get("explanation"),
                  error=annotation.get("error"), config=config,
                  annotator_kind=annotation.get("annotatorKind") or "CODE")
    return score, decide(score, thresholds, declared)


def results_of(runs: Sequence[Mapping[str, Any]], examples: Sequence[Example],
               rules: Mapping[str, Rule], thresholds: Mapping[str, Threshold],
               group: Group) -> list[CaseResult]:
    """An experiment's runs as case results of ``group``, judged by this command line's rules
    (examples no longer in the loaded version are skipped)."""
    from .naming import case_id

    by_id = {e.id: e for e in examples}
    results = []
    for run in runs:
        example = by_id.get(run["example_id"])
        if example is None:
            continue
        result = CaseResult(case=Case(example, case_id(example, run["repetition"]), group,
                                      run["repetition"]), error=run["error"])
        for annotation in run["annotations"]:
            score, verdict = judge(annotation, rules, thresholds)
            result.scores.append(score)
            result.verdicts.append(verdict)
        results.append(result)
    return results


#: --phoenix-max-regression=significant: fail only on a regression the paired test finds.
SIGNIFICANT = "significant"


@dataclass
class Change:
    annotation: str
    baseline: float | None
    now: float | None
    examples: int
    regressed: list[str] = field(default_factory=list)
    improved: list[str] = field(default_factory=list)
    failed: bool = False
    #: The paired statistics over the shared examples (None when none is shared).
    paired: PairedChange | None = None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.now is None:
            return None
        return self.now - self.baseline


def _pass_rates(results: Sequence[CaseResult]) -> dict[str, dict[str, tuple[int, int]]]:
    """annotation -> example id -> (passing runs, asserted runs); a task error fails every
    annotation the example has elsewhere."""
    rates: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for result in results:
        for score, verdict in zip(result.scores, result.verdicts):
            if verdict.status == "recorded":
                continue
            cell = rates[score.name][result.case.example.id]
            cell[0] += verdict.status == "pass"
            cell[1] += 1
    errored = {r.case.example.id for r in results if r.error is not None}
    for cells in rates.values():
        for example_id in errored:
            cells[example_id][1] += 1
    return {name: {k: (v[0], v[1]) for k, v in cells.items()} for name, cells in rates.items()}


def _mean_scores(results: Sequence[CaseResult]) -> dict[str, dict[str, float]]:
    """annotation -> example id -> the mean of its runs' numeric scores (errors and missing
    scores left out)."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        for score in result.scores:
            if score.error is None and isinstance(score.score, (int, float)) and \
                    not isinstance(score.score, bool):
                found[score.name][result.case.example.id].append(float(score.score))
    return {name: {k: sum(v) / len(v) for k, v in cells.items()}
            for name, cells in found.items()}


def _natural(text: str) -> list[Any]:
    """ex9 before ex10."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def compare(current: Sequence[CaseResult], baseline: Sequence[CaseResult],
            max_regression: float | str | None, alpha: float = 0.05) -> list[Change]:
    """Per annotation: pass rates over the examples both runs have, which examples got worse
    or better, and the paired statistics. ``max_regression``: the most a pass rate may fall
    (a fraction), or ``significant``: a regression the paired test finds at level
    ``alpha``."""
    now, before = _pass_rates(current), _pass_rates(baseline)
    scores_now, scores_before = _mean_scores(current), _mean_scores(baseline)
    names = {r.case.example.id: r.case.case_id for r in current}
    changes = []
    for annotation, cells in now.items():
        old = before.get(annotation, {})
        shared = [e for e in cells if e in old and cells[e][1] and old[e][1]]
        change = Change(annotation, None, None, len(shared))
        if shared:
            change.now = sum(cells[e][0] / cells[e][1] for e in shared) / len(shared)
            change.baseline = sum(old[e][0] / old[e][1] for e in shared) / len(shared)
        for e in shared:
            rate_now, rate_before = cells[e][0] / cells[e][1], old[e][0] / old[e][1]
            if rate_now < rate_before:
                change.regressed.append(names.get(e, e))
            elif rate_now > rate_before:
                change.improved.append(names.get(e, e))
        change.regressed.sort(key=_natural)
        change.improved.sort(key=_natural)
        if shared:
            mine, theirs = scores_now.get(annotation, {}), scores_before.get(annotation, {})
            change.paired = paired_change(
                [(cells[e][0] / cells[e][1], old[e][0] / old[e][1]) for e in shared],
                [(mine[e], theirs[e]) for e in shared if e in mine and e in theirs])
        if max_regression == SIGNIFICANT:
            change.failed = change.paired is not None and change.paired.significant(alpha)
        elif isinstance(max_regression, (int, float)) and change.delta is not None:
            change.failed = change.delta < -max_regression - 1e-9
        changes.append(change)
    return changes


def compared(changes: Sequence[Change]) -> bool:
    """Whether any annotation was compared on at least one example."""
    return any(change.examples for change in changes)


def why_nothing_compared(current: Sequence[CaseResult], baseline: Sequence[CaseResult],
                         baseline_runs: int, version: str | None,
                         baseline_version: str | None) -> str:
    """Why a comparison compared nothing, in plain words. ``baseline`` holds the baseline's
    runs that are on examples of this run's dataset ``version`` (``baseline_runs`` counts them
    all); ``baseline_version`` is the version the baseline ran on, when known."""
    if not baseline_runs:
        return "the baseline experiment has no runs"
    if not current:
        return "no case of this dataset ran in this run"
    shared = ({r.case.example.id for r in current}
              & {r.case.example.id for r in baseline})
    if not shared:
        if baseline_version and version and baseline_version != version:
            where = f"it ran on dataset version {baseline_version}, this run on {version}"
        elif baseline_version:
            where = f"both ran on dataset version {baseline_version}, on other examples"
        else:
            where = f"none of its {baseline_runs} runs is on an example this run has"
        return f"the baseline shares no example with this run ({where})"

    def judged(results: Sequence[CaseResult]) -> str:
        names = sorted(_pass_rates([r for r in results if r.case.example.id in shared]))
        return ", ".join(names) or "none"

    return (f"no annotation has a pass/fail verdict in both runs on the {len(shared)} "
            f"example(s) they share (this run: {judged(current)}; the baseline: "
            f"{judged(baseline)})")
