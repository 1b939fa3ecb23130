"""Experiments already in Phoenix: baselines to compare a run with (--phoenix-baseline,
--phoenix-max-regression, --phoenix-set-baseline) and regating (--phoenix-regate).

An experiment's annotations are judged with the verdict rules of *this* command line (the
dataset's evaluator configs, code evaluators' declared rules, --phoenix-threshold), so that a
baseline and the current run, or an old run and new gates, are held to the same rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._evaluators.protocol import annotation_names
from .._phoenix.gateway import Gateway, LoadedDataset, PhoenixError
from .types import Case, CaseResult, OutputConfig, Score, Verdict
from .verdict import Threshold, decide

Rule = tuple[str, OutputConfig | None, Callable[[Score], Verdict | None] | None]

_RUNS_QUERY = """
query($id: ID!, $after: String) { node(id: $id) { ... on Experiment {
  runs(first: 200, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { repetitionNumber error example { id }
      annotations { edges { node { name label score explanation error annotatorKind } } }
    } }
  } } } }
"""
_BASELINE_QUERY = """
query($id: ID!) { node(id: $id) { ... on Dataset { baselineExperiment { id name } } } }
"""
_SET_BASELINE = """
mutation($id: ID!) { setExperimentBaseline(experimentId: $id, baseline: true) {
  __typename } }
"""
MAIN_BRANCHES = ("main", "master")


def rules_of(evaluators: Sequence[Any]) -> dict[str, Rule]:
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


def experiment_runs(gateway: Gateway, experiment_id: str) -> list[dict[str, Any]]:
    """Every run of an experiment with its annotations (GraphQL, page by page)."""
    runs, after = [], None
    while True:
        data = gateway.graphql(_RUNS_QUERY, {"id": experiment_id, "after": after},
                               f"reading the runs of experiment {experiment_id}")
        node = data.get("node")
        if not node:
            raise PhoenixError(f"experiment {experiment_id!r} not found in {gateway.where()}")
        page = node["runs"]
        for edge in page["edges"]:
            run = edge["node"]
            runs.append({"example_id": run["example"]["id"],
                         "repetition": run["repetitionNumber"], "error": run["error"],
                         "annotations": [a["node"] for a in run["annotations"]["edges"]]})
        if not page["pageInfo"]["hasNextPage"]:
            return runs
        after = page["pageInfo"]["endCursor"]


def results_of(runs: Sequence[Mapping[str, Any]], dataset: LoadedDataset,
               rules: Mapping[str, Rule], thresholds: Mapping[str, Threshold]
               ) -> list[CaseResult]:
    """An experiment's runs as case results, judged by this command line's rules (examples
    no longer in the loaded version are skipped)."""
    from .._session import case_id

    examples = {e.id: e for e in dataset.examples}
    results = []
    for run in runs:
        example = examples.get(run["example_id"])
        if example is None:
            continue
        result = CaseResult(case=Case(example, case_id(example, run["repetition"]),
                                      run["repetition"]), error=run["error"])
        for annotation in run["annotations"]:
            score, verdict = judge(annotation, rules, thresholds)
            result.scores.append(score)
            result.verdicts.append(verdict)
        results.append(result)
    return results


def _experiments(gateway: Gateway, dataset_id: str) -> list[dict[str, Any]]:
    response = gateway._get(f"v1/datasets/{dataset_id}/experiments", None,
                            "listing the dataset's experiments")
    gateway._raise_for_status(response, "listing the dataset's experiments")
    return sorted(response.json()["data"], key=lambda e: e.get("created_at") or "",
                  reverse=True)


def resolve(gateway: Gateway, spec: str, dataset: LoadedDataset,
            exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The baseline experiment ``spec`` names for ``dataset``: {id, name}; PhoenixError
    saying what exists when there is none."""
    if spec == "dataset":
        data = gateway.graphql(_BASELINE_QUERY, {"id": dataset.id},
                               f"reading the baseline of dataset {dataset.name!r}")
        found = (data.get("node") or {}).get("baselineExperiment")
        if not found:
            raise PhoenixError(f"dataset {dataset.name!r} has no baseline experiment; set one "
                               f"in Phoenix or with --phoenix-set-baseline")
        return {"id": found["id"], "name": found.get("name")}
    experiments = [e for e in _experiments(gateway, dataset.id) if e["id"] not in exclude]
    if spec == "previous":
        chosen = experiments[0] if experiments else None
    elif spec == "main":
        chosen = next((e for e in experiments if (e.get("metadata") or {}).get("git_branch")
                       in MAIN_BRANCHES), None)
    else:
        chosen = next((e for e in experiments if spec in (e["id"], e.get("name"))), None)
    if chosen is None:
        names = ", ".join(f"{e.get('name')} ({e['id']})" for e in experiments[:5])
        raise PhoenixError(f"no experiment {spec!r} on dataset {dataset.name!r}"
                           + (f"; the latest: {names}" if names else "; it has none"))
    return {"id": chosen["id"], "name": chosen.get("name")}


def set_baseline(gateway: Gateway, experiment_id: str) -> None:
    gateway.graphql(_SET_BASELINE, {"id": experiment_id}, "setting the dataset's baseline")


@dataclass
class Change:
    annotation: str
    baseline: float | None
    now: float | None
    examples: int
    regressed: list[str] = field(default_factory=list)
    improved: list[str] = field(default_factory=list)
    failed: bool = False

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


def _natural(text: str) -> list[Any]:
    """ex9 before ex10."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def compare(current: Sequence[CaseResult], baseline: Sequence[CaseResult],
            max_regression: float | None) -> list[Change]:
    """Per annotation: pass rates over the examples both runs have, and which examples got
    worse or better."""
    now, before = _pass_rates(current), _pass_rates(baseline)
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
        if max_regression is not None and change.delta is not None:
            change.failed = change.delta < -max_regression - 1e-9
        changes.append(change)
    return changes


def comparison_lines(changes: Sequence[Change], dataset: str, baseline: Mapping[str, Any],
                     link: str, max_regression: float | None) -> list[str]:
    from tabulate import tabulate

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    rows = [[c.annotation, c.examples, pct(c.baseline), pct(c.now),
             "-" if c.delta is None else f"{100 * c.delta:+.1f} pts",
             len(c.regressed), len(c.improved),
             "" if max_regression is None else ("FAIL" if c.failed else "pass")]
            for c in changes]
    lines = [f"{dataset}: compared with baseline {baseline.get('name')} ({baseline['id']})"
             + (f", at most {100 * max_regression:g} pts of regression allowed"
                if max_regression is not None else ""),
             *tabulate(rows, headers=["annotation", "examples", "baseline", "now", "change",
                                      "regressed", "improved", "result"],
                       tablefmt="simple", disable_numparse=True).splitlines()]
    for c in changes:
        if c.regressed:
            lines.append(f"  regressed on {c.annotation}: {', '.join(c.regressed[:20])}"
                         + (f" and {len(c.regressed) - 20} more" if len(c.regressed) > 20
                            else ""))
        if c.improved:
            lines.append(f"  improved on {c.annotation}: {', '.join(c.improved[:20])}"
                         + (f" and {len(c.improved) - 20} more" if len(c.improved) > 20
                            else ""))
    lines.append(f"  side by side in Phoenix: {link}")
    return lines
