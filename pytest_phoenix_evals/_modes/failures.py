"""--phoenix-add-failures-to: the spans (or traces) an evaluator judged and failed, copied into
a regression dataset as the server itself would make them (``Span.asExampleRevision``).

The same promises as every other upload:

* **Only failures.** A span is a failure when an evaluator gave it a result and that result's
  verdict failed; an evaluator error, or a judge call the budget stopped (``not run``), is
  not one (that span is judged again by the next run).
* **Journaled first.** Before Phoenix is asked anything, each failing span is a ``failure``
  record of a ``failures-*`` file in the journal folder (where it goes, which span, the
  failed evaluations, redacted); a ``done`` record follows once it is in the dataset, or once
  Phoenix no longer has the span (the one reason a span is dropped, said in the summary).
* **Span by span.** A span deleted meanwhile, or one the server makes no example of, costs the
  others nothing; an append the server refuses for its content is split until the example it
  refuses is found.
* **Finished later.** What Phoenix did not take stays in the journal, the run does not exit 0
  (the session's upload report lists the file), and the next run adding failures to the same
  dataset, or ``pytest --phoenix-upload-pending``, adds it. The dataset dedups on the example
  id (one per span or trace), so a repeat adds nothing twice.
* **Redacted.** Every example's input, output and metadata passes the secret filter.

pytest-free. Imports no other mode (``spans.py`` passes what it needs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.secrets import redact, redact_value

if TYPE_CHECKING:
    from .._core.types import CaseResult
    from .._phoenix.traces import Project, Traces
    from .._run.sinks.journal import Journal

#: Journal files of failing spans start with this (annotations-* and experiments' differ).
PREFIX = "failures-"
#: Examples in one append (each append makes a dataset version).
APPEND = 100
#: Statuses that say the server refused the content of an append (the others: the server or
#: the network, where splitting the append would only repeat the failure).
_CONTENT_REFUSED = frozenset({400, 409, 413, 415, 422})
#: The command that adds what is left (with the run's --phoenix-url, when it named one).
UPLOAD_PENDING = "pytest --phoenix-upload-pending"


def is_failure(result: CaseResult) -> bool:
    """An evaluator gave the case a result and that result's verdict failed (an error or a
    judge call not made is not a failure)."""
    return any(score.error is None and verdict.status == "fail"
               for score, verdict in zip(result.scores, result.verdicts, strict=False))


def example_id(result: CaseResult) -> str:
    """One example per span (or trace), whatever run adds it."""
    return f"{result.case.group.kind[:-1]}-{result.case.example.id}"


def failed_evaluations(result: CaseResult) -> list[dict[str, Any]]:
    """The results that failed the case, redacted."""
    failed = [{"evaluator": score.evaluator, "name": score.name, "label": score.label,
               "score": score.score, "explanation": score.explanation}
              for score, verdict in zip(result.scores, result.verdicts, strict=False)
              if score.error is None and verdict.status == "fail"]
    return redact_value(failed)  # type: ignore[no-any-return]


def session_example(result: CaseResult, turns: Any) -> dict[str, Any]:
    """A failing session as one example: its turns as the input, its metadata (session id,
    trace ids, times, token counts); redacted and journaled as it is."""
    from .._core.text import encodable

    metadata = {k: v for k, v in result.case.example.metadata.items()}
    kept: dict[str, Any] = encodable(redact_value({"input": {"turns": turns},
                                                   "output": {}, "metadata": metadata}))
    return kept


def _source(record: dict[str, Any]) -> str:
    """What an item's example is read from: its span, or (a session) the record itself."""
    return str(record["span_id"] or record["example_id"])


@dataclass
class Added:
    """What adding failing spans did, for the summary and the exit status."""

    lines: list[str] = field(default_factory=list)
    # Journal files still holding failing spans of this dataset, with how many.
    pending: dict[str, int] = field(default_factory=dict)
    # Failing spans the journal could not take, with why.
    unjournaled: list[str] = field(default_factory=list)
    added: int = 0


