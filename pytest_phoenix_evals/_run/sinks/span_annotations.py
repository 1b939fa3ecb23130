"""The annotation sink: each case's results written back as span (or trace) annotations.

Every annotation carries our identifier (:data:`~..sources.spans.IDENTIFIER`), so the server
upserts it on (name, span, identifier): writing twice leaves one row, and a human's annotation
of the same name (another identifier) is never touched. An evaluator that errored writes
nothing, so that its span is judged again by the next run.

Results are journaled first (one line per case, with the exact rows), then written in
synchronous batches (``sync=true``: the server answers once they are stored). A batch is all or
nothing on the server: one span deleted meanwhile answers 404 for all of them. Only
Phoenix's own 404 (plain text naming the spans that "do not exist") counts, and only once
reading the spans back finds them gone: those are dropped and the rest is written. Any other
404 (a proxy, an ingress during a deploy) leaves the batch in the journal.
``pytest --phoenix-upload-pending`` writes what a session could not (:func:`replay`): only into
the server and project it was journaled for (their identity checked), never over an annotation
that is newer on the server or a person's correction of ours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._core.naming import IDENTIFIER
from ..._core.secrets import redact, redact_value
from ..._core.text import encodable
from ..._core.types import CaseResult, Group, Score
from ..._phoenix.http import PhoenixError
from ..._phoenix.traces import Project, Target, Traces, UnknownSubjects, normalised_url, quote_dsl
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
    key = f"{target}_id"
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
        "model", "prompt", "prompt_version_id", "prompt_tag", "cost_usd", "judge_cache",
        "prompt_tokens", "completion_tokens", "tool_calls") if k in found}
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


#: Times a write is tried again without the spans Phoenix said (and a read confirmed) are gone.
GONE_ROUNDS = 5


async def write_rows(traces: Traces, project: Project, target: Target,
                     rows: Sequence[dict[str, Any]]) -> Written:
    """Write rows synchronously. When Phoenix itself answers that some spans (traces) of the
    batch do not exist (nothing was written), and reading them back from the project finds
    them gone, their rows are dropped and the rest is written. PhoenixError for any other
    failure, a 404 that is not Phoenix's own answer included: nothing is taken as deleted on
    a proxy's word."""
    done = Written()
    key = f"{target}_id"
    todo = list(rows)
    for _ in range(GONE_ROUNDS):
        if not todo:
            return done
        try:
            await traces.apost_annotations(target, todo)
            done.rows += len(todo)
            return done
        except UnknownSubjects as exc:
            subjects = {str(row[key]) for row in todo}
            named = exc.ids & subjects
            if not named or exc.ids - subjects:
                raise PhoenixError(f"{exc}, ids that are not all in the batch: nothing taken "
                                   f"as deleted", status=404, body=exc.body) from None
            still = await asyncio.to_thread(_existing, traces, project, target, named)
            if still:
                raise PhoenixError(
                    f"{exc}, but the project still has {', '.join(sorted(still))}: nothing "
                    f"taken as deleted", status=404, body=exc.body) from None
            done.gone |= named
            todo = [row for row in todo if str(row[key]) not in named]
    raise PhoenixError(f"{traces.where()} kept refusing {target} annotations as spans deleted "
                       f"{GONE_ROUNDS} times in a row; kept for later")


