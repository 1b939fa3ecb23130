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

from ._run.handover import RESULTS, SHARED_DIR, SHARES, SPANS_DIR

if TYPE_CHECKING:
    from ._session import PhoenixEvalsSession
    from ._settings import Settings


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

class XDistPlugin:
    """The controller's side of pytest-xdist (a worker's side is in its own session)."""

    def __init__(self, config: pytest.Config, settings: Settings,
                 activate: Callable[[pytest.Config], PhoenixEvalsSession],
                 active: Callable[[pytest.Config], PhoenixEvalsSession | None]) -> None:
        self._config = config
        self._settings = settings
        self._activate = activate
        self._active = active
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
        session = self._active(self._config)
        if session is not None:
            node.workerinput.update(session.for_workers(self._shared_dir))

    def _deals_shares(self) -> bool:
        """Our scheduler: xdist's default load distribution of a run with our cases."""
        settings = self._settings
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
