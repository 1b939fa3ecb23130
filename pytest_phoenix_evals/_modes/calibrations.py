"""--phoenix-judge-calibration: each gated LLM judge's measured error, read from its latest
benchmark in Phoenix (or the benchmark experiment named), so that its pass rate can be shown
(and gated) corrected for it (:mod:`.._core.calibration`).

A judge's benchmark is the experiment a ``--phoenix-benchmark`` run recorded: its metadata
names the judge and its prompt version (``benchmark.judge``, ``benchmark.prompt_version_id``)
and holds its confusion matrix against the human labels (``benchmark.figures``). The same
prompt version must have been benchmarked: a judge whose prompt changed since is a new judge.
pytest-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from .._core.calibration import Calibration
    from .._evaluators.protocol import Evaluator
    from .context import Context


def calibrations(ctx: Context, evaluators: Sequence[Evaluator]) -> dict[str, Calibration]:
    """annotation name -> its judge's calibration, for every LLM judge annotation a gate
    reads; a UsageProblem giving the benchmark command when a judge has no benchmark."""
    from .._core.naming import annotation_names
    from .._evaluators.protocol import NeedsJudges

    gated = {gate.name for gate in ctx.settings.gates}
    found: dict[str, Calibration] = {}
    candidates: list[dict[str, Any]] | None = None
    for evaluator in evaluators:
        names = [n for n in annotation_names(evaluator.output_configs) or [evaluator.name]
                 if n in gated]
        if not names or not isinstance(evaluator, NeedsJudges):
            continue
        if candidates is None:
            candidates = _benchmarks(ctx)
        version = getattr(getattr(evaluator, "prompt", None), "version_id", None)
        experiment = next((e for e in candidates if _measures(e, evaluator, version)), None)
        if experiment is None:
            what = f"prompt version {version}" if version else "its prompt"
            spec = ctx.settings.judge_calibration
            where = ("no benchmark of it in Phoenix" if spec == "latest" else
                     f"experiment {spec!r} is not a benchmark of it")
            raise UsageProblem(
                f"--phoenix-judge-calibration={spec}: judge {evaluator.name!r} ({what}) has "
                f"{where}; benchmark it on a golden set labelled by people first "
                f"(--phoenix-benchmark={evaluator.name} with --phoenix-dataset naming the "
                f"golden set; docs/judge-benchmarks.md)")
        for name in names:
            found[name] = _calibration(ctx, evaluator, name, experiment)
    return found


def _benchmarks(ctx: Context) -> list[dict[str, Any]]:
    """The benchmark experiments to choose from, newest first: the one named, or every
    benchmark experiment with figures on the server."""
    from .._phoenix.http import PhoenixError

    spec = ctx.settings.judge_calibration
    gateway = ctx.gateway
    try:
        if spec != "latest":
            experiment = gateway.experiment(str(spec))
            if experiment is None:
                raise UsageProblem(f"--phoenix-judge-calibration={spec}: no experiment with "
                                   f"that id in {gateway.where()}; give a benchmark "
                                   f"experiment's id, or 'latest'")
            return [experiment] if _figures(experiment) else []
        found = [e for dataset_id in gateway.dataset_names().values()
                 for e in gateway.dataset_experiments(dataset_id) if _figures(e)]
    except PhoenixError as exc:
        raise UsageProblem(f"--phoenix-judge-calibration={spec}: {exc}") from None
    return sorted(found, key=lambda e: e.get("created_at") or "", reverse=True)


def _figures(experiment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    benchmark = (experiment.get("metadata") or {}).get("benchmark") or {}
    figures = benchmark.get("figures") if isinstance(benchmark, Mapping) else None
    return figures if isinstance(figures, Mapping) and figures.get("confusion") else None


def _measures(experiment: Mapping[str, Any], evaluator: Evaluator, version: str | None
              ) -> bool:
    """Whether the benchmark measured this judge: the same prompt version, or (a judge
    without one, such as the plugin's own) the same judge name."""
    from .._core.naming import annotation_names

    benchmark = (experiment.get("metadata") or {}).get("benchmark") or {}
    if version is not None:
        return bool(benchmark.get("prompt_version_id") == version)
    judged = str(benchmark.get("judge") or "").rsplit("/", 1)[-1]
    return not benchmark.get("prompt_version_id") and judged in {
        evaluator.name, *annotation_names(evaluator.output_configs)}


def _calibration(ctx: Context, evaluator: Evaluator, name: str,
                 experiment: Mapping[str, Any]) -> Calibration:
    """The judge's error on annotation ``name``: its benchmark's confusion matrix, each label
    passing or failing by this run's verdict rules."""
    from .._core.baseline import judge, rules_of
    from .._core.calibration import from_figures

    figures = _figures(experiment) or {}
    rules = rules_of([evaluator])
    config = next((c for c in evaluator.output_configs if c.name == name), None)
    values = dict(config.values) if config is not None and config.values else {}
    labels = {str(label) for label in (figures.get("confusion") or {}).get("labels") or ()}
    passing = {label for label in labels | set(values)
               if judge({"name": name, "label": label, "score": values.get(label)}, rules,
                        ctx.settings.thresholds)[1].status == "pass"}
    source = (f"benchmark {experiment.get('name')!r} ({experiment.get('id')}), "
              f"n={figures.get('n')}")
    return from_figures(name, figures, passing, source)
