"""The engine: runs a case (task, then evaluators) on an asyncio loop of its own.

pytest's thread submits a case and waits for its result; the loop thread meanwhile also carries
the recorder's uploads, so uploading never blocks a test. Sync tasks and evaluators run in the
loop's thread pool. Everything that runs many cases at once builds on :meth:`Engine.submit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

from .._core.binding import bind, call, task_arguments
from .._core.errors import RunError
from .._core.secrets import redact, redact_value
from .._core.text import encodable
from .._core.types import Case, CaseResult, Score
from .._core.verdict import Threshold, decide
from .._evaluators.protocol import Evaluator, declared_verdict

T = TypeVar("T")

# The tracer of the case running in this context (None when untraced): a task that calls a model
# itself (a prompt under test) puts its LLM span under the task's root span.
CASE_TRACER: ContextVar[Any] = ContextVar("phoenix_evals_case_tracer", default=None)


class Engine:
    """An event loop running in a daemon thread, with ``threads`` workers for sync code."""

    def __init__(self, threads: int = 8) -> None:
        self._loop = asyncio.new_event_loop()
        # asyncio's default pool has min(32, cpus + 4) workers: too few for many sync tasks at
        # once on a small machine, so the pool is sized to the cases run at once.
        self._loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="pytest-phoenix-evals-worker"))
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="pytest-phoenix-evals", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def shutdown() -> None:
            # Work still pending (uploads the session gave up waiting for) is cancelled here,
            # not destroyed with the loop, which would print "Task was destroyed".
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await self._loop.shutdown_default_executor()

        try:
            self.run(shutdown(), timeout=10)
        except Exception:  # a stuck sync task must not hang pytest's exit
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


# Frames of our own and of the machinery that runs a task; a task's traceback starts after them.
_INTERNAL_DIRS = tuple(
    os.path.dirname(module.__file__ or "") + os.sep
    for module in (asyncio, concurrent.futures)
) + (os.path.dirname(os.path.dirname(__file__)) + os.sep, threading.__file__)


def user_traceback(exc: BaseException) -> BaseException:
    """``exc`` with the leading frames of the engine, asyncio and thread pools removed."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        tb = tb.tb_next
    return exc.with_traceback(tb) if tb is not None else exc


class OutputNotSerialisable(TypeError):
    pass


def as_json(output: Any) -> Any:
    """The output as the server will store it, or OutputNotSerialisable saying why not."""
    try:
        text = json.dumps(output, allow_nan=False, ensure_ascii=False)
    except RecursionError:
        raise OutputNotSerialisable(
            f"the task returned a {type(output).__name__} nested too deeply to store (JSON "
            f"this deep cannot be written or read back): flatten it") from None
    except (TypeError, ValueError) as exc:
        raise OutputNotSerialisable(
            f"the task returned a {type(output).__name__}, which is not JSON-serialisable "
            f"({exc}); return str, int, float, bool, None, or lists and dicts of those"
        ) from None
    try:
        text.encode("utf-8")  # what the upload does; a lone surrogate cannot be sent
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end].encode("utf-8", "backslashreplace").decode()
        raise OutputNotSerialisable(
            f"the task's output holds text that is not valid Unicode ({bad} at character "
            f"{exc.start} of its JSON): decode bytes with errors='replace' before returning "
            f"them") from None
    return json.loads(text)


async def run_task(case: Case, task: Callable[..., Any], tracer: Any = None,
                   timeout: float | None = None) -> CaseResult:
    """Run the task on the case's example; errors are recorded on the result, not raised.

    With a ``tracer`` the task runs inside a root span ``Task: <name>`` (an instrumented app's
    own spans become its children) whose trace id goes on the run.
    """
    if tracer is None:
        return await _run_task(case, task, timeout)
    from .._tracing.spans import start_root_span

    name = getattr(task, "__name__", type(task).__name__)
    with start_root_span(tracer, f"Task: {name}", "CHAIN", case.example.input) as span:
        token = CASE_TRACER.set(tracer)
        try:
            result = await _run_task(case, task, timeout)
        finally:
            CASE_TRACER.reset(token)
        result.trace_id = span.trace_id_hex
        if result.error is not None:
            span.record_error(result.exception or RuntimeError(result.error))
        else:
            span.set_output(result.output)
    return result


async def _run_task(case: Case, task: Callable[..., Any],
                    timeout: float | None = None) -> CaseResult:
    result = CaseResult(case=case, start_time=datetime.now(UTC))
    # When the task itself began and ended (not its case: binding, queueing, a busy loop).
    clock: list[datetime] = []
    try:
        arguments = bind(task, task_arguments(case.example), single="input")
        # An async task is cancelled at the timeout; a sync one cannot be stopped (Python has
        # no way to kill a thread): its case fails at the timeout and the thread is left to end.
        raw = await asyncio.wait_for(call(task, arguments, clock), timeout)
        result.output = as_json(raw)
    except OutputNotSerialisable as exc:
        result.error = str(exc)
    except RunError as exc:
        result.error = encodable(redact(str(exc)))
    except Exception as exc:
        # wait_for's own TimeoutError is raised from the cancellation of the task; a
        # TimeoutError of the task's own is an error like any other.
        if timeout is not None and isinstance(exc, TimeoutError) and \
                isinstance(exc.__cause__, asyncio.CancelledError):
            result.error = (f"TaskTimeout: the task did not finish within {timeout:g} s "
                            f"(--phoenix-task-timeout)")
        else:
            result.error = encodable(redact(f"{type(exc).__name__}: {exc}"
                                            + _missing_key_hint(exc, case)))
            result.exception = user_traceback(exc)
    result.end_time = datetime.now(UTC)
    if len(clock) == 2:  # the task ran to its end: its own time is what is recorded
        result.start_time, result.end_time = clock
    return result


