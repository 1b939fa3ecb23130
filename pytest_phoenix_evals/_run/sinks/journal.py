"""The upload journal: every case result is written here before it is uploaded.

One JSON-lines file per experiment (and per pytest-xdist worker) under
``<rootdir>/.phoenix-evals/journal/``. A ``case`` line holds exactly what will be posted: the
run and its evaluations, already redacted. A ``done`` line follows once the run and every
evaluation are in Phoenix. A file whose cases are all done is deleted at the end of the session;
what is left is uploaded later by ``pytest --phoenix-upload-pending``
(:meth:`ExperimentSink.replay`), which appends ``done`` lines in turn, so a second call
adds nothing.

Posting twice is safe on the server side as well: Phoenix answers 409 (naming the run) for a
run that already exists without an error, which the gateway takes as the run's id, and upserts
evaluations by run and name (``experiment_runs.py``, ``experiment_evaluations.py``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
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

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if self._handle is None:
                ensure_dir(self.path.parent)
                # Kept open for the session (closed in close()): a line per case.
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._handle.write(line)
            self._handle.flush()  # on disk before the upload starts: a crash loses nothing

    def case(self, key: str, experiment: dict[str, Any], run: dict[str, Any],
             evaluations: list[dict[str, Any]]) -> None:
        self._write({"type": "case", "key": key, "experiment": experiment, "run": run,
                     "evaluations": evaluations})
        self.cases += 1

    def mark_done(self, key: str) -> None:
        self._write({"type": "done", "key": key})
        self.done += 1

    def close(self) -> int:
        """Close the file; delete it when every case is done. The cases still pending."""
        with self._lock:
            if self._handle is not None:
                os.fsync(self._handle.fileno())
                self._handle.close()
                self._handle = None
        pending = self.cases - self.done
        if pending == 0 and self.path.exists():
            self.path.unlink()
        return pending


def pending_cases(path: Path) -> Iterator[dict[str, Any]]:
    """The ``case`` records of a journal file without a ``done`` record (a torn last line, from
    a crash while writing, is skipped: its upload never started)."""
    cases: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("type") == "case":
            cases[record["key"]] = record
        elif record.get("type") == "done":
            cases.pop(record["key"], None)
    yield from cases.values()
