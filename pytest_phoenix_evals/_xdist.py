"""pytest-xdist: one experiment per group for every worker, and every result in one summary.

Registered as a plugin only when xdist is loaded. The controller makes the experiments of the
command line's datasets before the workers start and hands them over in ``workerinput``; the
groups only workers know (the test functions of the fixture style) are made once, by the first
worker that needs one, under a file lock in a folder the controller names. Each worker hands back
its results (plain data: xdist carries builtins only) and its upload report in ``workeroutput``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .plugin import SESSION_KEY

if TYPE_CHECKING:
    from ._core.types import CaseResult
    from ._judge_settings import JudgeSettings
    from ._session import PhoenixEvalsSession

# workerinput / workeroutput keys.
EXPERIMENTS = "phoenix_evals_experiments"
SHARED_DIR = "phoenix_evals_shared_dir"
RESULTS = "phoenix_evals_results"
# workerinput: the items are dealt out by position (item i to worker i % N), all at once, so
# each worker knows its share and starts its cases ahead (--phoenix-concurrency) as one
# process does.
SHARES = "phoenix_evals_shares"
#: The shared folder's subfolder where workers leave their trace spans for the controller.
SPANS_DIR = "spans"
#: workerinput: the file holding what the controller read from Phoenix (its gateway's tape),
#: for the workers to take instead of asking again.
TAPE = "phoenix_evals_tape"


def workers_of(config: pytest.Config) -> int:
    """How many pytest-xdist workers run this session's cases (1 outside a worker)."""
    workerinput = getattr(config, "workerinput", None)
    return max(1, int(workerinput.get("workercount") or 1)) if workerinput else 1


def judges_share(judge: JudgeSettings, workers: int) -> JudgeSettings:
    """A worker's part of the judges' limits. --phoenix-judge-concurrency (a provider's rate
    limit, often) and --phoenix-budget-usd are the run's, however many workers share it: each
    of N workers gets 1/N (at least one call at once)."""
    if workers <= 1:
        return judge
    return judge._replace(
        concurrency=max(1, judge.concurrency // workers),
        budget_usd=None if judge.budget_usd is None else judge.budget_usd / workers)


def my_share(workerinput: dict[str, Any], items: list[pytest.Item]) -> list[pytest.Item]:
    """The items this worker is dealt (the same rule as :class:`ShareScheduling`)."""
    count = int(workerinput.get("workercount") or 1)
    mine = int(str(workerinput.get("workerid", "gw0")).removeprefix("gw") or 0)
    return [item for at, item in enumerate(items) if at % count == mine]


def share_scheduling(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, except that every item is dealt out at once, item i to worker
    gw(i % N): each worker then holds its whole share from the start and starts its cases
    ahead, instead of being handed them a few at a time (which ran them one by one). There is
    no stealing: a worker that finishes early waits, as a single process would not have to;
    with cases dominated by model latency the shares take about the same time."""
    from xdist.scheduler import LoadScheduling

    class ShareScheduling(LoadScheduling):  # type: ignore[misc]  # (xdist has no types)
        def schedule(self) -> None:
            by_id = {node.gateway.id: node for node in self.nodes}
            count = len(by_id)
            dealt = getattr(self, "collection", None) is None and \
                set(by_id) == {f"gw{at}" for at in range(count)} and \
                self._check_nodes_have_same_collection()
            if not dealt:  # a restarted node, other ids, collections that differ: xdist's
                super().schedule()
                return
            collection = list(next(iter(self.node2collection.values())))
            self.collection = collection
            for at in range(count):
                indices = [i for i in range(len(collection)) if i % count == at]
                node = by_id[f"gw{at}"]
                if indices:
                    self.node2pending[node].extend(indices)
                    node.send_runtest_some(indices)
            self.pending[:] = []
            for node in self.nodes:
                node.shutdown()

    return ShareScheduling(config, log)

_SCORE_FIELDS = ("name", "evaluator", "annotator_kind", "label", "score", "explanation",
                 "error", "metadata", "trace_id")


def dump_result(result: CaseResult) -> dict[str, Any]:
    """What the controller's summary and gates read of a result (the output stays behind:
    the worker has uploaded it)."""
    from ._run.sinks.base import group_to_wire

    example = result.case.example
    return {
        "group": group_to_wire(result.case.group),
        "dataset_name": example.dataset_name, "dataset_id": example.dataset_id,
        "example_id": example.id, "splits": list(example.splits),
        "metadata": example.metadata, "case_id": result.case.case_id,
        "repetition": result.case.repetition, "error": result.error,
        "trace_id": result.trace_id,
        "scores": [{f: getattr(s, f) for f in _SCORE_FIELDS} for s in result.scores],
        "verdicts": [[v.status, v.rule] for v in result.verdicts],
    }


def load_result(data: dict[str, Any]) -> CaseResult:
    from ._core.types import Case, CaseResult, Example, Score, Verdict
    from ._run.sinks.base import group_from_wire

    group = group_from_wire(data["group"])
    example = Example(id=data["example_id"], input=None, reference=None,
                      metadata=dict(data.get("metadata") or {}),
                      dataset_name=data["dataset_name"], dataset_id=data["dataset_id"],
                      version_id=group.version_id,
                      splits=tuple(data.get("splits") or ()))
    return CaseResult(
        case=Case(example=example, case_id=data["case_id"], repetition=data["repetition"],
                  group=group),
        error=data["error"], trace_id=data["trace_id"],
        scores=[Score(**score) for score in data["scores"]],
        verdicts=[Verdict(status, rule) for status, rule in data["verdicts"]])


class XDistPlugin:
    """The controller's side of pytest-xdist (a worker's side is in its own session)."""

    def __init__(self, config: pytest.Config,
                 activate: Callable[[pytest.Config], PhoenixEvalsSession]) -> None:
        self._config = config
        self._activate = activate
        self._shared_dir: str | None = None

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        """Before a worker starts: the experiments made here, and the folder where the workers
        agree on the others."""
        if self._shared_dir is None:
            import tempfile

            self._shared_dir = tempfile.mkdtemp(prefix="pytest-phoenix-evals-xdist-")
        node.workerinput[SHARED_DIR] = self._shared_dir
        node.workerinput[SHARES] = self._deals_shares()
        session = self._config.stash.get(SESSION_KEY, None)
        if session is not None:
            node.workerinput[EXPERIMENTS] = session.for_workers()
            tape = session.tape_for_workers(self._shared_dir)
            if tape is not None:
                node.workerinput[TAPE] = tape
            if session.settings.project:
                from ._spans import for_workers

                node.workerinput.update(for_workers(session, self._shared_dir))

    def _deals_shares(self) -> bool:
        """Our scheduler: xdist's default load distribution of a run with our cases."""
        from .plugin import settings_of

        settings = settings_of(self._config)
        return getattr(self._config.option, "dist", "no") == "load" and \
            bool(settings.datasets or settings.project)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return share_scheduling(config, log) if self._deals_shares() else None

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """When a worker ends: take its results and upload report for the summary, and note
        the trace spans it left for this process to send."""
        from pathlib import Path

        part = getattr(node, "workeroutput", {}).get(RESULTS)
        spans = Path(self._shared_dir, SPANS_DIR) if self._shared_dir is not None else None
        if spans is not None and not spans.is_dir():
            spans = None
        if part or spans is not None:
            session = self._activate(self._config)
            if part:
                session.absorb(part)
            session.handed_over_spans = spans or session.handed_over_spans

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if self._shared_dir is not None:
            import shutil

            shutil.rmtree(self._shared_dir, ignore_errors=True)
