"""The annotation sink: each case's results written back as span (or trace) annotations.

Every annotation carries our identifier (:data:`~..sources.spans.IDENTIFIER`), so the server
upserts it on (name, span, identifier): writing twice leaves one row, and a human's annotation
of the same name (another identifier) is never touched. An evaluator that errored writes
nothing, so that its span is judged again by the next run.

Results are journaled first (one line per case, with the exact rows), then written in
synchronous batches (``sync=true``: the server answers once they are stored). A batch is all or
nothing on the server: one span deleted meanwhile answers 404 for all of them, so a refused
batch is split in halves until the spans that are gone are found, and the rest is written.
``pytest --phoenix-upload-pending`` writes what a session could not (:func:`replay`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._core.secrets import redact, redact_value
from ..._core.text import encodable
from ..._core.types import CaseResult, Group, Score
from ..._phoenix.http import PhoenixError
from ..._phoenix.traces import Project, Target, Traces
from ..sources.spans import IDENTIFIER
from .base import Destination, UploadReport

if TYPE_CHECKING:
    from ..engine import Engine
    from .journal import Journal

#: Rows in one synchronous write (about 2.5 ms of server time each).
BATCH = 200
#: Seconds a partial batch waits for more results before it is written.
LINGER = 0.25
#: Names the server keeps for itself.
RESERVED_NAMES = frozenset({"note"})


def annotation_rows(result: CaseResult, target: Target, meta: Mapping[str, Any]
                    ) -> list[dict[str, Any]]:
    """The rows to write for a case, redacted: one per score that has a result."""
    key = "trace_id" if target == "trace" else "span_id"
    rows = []
    for score in result.scores:
        if score.error is not None:
            continue  # nothing written: the span is judged again next time
        outcome = {k: v for k, v in (("label", score.label), ("score", score.score),
                                     ("explanation", score.explanation)) if v is not None}
        if not outcome:
            continue
        rows.append({key: result.case.example.id, "name": score.name,
                     "annotator_kind": "LLM" if score.annotator_kind == "LLM" else "CODE",
                     "result": redact_value(outcome), "identifier": IDENTIFIER,
                     "metadata": redact_value(_metadata(score, meta))})
    kept: list[dict[str, Any]] = encodable(rows)
    return kept


def _metadata(score: Score, meta: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = dict(score.metadata or {})
    kept: dict[str, Any] = {k: found[k] for k in (
        "model", "prompt_version_id", "cost_usd", "judge_cache", "prompt_tokens",
        "completion_tokens") if k in found}
    return {**meta, "evaluator": score.evaluator, **kept}


@dataclass
class _Pending:
    key: str
    case_id: str
    rows: list[dict[str, Any]]
    journal: Journal | None


@dataclass
class Written:
    """What writing some rows did."""

    rows: int = 0
    gone: set[str] = field(default_factory=set)  # span (trace) ids the server no longer has


async def write_rows(traces: Traces, target: Target, rows: Sequence[dict[str, Any]]
                     ) -> Written:
    """Write rows synchronously, splitting a batch the server refuses with a 404 (an unknown
    span: nothing of it was written) until the spans that are gone are found. PhoenixError
    for any other failure."""
    done = Written()
    if not rows:
        return done
    try:
        await traces.apost_annotations(target, rows)
        done.rows += len(rows)
        return done
    except PhoenixError as exc:
        if exc.status != 404:
            raise
    key = "trace_id" if target == "trace" else "span_id"
    subjects = list(dict.fromkeys(row[key] for row in rows))
    if len(subjects) == 1:
        done.gone.add(subjects[0])
        return done
    half = set(subjects[:len(subjects) // 2])
    for part in ([r for r in rows if r[key] in half], [r for r in rows if r[key] not in half]):
        more = await write_rows(traces, target, part)
        done.rows += more.rows
        done.gone |= more.gone
    return done


class AnnotationSink:
    """Writes the annotations of finished cases in batches; reports what it could not."""

    def __init__(self, traces: Traces, engine: Engine, project: Project, target: Target, *,
                 metadata: Mapping[str, Any], journal_dir: Path | None = None,
                 journal_suffix: str = "") -> None:
        self._traces = traces
        self._engine = engine
        self._project = project
        self._target = target
        self._metadata = dict(metadata)
        self._journal_dir = journal_dir
        self._journal_suffix = journal_suffix
        self._journal: Journal | None = None
        self._report = UploadReport()
        self._batch: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writes: list[asyncio.Future[None]] = []
        self._all: list[concurrent.futures.Future[None]] = []
        self.gone: set[str] = set()
        self.left: dict[str, int] = {}  # case id -> evaluators that errored (judged next time)

    # --- the Sink protocol ------------------------------------------------------------------

    def open(self, group: Group) -> Destination:
        destination = Destination(group=group, id=self._project.id,
                                  url=self._traces.project_url(self._project))
        if not self._report.destinations:
            self._report.destinations.append(destination)
        return destination

    async def project(self, group: Group) -> str | None:
        return None  # there is no task to trace

    def url(self, group: Group) -> str | None:
        return self._traces.project_url(self._project)

    def record(self, result: CaseResult) -> None:
        errored = sum(score.error is not None for score in result.scores)
        if errored:
            self.left[result.case.case_id] = errored
        future = self._engine.submit(self._add(result))
        self._all.append(future)

    async def room(self) -> None:
        return None  # not held back: rows are written BATCH at a time, and are small

    def waiting(self) -> int:
        return sum(len(p.rows) > 0 for p in self._batch) + sum(
            not w.done() for w in self._writes)

    def drain(self, timeout: float) -> UploadReport:
        concurrent.futures.wait(self._all, timeout=timeout)
        try:
            self._engine.run(self._flush_now(), timeout=max(1.0, timeout))
        except (TimeoutError, concurrent.futures.TimeoutError):
            pass
        pending = sum(not w.done() for w in self._writes)
        self._report.pending = pending
        if self._journal is not None:
            try:
                left = self._journal.close()
            except OSError as exc:
                self._report.unjournaled.append(f"closing {self._journal.path}: {exc}")
                left = self._journal.cases - self._journal.done
            if left:
                self._report.journaled[str(self._journal.path)] = left
        return self._report

    # --- batching ---------------------------------------------------------------------------

    def _journal_file(self) -> Journal | None:
        if self._journal_dir is None:
            return None
        if self._journal is None:
            from ..._local import safe_name
            from .journal import Journal

            name = f"annotations-{self._target}-{safe_name(self._project.id)}"
            self._journal = Journal(self._journal_dir / f"{name}{self._journal_suffix}.jsonl")
        return self._journal

    def _where(self) -> dict[str, Any]:
        from ..._phoenix.http import mask_url

        return {"server": mask_url(self._traces.gateway.url), "id": self._project.id,
                "name": self._project.name}

    async def _add(self, result: CaseResult) -> None:
        try:
            rows = annotation_rows(result, self._target, self._metadata)
        except Exception as exc:  # a bug of ours: said, never raised into the loop
            self._report.failures.append(f"{result.case.case_id}: not written: "
                                         f"{type(exc).__name__}: {exc}")
            result.mark(uploaded=True)
            return
        journal = self._journal_file()
        key = f"{self._target}:{result.case.example.id}"
        if journal is not None and rows:
            try:  # on disk before anything is written
                journal.annotations(key, self._target, self._where(), rows)
            except OSError as exc:
                self._report.unjournaled.append(f"{result.case.case_id}: {journal.path}: {exc}")
                journal = None
        result.mark(uploaded=True)  # its rows are kept here now; the output may go
        if not rows:
            return
        self._batch.append(_Pending(key, result.case.case_id, rows, journal))
        if sum(len(p.rows) for p in self._batch) >= BATCH:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(LINGER, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._batch = self._batch, []
        if batch:
            self._writes.append(asyncio.ensure_future(self._write(batch)))

    async def _flush_now(self) -> None:
        self._flush()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _write(self, batch: list[_Pending]) -> None:
        rows = [row for pending in batch for row in pending.rows]
        try:
            written = await write_rows(self._traces, self._target, rows)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, PhoenixError) else f"{type(exc).__name__}: {exc}"
            self._report.failures.append(f"{len(batch)} case(s) ({batch[0].case_id}, ...): "
                                         f"annotations not written: {reason}")
            return
        self._report.uploaded_annotations += written.rows
        self.gone |= written.gone
        for pending in batch:
            if pending.journal is not None:
                try:
                    pending.journal.mark_done(pending.key)
                except OSError as exc:
                    self._report.unjournaled.append(f"{pending.case_id}: {exc}")
        self._report.uploaded_runs += len(batch)


# --- --phoenix-upload-pending: annotations a session could not write ---------------------


async def replay(traces: Traces, files: Sequence[Path]) -> tuple[int, list[str]]:
    """Write the pending annotations of these journal files; (cases written, problems)."""
    from .journal import Journal, read_journal

    here = traces.gateway.url
    uploaded, problems = 0, []
    for path in files:
        journal = Journal(path)
        try:
            if not journal.claim():
                problems.append(f"{path}: in use by another process (a session still "
                                f"running?): left alone")
                continue
            records, unreadable = read_journal(path)
        except OSError as exc:
            journal.close(delete=False)
            problems.append(f"{path}: cannot be read ({exc}); skipped")
            continue
        if unreadable:
            problems.append(f"{path}: {unreadable} line(s) that are not journal records were "
                            f"skipped")
        journal.cases = len(records)
        by_target: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_target.setdefault(record["target"], []).append(record)
        for target, kept in by_target.items():
            project = kept[0]["project"]
            try:
                await asyncio.to_thread(traces.project, project["id"])
            except PhoenixError as exc:
                problems.append(f"{path}: project {project.get('name')!r} "
                                f"({project['id']}) is not in {redact(here)}: {exc}")
                continue
            rows = [row for record in kept for row in record["rows"]]
            try:
                written = await write_rows(traces, target, rows)  # type: ignore[arg-type]
            except PhoenixError as exc:
                problems.append(str(exc))
                continue
            if written.gone:
                problems.append(f"{len(written.gone)} {target}(s) no longer in Phoenix: "
                                f"their annotations were dropped")
            for record in kept:
                journal.mark_done(record["key"])
                uploaded += 1
        journal.close(delete=not unreadable)
    return uploaded, problems