def _missing_key_hint(exc: Exception, case: Case) -> str:
    """For a KeyError on a key the example's input lacks: the keys it has."""
    given = case.example.input
    if not isinstance(exc, KeyError) or not isinstance(given, dict) or not exc.args \
            or exc.args[0] in given:
        return ""
    return (f" (the example's input has no key {exc.args[0]!r}; its keys: "
            f"{', '.join(map(str, given)) or 'none'})")


async def evaluate(
    result: CaseResult,
    evaluators: Sequence[Evaluator],
    thresholds: Mapping[str, Threshold],
) -> CaseResult:
    """Run every evaluator on a finished task (concurrently) and decide the verdicts."""
    if result.error is not None:
        return result
    example = result.case.example
    context = example.context(result.output)
    batches = await asyncio.gather(
        *(_evaluate_one(e, context, example) for e in evaluators))
    names = Names()
    for index, (evaluator, scores) in enumerate(zip(evaluators, batches)):
        declared = declared_verdict(evaluator)
        for score in scores:
            # Phoenix keeps one annotation per name and run: a second evaluator's annotation
            # of the same name is kept apart under its own (said at collection).
            score.name = names.keep(score.name, index, score.evaluator)
            _redact(score)
            result.scores.append(score)
            result.verdicts.append(decide(score, thresholds, declared))
    return result


class Names:
    """The names a case's annotations are kept under. Phoenix keeps one annotation per name
    and run, so an annotation whose name an earlier evaluator (by position, not by name: two
    evaluators may share a name) already gave is kept as ``name (evaluator)``, numbered
    when that is taken too (``name (evaluator, 2)``)."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}  # annotation name -> the evaluator that gave it first
        self._taken: set[str] = set()

    def keep(self, name: str, index: int, evaluator: str) -> str:
        if self._first.setdefault(name, index) != index:
            kept, n = f"{name} ({evaluator})", 2
            while kept in self._taken or kept in self._first:
                kept, n = f"{name} ({evaluator}, {n})", n + 1
            name = kept
        self._taken.add(name)
        return name


def duplicate_annotations(evaluators: Sequence[Evaluator]) -> list[str]:
    """What a set of evaluators would lose to Phoenix's one annotation per name and run, as
    lines to show (empty when every annotation name is given by one evaluator only): the
    names each is kept under, as :class:`Names` gives them when the evaluators run."""
    from .._core.naming import annotation_names

    names = Names()
    givers: dict[str, list[tuple[str, str]]] = {}  # name -> (evaluator, kept as)
    for index, evaluator in enumerate(evaluators):
        for name in annotation_names(evaluator.output_configs) or [evaluator.name]:
            givers.setdefault(name, []).append((evaluator.name,
                                                names.keep(name, index, evaluator.name)))
    lines = []
    for name, given in givers.items():
        if len(given) < 2:
            continue
        who = [e for e, _ in given]
        by = (f"{len(who)} evaluators named {who[0]}" if len(set(who)) == 1 else
              f"evaluators {', '.join(who)}")
        lines.append(f"annotation {name!r} is given by {by}: Phoenix keeps one annotation per "
                     f"name, so the first is kept as {name!r} and the others as "
                     f"{', '.join(repr(kept) for _, kept in given[1:])}")
    return lines


def _redact(score: Score) -> None:
    """Keys and tokens never reach a report or an upload, whatever an evaluator wrote; every
    text can be written (see ``encodable``); a score Phoenix cannot store is an error."""
    if isinstance(score.score, float) and not math.isfinite(score.score):
        score.error = score.error or (
            f"the score is {score.score!r}, which Phoenix cannot store (JSON has no NaN or "
            f"infinity): return a finite number, or None with a label")
        score.score = None
    for name in ("error", "explanation", "label", "hint"):
        value = getattr(score, name)
        if isinstance(value, str):
            setattr(score, name, encodable(redact(value)))
    score.metadata = encodable(redact_value(score.metadata))


async def _evaluate_one(evaluator: Evaluator, context: dict[str, Any], example: Any
                        ) -> list[Score]:
    try:
        return await evaluator.evaluate(context, example)
    except Exception as exc:  # an evaluator bug fails its annotation, never the session
        from .._core.where import raised_at

        # A class of the user's (its evaluate method), not ours: pointed at.
        where = raised_at(exc, type(evaluator).evaluate)
        return [Score(name=evaluator.name, evaluator=evaluator.name,
                      error=f"{type(exc).__name__}: {exc}"
                      + (f" (evaluator {evaluator.name}, {where})" if where else ""))]


async def run_case(
    case: Case,
    task: Callable[..., Any],
    evaluators: Sequence[Evaluator],
    thresholds: Mapping[str, Threshold],
    tracer: Any = None,
    timeout: float | None = None,
) -> CaseResult:
    return await evaluate(await run_task(case, task, tracer, timeout), evaluators, thresholds)
