"""The upload journal: every case result is written here before it is uploaded.

One JSON-lines file per experiment (and per pytest-xdist worker) under
``<rootdir>/.phoenix-evals/journal/``. A ``case`` line holds exactly what will be posted: the
run and its evaluations, already redacted; an ``annotations`` line (in ``annotations-*``
files, of a project's spans) the span or trace annotation rows; a ``failure`` line (in
``failures-*`` files) a failing span to add to a dataset. A ``done`` line follows once the
run and every evaluation (or every annotation row) is in Phoenix. A file whose cases are all
done is deleted at the end of the session; what is left is uploaded later by
``pytest --phoenix-upload-pending`` (:meth:`ExperimentSink.replay`, ``span_annotations.replay``),
which appends ``done`` lines in turn, so a second call
adds nothing.

Posting twice is safe on the server side as well: Phoenix answers 409 (naming the run) for a
run that already exists without an error, which the gateway takes as the run's id, and upserts
evaluations by run and name (``experiment_runs.py``, ``experiment_evaluations.py``).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC
from pathlib import Path
from typing import Any

from ..._local import ensure_dir, local_path


def journal_dir(rootpath: Path) -> Path:
    return local_path(rootpath, "journal")


class Journal:
    """Append-only, thread-safe (cases are written from the engine's thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._handle: Any = None
        self.cases = 0
        self.done = 0

    def claim(self) -> bool:
        """Open the file and lock it for this process (a session writing it, or an
        --phoenix-upload-pending working on it); False when another process holds it."""
        import fcntl

        with self._lock:
            if self._handle is not None:
                return True
            ensure_dir(self.path.parent)
            # Kept open while in use (closed in close()): a line per case.
            handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._handle = handle
            return True

    def _write(self, record: dict[str, Any]) -> None:
        """One line, flushed (OSError when the disk refuses it, or the file is another
        process's)."""
        # ASCII escapes: any text can be written, whatever the locale's encoding.
        line = json.dumps(record, ensure_ascii=True, default=str) + "\n"
        if self._handle is None and not self.claim():
            raise OSError(f"{self.path} is in use by another process")
        with self._lock:
            assert self._handle is not None
            self._handle.write(line)
            self._handle.flush()  # on disk before the upload starts: a crash loses nothing

    def case(self, key: str, experiment: dict[str, Any], run: dict[str, Any],
             evaluations: list[dict[str, Any]]) -> None:
        self._write({"type": "case", "key": key, "experiment": experiment, "run": run,
                     "evaluations": evaluations})
        self.cases += 1

    def annotations(self, key: str, target: str, project: dict[str, Any],
                    rows: list[dict[str, Any]]) -> None:
        """A case of a span source: the annotation rows to write (span_annotations.py), and
        when they were journaled (upload-pending never writes them over newer ones)."""
        from datetime import datetime

        self._write({"type": "annotations", "key": key, "target": target, "project": project,
                     "rows": rows, "at": datetime.now(UTC).isoformat()})
        self.cases += 1

    def failure(self, key: str, record: dict[str, Any]) -> None:
        """A failing span to add to a dataset (in ``failures-*`` files; _modes/failures.py)."""
        self._write({**record, "type": "failure", "key": key})
        self.cases += 1

    def mark_done(self, key: str) -> None:
        self._write({"type": "done", "key": key})
        self.done += 1

    def close(self, delete: bool = True) -> int:
        """Close the file; delete it when every case is done (and ``delete``). The cases
        still pending (OSError when the file could not be flushed: a full disk)."""
        with self._lock:
            handle, self._handle = self._handle, None
            try:
                if handle is not None:
                    os.fsync(handle.fileno())
                pending = self.cases - self.done
                # Deleted while still locked: nobody else can be adding to it meanwhile.
                if pending == 0 and delete and self.path.is_file():
                    self.path.unlink()
            finally:
                if handle is not None:
                    handle.close()
        return pending


def read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The pending ``case`` records of a journal file, and how many of its lines could not be
    read (not UTF-8, not JSON, not a record of ours): those are skipped, the rest still count.
    A torn last line (no newline: a crash while writing it) is skipped silently, as its upload
    never started. OSError when the file itself cannot be read (a folder named like one)."""
    cases: dict[str, dict[str, Any]] = {}
    bad = 0
    lines = path.read_bytes().split(b"\n")
    for raw in lines[:-1]:  # the last piece is empty, or a torn line
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError
            bad += 1
            continue
        if not _is_record(record):
            bad += 1
        elif record["type"] in ("case", "annotations", "failure"):
            cases[record["key"]] = record
        else:
            cases.pop(record["key"], None)
    return list(cases.values()), bad


def journaled_names(directory: Path, target: str, project_id: str, server_id: str,
                    same_url: Any) -> tuple[dict[str, set[str]], list[str]]:
    """The annotations waiting in this folder's journal files for one project and target of
    one server: subject (span or trace) id -> annotation names; and what could not be read.
    A record counts when it names this server's identity, or (an older record naming none)
    when ``same_url(its server)`` says its URL is this server's."""
    from ..._local import safe_name

    found: dict[str, set[str]] = {}
    problems: list[str] = []
    key = f"{target}_id"
    if not directory.is_dir():
        return found, problems
    for path in sorted(directory.glob(f"annotations-{target}-{safe_name(project_id)}*.jsonl")):
        try:
            records, _ = read_journal(path)
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc})")
            continue
        for record in records:
            where = record.get("project") or {}
            if record.get("type") != "annotations" or record.get("target") != target or \
                    where.get("id") != project_id:
                continue
            mine = where["server_id"] == server_id if where.get("server_id") else \
                bool(same_url(str(where.get("server") or "")))
            if not mine:
                continue
            for row in record["rows"]:
                if isinstance(row, dict) and row.get(key) and row.get("name"):
                    found.setdefault(str(row[key]), set()).add(str(row["name"]))
    return found, problems


