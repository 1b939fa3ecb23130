"""What every mode shares: the front end's facts (:class:`Host`) and the parts built once per
run (:class:`Context`: the gateway to Phoenix, the engine, the judge clients, tracing).

pytest-free. The pytest layer fills a :class:`Host` with plain values and callables (the
rootdir, the conftest hooks, where progress lines go), so a mode never sees ``config``. Each
part is built the first time a mode asks for it, so that a run that needs no judge imports no
judge client.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._run import handover

if TYPE_CHECKING:
    from .._core.types import CaseResult, Group
    from .._evaluators.llm.client import Judges
    from .._evaluators.protocol import Evaluator
    from .._phoenix.gateway import Gateway
    from .._phoenix.traces import Traces
    from .._run.engine import Engine
    from .._run.sources.dataset import DatasetSource, Selection
    from .._settings import Settings
    from .._tracing.export import Tracing

# Where the traces of judges defined in code go (attached ones use their own project).
JUDGE_PROJECT = "pytest-phoenix-evals judges"
#: The end of the session waits for Phoenix to take the trace spans while it takes more of
#: them, and gives up after this many seconds with none taken (a busy server answers 503
#: while its span queue is full, and frees room at the rate it stores spans).
TRACES_PATIENCE = 300.0
#: From this many spans waiting to be sent at the end, the session says it is sending them.
TRACES_SAID_FROM = 10_000

Task = Callable[..., Any]


def _no_task(group: Group) -> Task | None:
    return None


def _no_evaluators(group: Group, kind: str) -> list[Evaluator]:
    return []


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Host:
    """What the front end tells the modes: plain values and callables, no pytest objects."""

    rootpath: Path
    #: A progress line for the user (the terminal; nothing under -q -q).
    say: Callable[[str], None] = _print
    #: The command line as typed (redacted before it is recorded anywhere).
    command_line: Sequence[str] = ()
    #: The conftest's task for a group (the ``pytest_phoenix_evals_task`` hook), checked.
    task_hook: Callable[[Group], Task | None] = _no_task
    #: The conftest's evaluators for a group (``pytest_phoenix_evals_evaluators``), checked;
    #: ``kind`` is what the mode judges (``dataset``, ``benchmark``, ``spans``, ...).
    evaluators_hook: Callable[[Group, str], list[Evaluator]] = _no_evaluators
    #: Told of every finished case (``pytest_phoenix_evals_case_result``).
    case_hook: Callable[[CaseResult], None] | None = None
    #: What selected part of a run (-k, --lf, ...), for a partial run's note.
    selected_by: Callable[[], str] = lambda: "node ids or another plugin's selection"
    #: What pytest-xdist's controller handed this worker ({} outside a worker).
    workerinput: Mapping[str, Any] = field(default_factory=dict)
    #: The front end's name and version, recorded in experiments ({"pytest_version": ...}).
    front_end: Mapping[str, str] = field(default_factory=dict)

    @property
    def worker(self) -> str | None:
        return self.workerinput.get("workerid")

    @property
    def workers(self) -> int:
        return handover.workers_in(dict(self.workerinput))


class Context:
    """The parts of one run that every mode shares, built lazily."""

    def __init__(self, settings: Settings, host: Host) -> None:
        self.settings = settings
        self.host = host
        self.notices: list[str] = []
        #: Trace spans that did not reach Phoenix (known once the session is shut down).
        self.lost_spans = 0
        #: Coroutines to await before the engine stops (a mode's own clients).
        self.closers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._gateway: Gateway | None = None
        self._engine: Engine | None = None
        self._judges: Judges | None = None
        self._tracing: Tracing | None = None
        self._traces: Traces | None = None
        # Every evaluator handed out, by identity: those holding connections are closed at the end.
        self._handed_out: dict[int, Evaluator] = {}

    def say(self, line: str) -> None:
        self.host.say(line)

    def notice(self, line: str) -> None:
        """A line for the summary's notices (said once)."""
        if line not in self.notices:
            self.notices.append(line)

    # --- the parts ------------------------------------------------------------------------

    @property
    def built(self) -> bool:
        """Whether anything was built (else the end of the run imports nothing)."""
        return self._engine is not None or self._gateway is not None

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            if self.settings.offline:
                from .._run.sources.dataset import offline_gateway

                self._gateway = offline_gateway(self.settings.datasets, self.selection(),
                                                self.host.rootpath)
            else:
                from .._phoenix.gateway import Gateway
                from .._phoenix.http import resolve_url

                url, source = resolve_url(self.settings.url, self.settings.url_source)
                self._gateway = Gateway(url, source, primed=self._primed())
        return self._gateway

    def _primed(self) -> dict[str, Any] | None:
        """On an xdist worker: what the controller read from Phoenix (see Gateway)."""
        path = self.host.workerinput.get(handover.TAPE)
        if not path:
            return None
        try:
            return dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None  # then the worker asks the server itself

    def tape_for_workers(self, directory: str) -> str | None:
        """On xdist's controller, once it has loaded the datasets: its gateway's tape in a
        file of the shared folder, for the workers (None when offline or nothing was read)."""
        if self.settings.offline or self._gateway is None or not self._gateway.tape:
            return None
        path = Path(directory, "tape.json")
        if not path.exists():
            part = path.with_suffix(".part")
            part.write_text(json.dumps(self._gateway.tape), encoding="utf-8")
            part.replace(path)
        return str(path)

    @property
    def traces(self) -> Traces:
        """The gateway's span half."""
        if self._traces is None:
            from .._phoenix.traces import Traces

            self._traces = Traces(self.gateway)
        return self._traces

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from .._run.engine import Engine

            # A case's task and its sync evaluators may each hold a thread.
            self._engine = Engine(threads=2 * self.settings.concurrency + 4)
        return self._engine

    @property
    def judges(self) -> Judges:
        """The judge clients of this run (one per provider endpoint, on the engine loop)."""
        if self._judges is None:
            from .._evaluators.llm.client import Judges

            workers = self.host.workers
            self._judges = Judges(handover.judges_share(self.settings.judge, workers),
                                  workers=workers)
            if self.settings.cache:
                from .._evaluators.llm.cache import JudgeCache, cache_path

                self._judges.cache = JudgeCache(cache_path(self.host.rootpath))
        return self._judges

    @property
    def tracing(self) -> Tracing | None:
        """Traces sent to Phoenix; None with --phoenix-no-upload (then nothing is traced)."""
        if self.settings.no_upload:
            return None
        if self._tracing is None:
            from .._phoenix.http import headers
            from .._tracing.export import Tracing

            shared = self.host.workerinput.get(handover.SHARED_DIR)
            self._tracing = Tracing(self.gateway.url, headers(),
                                    hand_over=Path(shared, handover.SPANS_DIR) if shared else None)
        return self._tracing

    def selection(self) -> Selection:
        """Which examples of each dataset run (--phoenix-split, --phoenix-limit, ...)."""
        from .._run.sources.dataset import Selection

        s = self.settings
        return Selection(version=s.dataset_version, splits=s.splits, examples=s.examples,
                         limit=s.limit, sample_seed=s.sample_seed,
                         split_membership=any(g.scope == "split" for g in s.gates))

    def journal_suffix(self) -> str:
        """Per run (and worker): a later run, or another server's experiment of the same id,
        never appends to this run's journal file."""
        worker = self.host.worker
        return f"-{uuid.uuid4().hex[:8]}" + (f"-{worker}" if worker else "")

    def equip(self, evaluator: Evaluator) -> Evaluator:
        """Give an evaluator what it needs from the run (judge clients, tracing)."""
        from .._evaluators.protocol import LoadsFromPhoenix, NeedsJudges

        self._handed_out.setdefault(id(evaluator), evaluator)
        if isinstance(evaluator, NeedsJudges) and evaluator.judges is None:
            evaluator.judges = self.judges
            if isinstance(evaluator, LoadsFromPhoenix):  # its prompt comes from the server
                evaluator.load(self.gateway)
            tracing = self.tracing
            if tracing is not None and evaluator.tracing is None:
                from .._evaluators.llm.trace import JudgeTrace

                project = evaluator.project_name or JUDGE_PROJECT
                evaluator.tracing = JudgeTrace(tracing, project)
        return evaluator

    # --- the end --------------------------------------------------------------------------

    def send_handed_over(self, folder: Path) -> None:
        """On xdist's controller: the trace spans the workers left, once all are down."""
        tracing = self.tracing
        if tracing is not None:
            tracing.send_handed_over(folder)

    def shut_down(self) -> None:
        """Send the trace spans, close the judge cache and every client, stop the engine."""
        from .._evaluators.protocol import Closes

        if self._tracing is not None:
            waiting = self._tracing.waiting()
            if waiting >= TRACES_SAID_FROM:
                self.say(f"phoenix-evals: sending {waiting} trace span(s) of tasks and judges "
                         f"to Phoenix, after the results (it may answer busy while it stores "
                         f"them; waited for while it takes more within {TRACES_PATIENCE:g} s) "
                         f"...")
            self._tracing.shutdown(timeout_seconds=TRACES_PATIENCE)
            lost, ended = self._tracing.lost_spans
            self.lost_spans = lost
            if lost:
                self.notices.append(
                    f"{lost} of {ended} trace span(s) of tasks and judges did not reach Phoenix "
                    f"(its trace endpoint refused them, was unreachable, or took none of them "
                    f"for {TRACES_PATIENCE:g} s); the results and annotations are in Phoenix, "
                    f"but the judgments of those judge calls cannot be audited there")
        if self._judges is not None and self._judges.cache is not None:
            self._judges.cache.close()
            if self._judges.cache.problem:
                self.notices.append(self._judges.cache.problem)
        if self._engine is not None:
            closers = [self._judges.aclose()] if self._judges is not None else []
            closers += [close() for close in self.closers]
            if self._gateway is not None:
                closers.append(self._gateway.aclose())
            closers += [e.aclose() for e in self._handed_out.values() if isinstance(e, Closes)]
            for closer in closers:
                with contextlib.suppress(Exception):  # idle connections must not fail a run
                    self._engine.run(closer, timeout=10)
            self._engine.close()
        if self._gateway is not None:
            self._gateway.close()


def dataset_source(ctx: Context, specs: Sequence[str],
                   task_for: Callable[[Group], Callable[..., Any] | None] | None = None, *,
                   kind: str = "dataset") -> DatasetSource:
    """The datasets ``specs`` names, each with its attached evaluators (built to run where
    --phoenix-evaluate-on says) and the conftest's."""
    from .._evaluators.attached import AttachedEvaluators
    from .._run.sources.dataset import DatasetSource

    s = ctx.settings
    attached = AttachedEvaluators(
        ctx.gateway, prompt_tag=s.prompt_tag, notices=ctx.notices, evaluate_on=s.evaluate_on,
        allow_code=s.allow_code_evaluators, code_timeout=s.code_timeout)
    return DatasetSource(ctx.gateway, list(dict.fromkeys(specs)), ctx.selection(),
                         attached=attached,
                         extra=lambda group: ctx.host.evaluators_hook(group, kind),
                         task_for=task_for or (lambda group: None))