@dataclass
class _Item:
    """One failing span to add, and the journal file that keeps it (None: not journaled)."""

    record: dict[str, Any]
    journal: Journal | None
    done: bool = False
    reason: str | None = None  # why it is not added yet

    def finish(self) -> None:
        self.done = True
        if self.journal is not None:
            self.journal.mark_done(self.record["key"])


def add_failures(traces: Traces, spec: str, project: Project, results: Sequence[CaseResult],
                 *, journal_dir: Path | None, suffix: str, no_upload: bool,
                 outputs: Mapping[str, Any] | None = None, rerun: str | None = None,
                 upload_pending: str = UPLOAD_PENDING) -> Added:
    """``--phoenix-add-failures-to=DATASET[:SPLIT]`` at the end of a run: this run's failing
    spans, journaled, then added with those earlier runs left for the same dataset.
    ``outputs``: each case's judged output by example id (a result lets go of its own once
    written); ``rerun``: the command that judges the dataset again, said at the end;
    ``upload_pending``: the command that adds what is left, said when something is."""
    from .._core.recorded import judged_context
    from .._core.text import encodable

    dataset, _, split = spec.partition(":")
    failing = [r for r in results if is_failure(r)]
    if no_upload:
        return Added([f"--phoenix-no-upload: {len(failing)} failing span(s) not added to "
                      f"{dataset!r}"] if failing else [])
    done = Added()
    items: list[_Item] = []
    journals: list[Journal] = []
    mine = None
    if failing and journal_dir is not None:
        from .._local import safe_name
        from .._run.sinks.journal import Journal

        mine = Journal(journal_dir / f"{PREFIX}{safe_name(dataset)}{suffix}.jsonl")
        journals.append(mine)
    where = {"id": project.id, "name": project.name}
    for result in failing:
        session = result.case.group.kind == "sessions"
        span_id = "" if session else str(result.case.example.metadata["span_id"])
        example = result.case.example
        output = (outputs or {}).get(example.id, result.output)
        record: dict[str, Any] = {
            "key": example_id(result), "dataset": dataset, "split": split or None,
            "project": where, "span_id": span_id, "example_id": example_id(result),
            "failed": failed_evaluations(result),
            # What the judges saw, for a run of the dataset to judge it again (redacted).
            "judged": encodable(redact_value(judged_context(
                example.input, output, example.reference, example.metadata)))}
        if rerun:
            record["rerun"] = rerun
        if session:  # no span to copy: the conversation itself is the example
            record["content"] = session_example(result, output)
        journal = mine
        if journal is not None:
            try:  # on disk before Phoenix is asked anything
                journal.failure(record["key"], record)
            except OSError as exc:
                done.unjournaled.append(redact(f"failing span {record['span_id']}: "
                                               f"{journal.path}: {exc}"))
                journal = None
        items.append(_Item(record, journal))
    if journal_dir is not None:  # what earlier runs left for this dataset
        earlier, claimed, problems = _pending(journal_dir, dataset, mine, upload_pending)
        journals += claimed
        items += earlier
        done.lines += problems
    if not items:
        return Added([f"no failing span to add to dataset {dataset!r}"])
    items, problems = _here(traces, items, project)
    done.lines += problems
    done.lines += _add(traces, dataset, split, items, done)
    _close(journals, items, done, upload_pending)
    return done


def replay(traces: Traces, files: Sequence[Path], upload_pending: str = UPLOAD_PENDING
           ) -> tuple[Added, list[str]]:
    """--phoenix-upload-pending: add the failing spans these journal files keep; (what was
    added and said, problems)."""
    from .._run.sinks.journal import claimed_records

    done = Added()
    problems: list[str] = []
    journals: list[Journal] = []
    by_dataset: dict[str, list[_Item]] = {}
    for path in files:
        claimed = claimed_records(path, problems)
        if claimed is None:
            continue
        journal, records, unreadable = claimed
        journal.cases = len(records)
        journals.append(journal)
        for record in records:
            if record.get("type") == "failure":
                by_dataset.setdefault(record["dataset"], []).append(_Item(record, journal))
    everything: list[_Item] = []
    for dataset, items in by_dataset.items():
        here, more = _here(traces, items, None)
        problems += more
        done.lines += _add(traces, dataset, None, here, done)
        everything += items
    _close(journals, everything, done, upload_pending)
    return done, problems