def _is_record(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        return False
    if record.get("type") == "done":
        return True
    if record.get("type") == "failure":
        return all(isinstance(record.get(k), str) for k in ("dataset", "span_id", "example_id"))
    if record.get("type") == "annotations":
        return (record.get("target") in ("span", "trace", "session")
                and isinstance(record.get("rows"), list)
                and isinstance(record.get("project"), dict)
                and isinstance(record["project"].get("id"), str))
    experiment = record.get("experiment")
    if not isinstance(experiment, dict):
        return False
    placed = isinstance(experiment.get("id"), str) or (
        experiment.get("id") is None and isinstance(experiment.get("intent"), dict)
        and all(isinstance(experiment["intent"].get(k), str)
                for k in ("token", "dataset_id", "version_id", "name")))
    return (record.get("type") == "case" and placed and isinstance(record.get("run"), dict)
            and isinstance(record.get("evaluations"), list))


def claimed_records(path: Path, problems: list[str]
                    ) -> tuple[Journal, list[dict[str, Any]], int] | None:
    """For a replay (--phoenix-upload-pending): the journal file, locked for this process, and
    its pending records; None, with the reason in ``problems``, when another process holds it
    (a session still writing it, or another upload-pending) or it cannot be read (one file
    never blocks the others). Lines that are not records are skipped, said there and counted
    (the third value: a file holding such lines is kept, not deleted, once replayed)."""
    journal = Journal(path)
    try:
        if not journal.claim():
            problems.append(f"{path}: in use by another process (a session still running?): "
                            f"left alone")
            return None
        records, unreadable = read_journal(path)
    except OSError as exc:
        journal.close(delete=False)
        problems.append(f"{path}: cannot be read ({exc}); skipped")
        return None
    if unreadable:
        problems.append(f"{path}: {unreadable} line(s) that are not journal records were "
                        f"skipped")
    return journal, records, unreadable
