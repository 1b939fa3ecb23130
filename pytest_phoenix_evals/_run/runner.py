"""The runner: runs cases (task, then evaluators) and hands each result to the sink.

No pytest here. The pytest layer gives the runner jobs (one per item) and asks for their
results in item order; the runner starts them ahead (at most ``concurrency`` at once, in job
order), waits for the one asked for, and cancels what is left when pytest stops early.

Every result goes to the sink (which journals it, then uploads it) the moment its case
finishes, on the engine's loop, whatever the order in which pytest reports the items: a case
that finished is on disk even if the process is killed while pytest still waits for a slow
one. The observers (the results file, the case hook) are told afterwards, in pytest's thread,
each guarded: an observer that raises is reported and never stops a result being recorded.
:meth:`Runner.run_all` does the same for a whole source, with no pytest at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from .._core.naming import case_id
from .._core.repeat import RunsMade
from .._core.types import Case, CaseResult
from .._core.verdict import Threshold
from .._evaluators.protocol import Evaluator
from .engine import Engine, OutputNotSerialisable, as_json, evaluate, run_case
from .sinks.base import Sink
from .sources.base import Source, Task

Observer = Callable[[CaseResult], None]


@dataclass(frozen=True)
class RunSettings:
    """What the runner needs of the settings."""

    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    concurrency: int = 8
    task_timeout: float | None = None
    repetitions: int = 1
    # --phoenix-repetitions=auto:N: ``repetitions`` is the bound; a case runs again only
    # while the pass rule's verdict is unsettled (``_core.repeat.settled``).
    auto: bool = False
    pass_rule: str = "all"
    # --phoenix-add-failures-to: a failing case keeps its whole example and output once
    # reported and written (the dataset copies what the judges saw; failures are few).
    keep_failures: bool = False


@dataclass(frozen=True)
class Job:
    """One case to run: ``key`` is unique among the jobs (a pytest item's node id)."""

    key: str
    case: Case
    task: Task | None
    evaluators: Sequence[Evaluator]
    # The output, when there is no task (the subject already has one).
    output: Any = None
    # When the case's example and output are built as it starts (a span's context): called
    # with the run on the engine's loop, it answers the run with its whole example, and the
    # output. The result keeps ``case`` (the light one) once reported and written.
    prepare: Callable[[Case], Coroutine[Any, Any, tuple[Case, Any]]] | None = None


class Runner:
    """Runs jobs on the engine and records their results in the sink (None: nothing goes
    anywhere, as with --phoenix-no-upload)."""

    def __init__(self, engine: Engine, sink: Sink | None, settings: RunSettings, *,
                 source: Source | None = None, tracing: Any = None,
                 observers: Sequence[Observer] = ()) -> None:
        self.engine = engine
        self.sink = sink
        self.source = source
        self.settings = settings
        self.tracing = tracing
        self.observers = list(observers)
        self.results: list[CaseResult] = []
        # What the observers raised: (observer, case id, error), for the summary.
        self.observer_errors: list[tuple[str, str, str]] = []
        # Runs started ahead of their job being asked for, by run key.
        self._ahead: dict[str, tuple[Case, concurrent.futures.Future[CaseResult]]] = {}
        # With auto repetitions: each job's runs started ahead (one future for all of them,
        # as each run decides the next), and the runs it has finished so far, by job key.
        self._ahead_auto: dict[str, concurrent.futures.Future[list[CaseResult]]] = {}
        self._finished: dict[str, list[CaseResult]] = {}
        self._made: tuple[int, RunsMade] | None = None  # (of how many results, the index)
        self._slots: list[asyncio.Semaphore] = []
        # Runs (with auto repetitions: jobs) not yet handed to the engine, in job order, by
        # run key; how many handed over are unfinished; the lock guards both (the engine's
        # loop tops up as runs finish).
        self._queued: OrderedDict[str, tuple[Job, Case | None]] = OrderedDict()
        self._unfinished = 0
        # (reentrant: a run that finished before its callback was added calls it at once)
        self._lock = threading.RLock()

    def runs_of(self, case: Case) -> list[Case]:
        """The runs of a case: one per repetition, numbered as the server numbers them
        (1..N). With auto repetitions, the runs it took (none yet: its first)."""
        n = self.settings.repetitions
        if self.settings.auto:
            if self._made is None or self._made[0] != len(self.results):
                self._made = (len(self.results), RunsMade(self.results))
            return self._made[1].of(self._run(case, 1))
        return [case] if n == 1 else [self._run(case, r) for r in range(1, n + 1)]

    @staticmethod
    def _run(case: Case, repetition: int) -> Case:
        return replace(case, case_id=case_id(case.example, repetition), repetition=repetition)

    # --- running jobs -----------------------------------------------------------------------

    def start(self, jobs: Sequence[Job]) -> None:
        """Start the runs of these jobs, ``concurrency`` at once, in job order; :meth:`run`
        then only waits for them. They are handed to the engine a window at a time
        (:meth:`_top_up`): a run waiting its turn costs a few kilobytes on the loop (its task,
        its future, its coroutine), so handing all of them over at once made memory grow
        with the backlog (10,000 spans: about 40 MB before the first case)."""
        import_ahead()
        with self._lock:
            for job in jobs:
                if self.settings.auto:
                    self._queued[job.key] = (job, None)
                    continue
                for run in self.runs_of(job.case):
                    self._queued[_run_key(job.key, run)] = (job, run)
        self._top_up()

    def _window(self) -> int:
        """Runs handed to the engine and not finished, at most: those running, and as many
        again ready to take a slot the moment one frees."""
        return 2 * self.settings.concurrency + 8

    def _top_up(self, finished: concurrent.futures.Future[Any] | None = None) -> None:
        """Hand queued runs to the engine, in job order, while fewer than the window are
        unfinished. Called at the start and as each run finishes (on the engine's loop); a
        cancelled run means the run stops (:meth:`stop`, the engine closing): none starts."""
        with self._lock:
            if finished is not None:
                self._unfinished -= 1
                if finished.cancelled():
                    return
            while self._queued and self._unfinished < self._window():
                key, queued = self._queued.popitem(last=False)
                self._submit(key, *queued)

    def _submit(self, key: str, job: Job, run: Case | None, *, limited: bool = True) -> None:
        """Hand one queued run (with auto repetitions: one job's runs) to the engine; called
        with the lock held."""
        if run is None:
            future: concurrent.futures.Future[Any] = self.engine.submit(
                self._until_settled(job, limited=limited))
            self._ahead_auto[key] = future
        else:
            future = self.engine.submit(self._limited(job, run) if limited else
                                        self._recorded(self._run_one(job, run)))
            self._ahead[key] = (run, future)
        if limited:
            self._unfinished += 1
            future.add_done_callback(self._top_up)

    def _started(self, key: str) -> None:
        """Make sure the run ``key`` was handed to the engine: pytest asks for the runs in job
        order, so it was unless pytest asked out of order; then it starts now, outside the
        window and the limit (as a run nothing started ahead)."""
        with self._lock:
            queued = self._queued.pop(key, None)
            if queued is not None:
                self._submit(key, *queued, limited=False)

    def run(self, job: Job) -> list[CaseResult]:
        """Every run of the job's case (waiting for those started ahead), each recorded and
        observed."""
        import_ahead()
        if self.settings.auto:
            return self._run_auto(job)
        results = []
        for run in self.runs_of(job.case):
            self._started(_run_key(job.key, run))
            ahead = self._ahead.pop(_run_key(job.key, run), None)
            result = ahead[1].result() if ahead is not None else \
                self.engine.run(self._recorded(self._run_one(job, run)))
            self.observe(result)
            results.append(result)
        return results

    def _run_auto(self, job: Job) -> list[CaseResult]:
        self._started(job.key)
        started = self._ahead_auto.pop(job.key, None)
        results = started.result() if started is not None else \
            self.engine.run(self._until_settled(job, limited=False))
        self._finished.pop(job.key, None)
        for result in results:
            self.observe(result)
        return results

    def stop(self) -> None:
        """Stopped early (-x, --maxfail, Ctrl-C): cancel the runs not yet done, and record
        those that finished although nothing asked for them (nothing done is lost)."""
        with self._lock:  # nothing queued starts any more
            self._queued.clear()
        ahead, self._ahead = self._ahead, {}
        for _, future in ahead.values():
            future.cancel()
        for _, future in ahead.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                self._never_reported(future.result())  # recorded when it finished
        auto, self._ahead_auto = self._ahead_auto, {}
        for runs in auto.values():
            runs.cancel()
        finished, self._finished = self._finished, {}
        for key in auto:  # the runs each finished (recorded then) before it was cancelled
            for result in finished.get(key, []):
                self._never_reported(result)

    def _never_reported(self, result: CaseResult) -> None:
        """A result that finished but that pytest will never report (the run stopped): its
        observers take it whole first (the results file's rows read its output and
        explanations), then it is compacted as a reported one is."""
        self.observe(result)
        result.mark(reported=True)

    def run_all(self) -> list[CaseResult]:
        """Every case of the source, run and recorded; the results."""
        assert self.source is not None, "run_all needs a source"
        jobs = []
        for group in self.source.groups():
            task, evaluators = self.source.task(group), self.source.evaluators(group)
            jobs += [Job(f"{group.key}::{case.case_id}", case, task, evaluators)
                     for case in self.source.cases(group)]
        return self.run_jobs(jobs)

    def run_jobs(self, jobs: Sequence[Job]) -> list[CaseResult]:
        """These jobs, run (started ahead, ``concurrency`` at once) and recorded; the
        results."""
        self.start(jobs)
        try:
            results = [result for job in jobs for result in self.run(job)]
        finally:
            self.stop()
        for result in results:
            result.mark(reported=True)
        return results

    async def _limited(self, job: Job, run: Case) -> CaseResult:
        if not self._slots:  # made on the loop; asyncio wakes waiters first come, first served
            self._slots.append(asyncio.Semaphore(self.settings.concurrency))
        async with self._slots[0]:
            if self.sink is not None:  # a sink behind (a slow server): let it catch up first
                await self.sink.room()
            return await self._recorded(self._run_one(job, run))

    async def _until_settled(self, job: Job, limited: bool = True) -> list[CaseResult]:
        """Auto repetitions: run 1, then the next while the case is not settled (at most the
        bound), each recorded the moment it finishes. The runs follow one another in the
        job's slot: each decides whether there is a next, and pytest waits for the job's
        runs in item order."""
        from .._core.repeat import settled

        s = self.settings
        declared = {e.name: t for e in job.evaluators
                    if isinstance(t := getattr(e, "threshold", None), Threshold)}
        results = self._finished.setdefault(job.key, [])
        if limited:
            if not self._slots:
                self._slots.append(asyncio.Semaphore(s.concurrency))
            await self._slots[0].acquire()
        try:
            for repetition in range(1, s.repetitions + 1):
                if self.sink is not None and limited:
                    await self.sink.room()
                results.append(await self._recorded(
                    self._run_one(job, self._run(job.case, repetition))))
                if settled(results, s.pass_rule, s.repetitions, s.thresholds, declared):
                    break
        finally:
            if limited:
                self._slots[0].release()
        return list(results)

    async def _recorded(self, running: Coroutine[Any, Any, CaseResult]) -> CaseResult:
        """The result of ``running``, recorded the moment it is there."""
        result = await running
        self.record(result)
        return result

    async def _run_one(self, job: Job, case: Case) -> CaseResult:
        """One run on the engine's loop: the task (traced when the sink has a project for
        it), then the evaluators."""
        if job.task is None:
            if job.prepare is None:
                return await self._evaluate(case, job.output, job.evaluators,
                                            datetime.now(UTC))
            start = datetime.now(UTC)
            try:
                whole, output = await job.prepare(case)
            except Exception as exc:  # the case errors; nothing is written for it
                from .._core.secrets import redact

                return CaseResult(case=case, error=redact(f"{type(exc).__name__}: {exc}"),
                                  start_time=start, end_time=datetime.now(UTC))
            result = await self._evaluate(whole, output, job.evaluators, start)
            if self.settings.keep_failures and not result.passed:
                result.keep = True
            else:
                result.light = case  # what the result keeps once reported and written
            return result
        tracer = None
        if self.sink is not None and self.tracing is not None:
            project = await self.sink.project(case.group)
            tracer = self.tracing.tracer(project) if project else None
        return await run_case(case, job.task, job.evaluators, self.settings.thresholds, tracer,
                              self.settings.task_timeout)

    # --- outputs made elsewhere (a test function of the fixture style) ---------------------

    def evaluate_output(self, case: Case, output: Any, evaluators: Sequence[Evaluator],
                        start: datetime) -> CaseResult:
        """Evaluate an output the caller produced; recorded and observed."""
        result = self.engine.run(self._recorded(self._evaluate(case, output, evaluators, start)))
        self.observe(result)
        return result

    async def _evaluate(self, case: Case, output: Any, evaluators: Sequence[Evaluator],
                        start: datetime) -> CaseResult:
        result = CaseResult(case=case, start_time=start, end_time=datetime.now(UTC))
        try:
            result.output = as_json(output)
        except OutputNotSerialisable as exc:
            result.error = str(exc)
        return await evaluate(result, evaluators, self.settings.thresholds)

    def record_error(self, case: Case, error: str, start: datetime | None) -> CaseResult:
        """A case that failed before it had an output (the test raised first); recorded."""
        end = datetime.now(UTC)
        result = CaseResult(case=case, error=error, start_time=start or end, end_time=end)
        self.record(result)
        self.observe(result)
        return result

    def record(self, result: CaseResult) -> None:
        """Keep the result and hand it to the sink (which journals it before anything else)."""
        self.results.append(result)
        if self.sink is not None:
            self.sink.record(result)
        else:
            result.mark(uploaded=True)

    def observe(self, result: CaseResult) -> None:
        """Tell every observer about a recorded result; one that raises is noted, not fatal."""
        for observe in self.observers:
            try:
                observe(result)
            except Exception as exc:
                name = getattr(observe, "__name__", repr(observe))
                self.observer_errors.append((name, result.case.case_id,
                                             f"{type(exc).__name__}: {exc}"))


def _run_key(key: str, case: Case) -> str:
    return f"{key}#{case.repetition}"


#: What a case imports lazily the first time it needs it: on the engine's threads (spans,
#: names, the journal, the cache) and, while they run, on the main thread (its report).
#: The layers whose modules are imported lazily, from the main thread and from the engine's
#: and the exporter's threads alike.
_LAYERS = ("_core", "_phoenix", "_evaluators", "_run", "_tracing", "_report", "_modes")
#: Modules outside the layers that cases import lazily.
_OTHERS = ("_local", "_tasks", "_judge_settings")
_modules: list[str] = []


def import_ahead() -> None:
    """Import every module of the lazily imported layers, on the calling thread (the main
    one, before any other thread of the run starts), so that no thread imports one later.
    pytest rewrites the plugin's modules on import (``ast.parse``), and CPython 3.11's AST
    constructor keeps its recursion count in state the threads share: a module imported on
    one thread while another imports one could fail either with "SystemError: AST
    constructor recursion depth mismatch". (Checked against ``sys.modules`` each time, not a
    flag: pytester's in-process runs drop what they imported.) Called only once the plugin
    is asked for something, so that it stays cheap when unused."""
    import importlib
    import pkgutil
    import sys

    package = __name__.rsplit(".", 2)[0]
    if not _modules:
        root = importlib.import_module(package)
        for layer in _LAYERS:
            found = importlib.import_module(f"{package}.{layer}")
            _modules.append(found.__name__)
            _modules.extend(info.name for info in pkgutil.walk_packages(
                found.__path__, prefix=f"{found.__name__}."))
        _modules.extend(f"{package}.{name}" for name in _OTHERS)
        del root
    for name in _modules:
        if name not in sys.modules:
            importlib.import_module(name)

