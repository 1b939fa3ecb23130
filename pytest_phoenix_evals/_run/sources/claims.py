"""Claims: two runs at once, on one host or on two, never judge the same subject (span,
trace or session). Phoenix 20.26.1 has no lock or lease, so a claim is an annotation of the
subject (see :class:`Claims`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..._core.naming import IDENTIFIER

if TYPE_CHECKING:
    from ..._phoenix.traces import Project, Target, Traces


#: The name of the claim annotations (never an evaluator's: the listing reads only the
#: evaluators' names, so a claim never counts as a result).
CLAIM_NAME = f"{IDENTIFIER}.claim"
#: Seconds a run waits for Phoenix to show the claims it wrote.
CLAIM_WAIT = 30.0


def claim_identifier(run: str) -> str:
    """A run's claims carry an identifier of their own, so that each run's claim of a subject
    is a row of its own (the server upserts on name, subject and identifier)."""
    return f"{CLAIM_NAME}:{run}"


def _when(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row_number(row: Mapping[str, Any]) -> int:
    """The row id inside an annotation's global id (``SpanAnnotation:42``, base64): the order
    in which the server inserted the rows, which breaks ties between equal ``created_at``
    (SQLite keeps whole seconds)."""
    import base64
    import binascii

    try:
        return int(base64.b64decode(str(row.get("id"))).decode().rpartition(":")[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return 0


class Claims:
    """Subjects (spans, traces) this run judges, claimed on the server so that two runs at
    once, on one host or on two, judge each subject once.

    Phoenix 20.26.1 has no lock or lease, so a claim is an annotation named
    :data:`CLAIM_NAME` on the subject, with an identifier of this run's own
    (:func:`claim_identifier`). A run writes its claims of a batch (Phoenix inserts them a
    moment later, in bulk), then reads back every claim of those subjects once its own are
    there: it judges a subject only when its claim is the earliest live one there, by the
    server's order (``created_at``, then the row id: the same order for every reader). A
    claim is live until its ``updated_at`` plus the TTL its run wrote in its metadata,
    measured on the server's clock (against the time the server received this run's own
    claim, written just before: its ``updated_at``). A run deletes its claims when it ends
    (``DELETE /v1/projects/{p}/span_annotations?name=&identifier=&delete_all=true``); one that
    died leaves them to expire, and the next run to meet them deletes them."""

    def __init__(self, traces: Traces, target: Target, *, ttl: float,
                 run: str | None = None) -> None:
        import uuid

        self.traces = traces
        self.target = target
        self.ttl = ttl
        self.run = run or uuid.uuid4().hex
        self.identifier = claim_identifier(self.run)
        self.mine: set[str] = set()
        self._project: Project | None = None
        self._now: datetime | None = None  # the server's time at this run's latest claim
        self._swept: set[str] = set()

    def _row(self, subject: str) -> dict[str, Any]:
        import os
        import socket

        from ..._core.secrets import redact_value

        row = {f"{self.target}_id": subject, "name": CLAIM_NAME, "annotator_kind": "CODE",
               "identifier": self.identifier,
               "result": {"label": "claimed",
                          "explanation": f"pytest-phoenix-evals run {self.run} is judging "
                                         f"this {self.target}; the claim goes when the run "
                                         f"ends"},
               "metadata": {"run": self.run, "host": socket.gethostname(),
                            "pid": os.getpid(), "ttl_seconds": self.ttl}}
        return dict(redact_value(row))

    def _expired(self, row: Mapping[str, Any], now: datetime) -> bool:
        from datetime import timedelta

        metadata = row.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        try:
            ttl = float(metadata.get("ttl_seconds", self.ttl))
            return _when(row.get("updated_at") or row["created_at"]) + \
                timedelta(seconds=ttl) < now
        except (KeyError, TypeError, ValueError):
            return False  # a claim we cannot read holds (never judge twice)

    def _claims_of(self, subjects: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        assert self._project is not None
        found: dict[str, list[dict[str, Any]]] = {}
        for row in self.traces.annotations(self._project, self.target, subjects,
                                           [CLAIM_NAME]):
            found.setdefault(str(row.get(f"{self.target}_id")), []).append(row)
        return found

    def _write(self, subjects: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Write this run's claims of ``subjects`` and read back every claim of them, once
        this run's own are there (at most :data:`CLAIM_WAIT` seconds: a subject whose claim
        never shows, one Phoenix no longer has, is not taken).

        The write is not synchronous: Phoenix answers it at once and inserts the rows a
        moment later in bulk, which costs the server about a quarter of a synchronous
        write (measured: docs/speed.md); a claim counts from when it is readable, as it did
        when written synchronously, so the earliest live claim still wins for every
        reader."""
        import time

        self.traces.post_annotations(self.target, [self._row(s) for s in subjects],
                                     sync=False)
        deadline = time.monotonic() + CLAIM_WAIT
        pause = 0.05
        while True:
            found = self._claims_of(subjects)
            missing = [s for s in subjects if not any(
                r.get("identifier") == self.identifier for r in found.get(s, ()))]
            if not missing or time.monotonic() > deadline:
                return found
            time.sleep(pause)
            pause = min(2 * pause, 1.0)

    def _sweep(self, identifiers: set[str]) -> None:
        """Delete the claims of runs whose claims expired (they died)."""
        assert self._project is not None
        for identifier in sorted(identifiers - self._swept):
            self._swept.add(identifier)
            self.traces.delete_annotations(self._project, self.target, CLAIM_NAME, identifier)

    def take(self, project: Project, ids: Sequence[str], at_most: int | None = None
             ) -> set[str]:
        """Claim (in order, at most ``at_most``) those of ``ids`` no other live run holds;
        the ones this run won. PhoenixError when the server cannot be asked."""
        self._project = project
        taken: set[str] = set()
        candidates = list(dict.fromkeys(ids))
        while candidates and (at_most is None or len(taken) < at_most):
            if self._now is not None:  # skip what another run holds, by the server's clock
                held = self._claims_of(candidates)
                candidates = [s for s in candidates if not any(
                    r.get("identifier") != self.identifier and not self._expired(r, self._now)
                    for r in held.get(s, ()))]
            room = len(candidates) if at_most is None else at_most - len(taken)
            batch, candidates = candidates[:room], candidates[room:]
            if not batch:
                break
            dead: set[str] = set()
            for subject, rows in self._write(batch).items():
                own = next((r for r in rows if r.get("identifier") == self.identifier), None)
                if own is None:
                    continue
                # The server's clock when it took this claim: the write's time, which it
                # keeps as updated_at (it inserts the row a moment later, in bulk).
                now = _when(own.get("updated_at") or own["created_at"])
                self._now = max(self._now, now) if self._now else now
                live = []
                for row in rows:
                    if row is own or not self._expired(row, now):
                        live.append(row)
                    elif row.get("identifier"):
                        dead.add(str(row["identifier"]))
                first = min(live, key=lambda r: (_when(r["created_at"]), _row_number(r)))
                if first is own:
                    taken.add(subject)
            self._sweep(dead - {self.identifier})
        self.mine |= taken
        return taken

    def release(self) -> str | None:
        """Delete this run's claims; why not, when they could not be (they expire)."""
        from ..._phoenix.http import PhoenixError

        if self._project is None:
            return None
        try:
            self.traces.delete_annotations(self._project, self.target, CLAIM_NAME,
                                           self.identifier)
        except PhoenixError as exc:
            return (f"the claims of this run could not be released ({exc}): other runs leave "
                    f"those {self.target}s until the claims expire "
                    f"(--phoenix-claim-ttl={self.ttl:g}s)")
        finally:
            self.mine = set()
        return None