def _existing(traces: Traces, project: Project, target: Target, ids: set[str]) -> set[str]:
    """Which of these spans (traces, sessions) the project has (read back before anything is
    dropped)."""
    if target == "session":  # the app's own ids: read one by one (rare: a session deleted)
        return {i for i in ids if traces.session_project(i) == project.id}
    key = "trace_id" if target == "trace" else "span_id"
    condition = f"{key} in [{', '.join(quote_dsl(i) for i in sorted(ids))}]"
    found = set()
    for record in traces.spans(project, condition=condition, start=None, end=None):
        found.add(record.trace_id if target == "trace" else record.span_id)
    return found & ids


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
        # Each case's write still under way (a finished one is let go: memory holds what is
        # in flight, not the backlog).
        self._all: set[concurrent.futures.Future[None]] = set()
        self.gone: set[str] = set()
        self.left: dict[str, int] = {}  # case id -> evaluators that errored (judged next time)
        self._identity: dict[str, Any] | None = None

    # --- the Sink protocol ------------------------------------------------------------------

    def open(self, group: Group) -> Destination:
        if self._identity is None:
            self._identity = {}
            try:  # journaled with each record: upload-pending writes only into this project
                self._identity = {"server_id": self._traces.server_identity(),
                                  "created": self._traces.project_created(self._project)}
            except PhoenixError:
                pass  # said by the writes themselves; replay then goes by the URL
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
        self._all.add(future)
        future.add_done_callback(self._all.discard)

    async def room(self) -> None:
        return None  # not held back: rows are written BATCH at a time, and are small

    def waiting(self) -> int:
        return sum(len(p.rows) > 0 for p in self._batch) + sum(
            not w.done() for w in self._writes)

    def drain(self, timeout: float) -> UploadReport:
        concurrent.futures.wait(list(self._all), timeout=timeout)
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
                "name": self._project.name, **(self._identity or {})}

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
            written = await write_rows(self._traces, self._project, self._target, rows)
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
    """Write the pending annotations of these journal files; (cases written, problems).

    A file's records go only into the server and project they were journaled for: the
    server's identity (:meth:`Traces.server_identity`), the project's id, name and creation
    time must agree, else the file is kept and the problem names the server to run against.
    A row whose span already has a newer annotation of ours on the server, or a person's
    correction of ours (annotator kind HUMAN), is not written: the newer one stays."""
    from ..._phoenix.http import mask_url
    from .journal import claimed_records

    here = mask_url(traces.gateway.url)
    uploaded = 0
    problems: list[str] = []
    for path in files:
        claimed = claimed_records(path, problems)
        if claimed is None:
            continue
        journal, records, unreadable = claimed
        other = sum(record["type"] != "annotations" for record in records)
        if other:
            journal.close(delete=False)
            problems.append(f"{path}: holds {other} experiment record(s), not span or trace "
                            f"annotations: skipped (an experiment's journal file is not named "
                            f"annotations-*)")
            continue
        journal.cases = len(records)
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in records:
            groups.setdefault((record["target"], record["project"]["id"]), []).append(record)
        for (target, _), kept in groups.items():
            try:
                found = await asyncio.to_thread(_placed, traces, kept[0]["project"], here)
                if isinstance(found, str):
                    problems.append(f"{path}: {found}")
                    continue
                newer = await asyncio.to_thread(_newer, traces, found, target, kept)  # type: ignore[arg-type]
                rows = [row for record in kept for row in record["rows"]
                        if _row_key(row, target) not in newer]
                written = await write_rows(traces, found, target, rows)  # type: ignore[arg-type]
            except PhoenixError as exc:
                problems.append(f"{path}: {redact(str(exc))}")
                continue
            if newer:
                problems.append(f"{len(newer)} journaled {target} annotation(s) not written: "
                                f"Phoenix has a newer one from this plugin, or a person's "
                                f"correction of it, which stays")
            if written.gone:
                problems.append(f"{len(written.gone)} {target}(s) no longer in Phoenix: "
                                f"their annotations were dropped")
            for record in kept:
                journal.mark_done(record["key"])
                uploaded += 1
        journal.close(delete=not unreadable)
    return uploaded, problems


def _placed(traces: Traces, journaled: Mapping[str, Any], here: str) -> Project | str:
    """The project a journal record's rows go into on this server, or why not there."""
    server = str(journaled.get("server") or "")
    name, project_id = journaled.get("name"), str(journaled["id"])
    from ..._core.commands import upload_pending_command

    hint = f" (it was journaled for {server}: run `" \
        f"{upload_pending_command(server, '--phoenix-url')}` to write it there); kept" \
        if server and server != here else "; kept"
    server_id = journaled.get("server_id")
    if server_id is not None:
        if server_id != traces.server_identity():
            return f"project {name!r} ({project_id}) was journaled for another Phoenix " \
                   f"server than {here}{hint}"
    elif server and normalised_url(server) != normalised_url(here):
        # An older record, which does not say which server it was meant for: only its URL.
        return f"project {name!r} ({project_id}) was journaled for {server}, not {here}{hint}"
    try:
        found = traces.project(project_id)
    except PhoenixError as exc:
        if exc.status != 404:
            raise
        return f"project {name!r} ({project_id}) is not in {here}{hint}"
    created = journaled.get("created")
    if found.name != name or (created and traces.project_created(found) != created):
        return f"project {project_id} in {here} is not the project {name!r} the annotations " \
               f"were journaled for (another project of the same id){hint}"
    return found


def _row_key(row: Mapping[str, Any], target: str) -> tuple[str, str]:
    return str(row.get(f"{target}_id")), str(row.get("name"))


def _newer(traces: Traces, project: Project, target: Target,
           records: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (subject, name) pairs of these records that must not be written: the server has an
    annotation of ours updated after the record was journaled (one without a time: any), or a
    person's correction of ours."""
    from datetime import datetime

    at: dict[tuple[str, str], datetime | None] = {}
    for record in records:
        when = _time(record.get("at"))
        for row in record["rows"]:
            at[_row_key(row, target)] = when
    subjects = sorted({subject for subject, _ in at})
    names = sorted({name for _, name in at})
    newer = set()
    for row in traces.annotations(project, target, subjects, names, identifier=IDENTIFIER):
        key = _row_key(row, target)
        if key not in at:
            continue
        journaled, there = at[key], _time(row.get("updated_at"))
        if row.get("annotator_kind") == "HUMAN" or journaled is None or there is None \
                or there > journaled:
            newer.add(key)
    return newer


def _time(text: Any) -> Any:
    from datetime import datetime

    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