# --- the steps ------------------------------------------------------------------------------


def _pending(directory: Path, dataset: str, skip: Journal | None, upload_pending: str
             ) -> tuple[list[_Item], list[Journal], list[str]]:
    """The failing spans earlier runs journaled for ``dataset`` and did not add; the files
    claimed (the other datasets' records stay in them, pending)."""
    from .._run.sinks.journal import Journal, read_journal

    items: list[_Item] = []
    claimed: list[Journal] = []
    problems: list[str] = []
    if not directory.is_dir():
        return items, claimed, problems
    for path in sorted(directory.glob(f"{PREFIX}*.jsonl")):
        if skip is not None and path == skip.path:
            continue
        journal = Journal(path)
        try:
            if not journal.claim():
                continue  # another run at work on it
            records, _ = read_journal(path)
        except OSError as exc:
            journal.close(delete=False)
            problems.append(f"{path}: cannot be read ({exc}): its failing spans are left "
                            f"for `{upload_pending}`")
            continue
        journal.cases = len(records)
        mine = [r for r in records if r.get("type") == "failure" and r["dataset"] == dataset]
        if not mine:
            journal.close(delete=not records)  # a file with nothing pending goes
            continue
        claimed.append(journal)
        items += [_Item(record, journal) for record in mine]
    return items, claimed, problems


def _here(traces: Traces, items: list[_Item], project: Project | None
          ) -> tuple[list[_Item], list[str]]:
    """The items whose project is on this server (a span missing from another server's
    project is not gone from its own: those stay pending)."""
    from .._phoenix.http import PhoenixError

    known: dict[str, bool] = {project.id: True} if project is not None else {}
    problems: list[str] = []
    kept = []
    for item in items:
        where = item.record.get("project") or {}
        ident = str(where.get("id"))
        if ident not in known:
            try:
                found = traces.project(ident)
                known[ident] = found.name == where.get("name")
            except PhoenixError:
                known[ident] = False
            if not known[ident]:
                problems.append(redact(
                    f"project {where.get('name')!r} ({ident}) is not in {traces.where()}: its "
                    f"failing spans are left pending"))
        if known[ident]:
            kept.append(item)
        else:
            item.reason = "their project is not on this server"
    return kept, problems


def _add(traces: Traces, dataset: str, split: str | None, items: list[_Item], done: Added
         ) -> list[str]:
    """Add the items' spans to the dataset; the summary's lines. Each item added (or gone
    from Phoenix) is marked done; the others keep a reason."""
    from .._phoenix.http import PhoenixError

    if not items:
        return []
    try:
        present = traces.example_ids(dataset) or set()
        for item in items:
            if item.record["example_id"] in present:
                item.finish()
        todo = [item for item in items if not item.done]
        if not todo:
            return [f"dataset {dataset!r}: every failing span is in it already"]
        revisions = traces.example_revisions([item.record["span_id"] for item in todo
                                              if "content" not in item.record])
        for item in todo:
            if "content" in item.record:
                revisions.examples[_source(item.record)] = item.record["content"]
    except PhoenixError as exc:
        for item in items:
            if not item.done:
                item.reason = str(exc)
        return []
    lines = []
    gone = [item for item in todo if item.record["span_id"] in revisions.gone]
    for item in gone:
        item.finish()
    if gone:
        lines.append(f"{len(gone)} failing span(s) were deleted from Phoenix before they could "
                     f"be added to dataset {dataset!r}: dropped")
    for item in todo:
        if item.record["span_id"] in revisions.refused:
            item.reason = (f"Phoenix made no example of span {item.record['span_id']}: "
                           f"{revisions.refused[item.record['span_id']]}")
    ready: dict[str, list[_Item]] = {}
    for item in todo:
        if _source(item.record) in revisions.examples:
            ready.setdefault(item.record["example_id"], []).append(item)
    batches = [list(ready.values())[at:at + APPEND] for at in range(0, len(ready), APPEND)]
    versions: list[str] = []
    before = done.added
    stopped: str | None = None
    for batch in batches:
        if stopped is None:
            stopped = _append(traces, dataset, batch, revisions.examples, versions, done)
        if stopped is not None:
            for group in batch:
                for item in group:
                    item.reason = item.reason or stopped
    if versions:
        from .._core.commands import pytest_command

        rerun = next((item.record["rerun"] for item in todo if item.record.get("rerun")),
                     None) or pytest_command(f"--phoenix-dataset={dataset}")
        lines.append(f"added {done.added - before} failing span(s) to dataset {dataset!r}"
                     + (f" (split {split})" if split else "")
                     + f": version {versions[-1]}; judge them again with {rerun} (add "
                       f"--phoenix-task=module:function to run your app on them instead)")
    return [redact(line) for line in lines]


