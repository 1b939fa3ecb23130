"""Baselines: the experiment a run is compared with (--phoenix-baseline), read before any case
runs, and made from a complete run (--phoenix-set-baseline). No pytest here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.baseline import compare, compared, results_of, rules_of, why_nothing_compared
from .._core.types import CaseResult, Group
from .._core.verdict import Threshold
from .._evaluators.protocol import Evaluator
from .._phoenix.gateway import Gateway, LoadedDataset
from .._phoenix.http import PhoenixError
from .sinks.base import UploadReport


@dataclass
class Baselines:
    """Each dataset group's baseline experiment and its runs, judged by today's rules."""

    gateway: Gateway
    spec: str
    max_regression: float | str | None
    thresholds: Mapping[str, Threshold]
    alpha: float = 0.05
    _found: dict[str, tuple[Group, dict[str, Any], list[dict[str, Any]]]] = field(
        default_factory=dict)

    def load(self, group: Group, exclude: Sequence[str] = ()) -> None:
        """Find the group's baseline (never one in ``exclude``) and read its runs now: it is in
        Phoenix already, and the gateway is closed by the time the session ends (PhoenixError
        saying what exists when there is none)."""
        found = self.gateway.find_experiment(self.spec, group.dataset_id, group.dataset_name,
                                             exclude)
        runs = self.gateway.experiment_runs(found["id"])
        try:  # the version it ran on, to say so when it shares no example with this run
            details = self.gateway.experiment(found["id"]) or {}
        except PhoenixError:
            details = {}
        found = {**found, "dataset_version_id": details.get("dataset_version_id")}
        self._found[group.key] = (group, found, runs)

    def __bool__(self) -> bool:
        return bool(self._found)

    def compare(self, results: Sequence[CaseResult],
                dataset: Callable[[Group], LoadedDataset],
                evaluators: Callable[[Group], Sequence[Evaluator]],
                report: UploadReport | None) -> tuple[bool, list[str]]:
        """Whether no annotation regressed more than --phoenix-max-regression, and the lines
        of each group's comparison. With --phoenix-max-regression, a comparison that compared
        nothing (no example and annotation in both runs) fails: no regression was measured;
        unless this run has no result of the group at all (none of its cases was selected)."""
        from .._report.baseline import comparison_lines, nothing_compared_lines

        ok, lines = True, []
        for group, found, runs in self._found.values():
            loaded = dataset(group)
            before = results_of(runs, loaded.examples, rules_of(evaluators(group)),
                                self.thresholds, group)
            current = [r for r in results if r.case.group.within(group)]
            changes = compare(current, before, self.max_regression, self.alpha)
            link = self.gateway.experiment_url(group.dataset_id, found["id"])
            mine = next((d for d in report.destinations if d.group.key == group.key),
                        None) if report else None
            if mine is not None:
                link += f"&experimentId={mine.id}"
            if not compared(changes):
                why = why_nothing_compared(current, before, len(runs), loaded.version_id,
                                           found.get("dataset_version_id"))
                fails = self.max_regression is not None and bool(current)
                ok = ok and not fails
                lines += ["", *nothing_compared_lines(why, group.label, found, link, fails)]
                continue
            ok = ok and not any(c.failed for c in changes)
            lines += ["", *comparison_lines(changes, group.label, found, link,
                                             self.max_regression, self.alpha)]
        return ok, lines


def set_baselines(gateway: Gateway, report: UploadReport) -> list[str]:
    """--phoenix-set-baseline: each dataset group's experiment becomes its dataset's baseline,
    only when every result reached Phoenix; what happened, as notices."""
    if not report.complete:
        return ["not made the baseline: some results did not reach Phoenix"]
    notices = []
    for experiment in report.destinations:
        if experiment.group.kind != "dataset":
            continue
        try:
            gateway.set_baseline(experiment.id)
            notices.append(f"{experiment.group.label}: this run is now the dataset's baseline "
                           f"experiment")
        except PhoenixError as exc:
            notices.append(f"{experiment.group.label}: could not make this run the baseline: "
                           f"{exc}")
    return notices


#: Past experiments a chart reads at most (--phoenix-summary-md): one read of runs each.
RECENT = 9


@dataclass
class Point:
    """One past experiment on a chart: its pass rate per annotation (None without the
    annotation), judged by today's rules on today's examples."""

    id: str
    name: str
    created_at: str
    rates: dict[str, float | None]
    baseline: bool = False


def recent_pass_rates(gateway: Gateway, group: Group, loaded: LoadedDataset,
                      rules: Mapping[str, Any], thresholds: Mapping[str, Threshold],
                      names: Sequence[str], exclude: Sequence[str], limit: int = RECENT
                      ) -> list[Point]:
    """The dataset's ``limit`` newest experiments (never one in ``exclude``: this run's),
    oldest first, each with the pass rate of every annotation in ``names`` as the gates count
    it (every run in the denominator); the dataset's baseline is among them even when older.
    PhoenixError when Phoenix cannot be read."""
    from .._core.baseline import results_of

    experiments = [e for e in gateway.dataset_experiments(loaded.id) if e["id"] not in exclude]
    chosen = experiments[:limit]
    baseline = gateway.baseline_experiment(loaded.id, loaded.name)
    if baseline is not None and baseline["id"] not in {e["id"] for e in chosen}:
        chosen += [e for e in experiments if e["id"] == baseline["id"]]
    points = []
    for experiment in sorted(chosen, key=lambda e: e.get("created_at") or ""):
        runs = gateway.experiment_runs(experiment["id"])
        results = results_of(runs, loaded.examples, rules, thresholds, group)
        rates: dict[str, float | None] = {}
        for name in names:
            has = [r for r in results if any(s.name == name for s in r.scores)]
            passed = sum(any(s.name == name and v.status == "pass"
                             for s, v in zip(r.scores, r.verdicts)) for r in results)
            rates[name] = passed / len(results) if has else None
        points.append(Point(experiment["id"], str(experiment.get("name") or ""),
                            str(experiment.get("created_at") or ""), rates,
                            baseline is not None and experiment["id"] == baseline["id"]))
    return points