def _append(traces: Traces, dataset: str, batch: list[list[_Item]],
            examples: dict[str, dict[str, Any]], versions: list[str], done: Added
            ) -> str | None:
    """Append one example per group of items (the same span's, from several runs), split in
    halves while the server refuses the content; why it stopped (the server or the network:
    no later append would fare better), or None."""
    from .._core.text import encodable
    from .._phoenix.http import PhoenixError

    payload = []
    for group in batch:
        record = group[0].record
        revision = examples[_source(record)]
        metadata = {**revision["metadata"], "failed_evaluations": record.get("failed") or []}
        if record.get("judged") is not None:
            from .._core.recorded import JUDGED

            metadata[JUDGED] = record["judged"]
        # The secret filter on everything copied: a key a user pasted into the app is in the
        # span, and would otherwise be in every copy of the dataset.
        content = encodable(redact_value({"input": revision["input"],
                                          "output": revision["output"],
                                          "metadata": metadata}))
        payload.append({**content, "span_id": record["span_id"],
                        "example_id": record["example_id"], "split": record.get("split")})
    try:
        answer = traces.append_examples(dataset, payload, None)
    except PhoenixError as exc:
        reason = redact(str(exc))
        if exc.status in _CONTENT_REFUSED:
            if len(batch) == 1:
                for item in batch[0]:
                    item.reason = reason
                return None
            half = len(batch) // 2
            return (_append(traces, dataset, batch[:half], examples, versions, done)
                    or _append(traces, dataset, batch[half:], examples, versions, done))
        return reason
    versions.append(str(answer.get("version_id")))
    for group in batch:
        for item in group:
            item.finish()
        done.added += 1
    return None


def _close(journals: list[Journal], items: list[_Item], done: Added, upload_pending: str
           ) -> None:
    """Close the journal files (each deleted once every span of it is done); what is still
    pending goes to the summary and keeps the exit status from 0."""
    left = [item for item in items if not item.done]
    for journal in journals:
        try:
            journal.close()
        except OSError as exc:
            done.unjournaled.append(redact(f"closing {journal.path}: {exc}"))
    for item in left:
        if item.journal is not None:
            path = str(item.journal.path)
            done.pending[path] = done.pending.get(path, 0) + 1
    by_dataset: dict[str, list[_Item]] = {}
    for item in left:
        by_dataset.setdefault(item.record["dataset"], []).append(item)
    for dataset, kept in by_dataset.items():
        reasons = sorted({item.reason or "not tried" for item in kept})
        files = sorted({os.path.relpath(item.journal.path) for item in kept
                        if item.journal is not None})
        lost = sum(item.journal is None for item in kept)
        line = (f"{len(kept)} failing span(s) not yet added to dataset {dataset!r} "
                f"({'; '.join(reasons[:3])})")
        if files:
            line += (f": kept in {', '.join(files)}; `{upload_pending}` (or the "
                     f"next run adding failures to {dataset!r}) adds them")
        if lost:
            line += f"; {lost} of them could not be journaled either and are lost"
        done.lines.append(redact(line))
