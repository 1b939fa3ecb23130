"""The session source (``--phoenix-target=session``): a project's settled sessions that lack
given evaluations, as cases.

A session is the OpenInference ``session.id`` attribute of a trace's spans; Phoenix lists a
project's sessions with their traces in time order (``GET /v1/projects/{p}/sessions``). One
group per project. There is no task: a case's output is the conversation, its turns in time
order, each the root span's input and output of one trace (``[{"input": ..., "output": ...},
...]``); its input is the first turn's input; its metadata the session id, the trace ids, the
number of turns, the first and last times and the token counts.

Settled only: a session whose last trace ended within ``--phoenix-settle`` (or after
``--phoenix-until``) may still grow, and is left for a later run; ``--phoenix-since`` keeps the
sessions that started since (the server applies that one; the settle is compared here).

Never twice, as for spans: the server lists only sessions missing an annotation of one of the
evaluators' names (``not session_annotations['NAME']`` in the session filter language, an
existence test), the annotations of each page are then read to give every session only the
evaluators whose annotation it lacks (with ``--phoenix-rejudge``: lacks, or has only from us,
unless a person corrected ours), a session whose result waits in the local journal counts as
judged, and sessions another run has claimed are left to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..._core.naming import IDENTIFIER
from ..._core.types import Case, Example, Group, GroupKind
from ..._core.window import Window, in_selection
from ..._evaluators.mapping import MappingError
from ..._phoenix.traces import Project, SessionRecord, quote_dsl
from .spans import evaluator_names, span_input, span_output
from .subjects import SubjectSource


@dataclass(frozen=True)
class SessionSelection:
    """Which sessions become cases (the options, resolved)."""

    project: str
    condition: str | None = None  # the session filter language
    window: Window | None = None
    sample: float | None = None
    max_spans: int | None = None
    rejudge: bool = False
    reference: str | None = None
    target: str = "session"
    shard: tuple[int, int] | None = None  # --phoenix-shard=K/N: (K, N)


@dataclass
class SessionCase:
    """A listed session and what it still needs."""

    record: SessionRecord
    needs: tuple[str, ...]
    context: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"record": self.record.to_wire(), "needs": list(self.needs),
                "context": self.context}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SessionCase:
        return cls(SessionRecord.from_wire(data["record"]), tuple(data["needs"]),
                   data["context"])


@dataclass
class SessionListing:
    """What the listing found: the cases, and what it says about the rest."""

    project: Project
    cases: list[SessionCase] = field(default_factory=list)
    more: bool = False
    claimed: int = 0
    judged: int = 0
    waiting: int = 0
    corrected: int = 0
    problems: list[str] = field(default_factory=list)
    unsettled: int = 0  # still growing: a trace within --phoenix-settle
    unclaimed: str = ""  # why this run judges without claims (the server refused them)
    settles_at: str = ""  # when the last of those settles if none grows (ISO, UTC)

    def to_wire(self) -> dict[str, Any]:
        return {"project": {"id": self.project.id, "name": self.project.name},
                "cases": [c.to_wire() for c in self.cases], "more": self.more,
                "claimed": self.claimed, "judged": self.judged, "waiting": self.waiting,
                "corrected": self.corrected, "problems": self.problems,
                "unsettled": self.unsettled, "unclaimed": self.unclaimed,
                "settles_at": self.settles_at, "sessions": True}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SessionListing:
        return cls(Project(**data["project"]), [SessionCase.from_wire(c) for c in data["cases"]],
                   data["more"], data["claimed"], data["judged"], data.get("waiting", 0),
                   data.get("corrected", 0), list(data.get("problems") or ()),
                   data.get("unsettled", 0), str(data.get("unclaimed") or ""),
                   str(data.get("settles_at") or ""))


def lacks_condition(names: Sequence[str]) -> str:
    """The server-side test for "misses a session annotation of one of these names"."""
    return " or ".join(f"not session_annotations[{quote_dsl(n)}]" for n in names)


def session_condition(selection: SessionSelection, names: Sequence[str]) -> str | None:
    """The session filter the server applies: the user's, the start of the window
    (``--phoenix-since``), and (unless rejudging) the missing annotations. The settle is
    compared here (:func:`settled`), so that the listing can say how many sessions wait."""
    parts = [f"({selection.condition})"] if selection.condition else []
    window = selection.window
    if window is not None and window.start is not None:
        parts.append(f"start_time >= {quote_dsl(window.start.isoformat())}")
    if not selection.rejudge and names:
        parts.append(f"({lacks_condition(names)})")
    return " and ".join(parts) or None


def _time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def settled(record: SessionRecord, window: Window | None) -> bool:
    """The session's last trace ended before the window's end (now less the settle)."""
    if window is None:
        return True
    end = _time(record.end_time)
    return end is not None and end < window.end


def started_since(record: SessionRecord, window: Window | None) -> bool:
    """The session started at or after the window's start (``--phoenix-since``)."""
    if window is None or window.start is None:
        return True
    began = _time(record.start_time)
    return began is not None and began >= window.start


def session_context(record: SessionRecord, roots: Mapping[str, Mapping[str, Any]],
                    reference: str | None = None) -> dict[str, Any]:
    """The evaluation context of a session: its turns (root span input and output of each
    trace, in time order) as the output, the first turn's input as the input."""
    turns = []
    for trace_id in record.trace_ids:
        attributes = roots.get(trace_id, {})
        turns.append({"input": span_input(attributes), "output": span_output(attributes)})
    metadata = {"session_id": record.session_id, "trace_ids": list(record.trace_ids),
                "turns": len(turns), "first_time": record.start_time,
                "last_time": record.end_time, "token_count_prompt": record.token_count_prompt,
                "token_count_completion": record.token_count_completion,
                "token_count_total": record.token_count_total}
    context: dict[str, Any] = {"input": turns[0]["input"] if turns else None, "output": turns,
                               "reference": "", "metadata": metadata}
    if reference:
        from ..._evaluators.mapping import map_inputs

        values = map_inputs(input_schema={"type": "object", "properties": {"reference": {}}},
                            path_mapping={"reference": reference}, literal_mapping=None,
                            context=context)
        if "reference" not in values:
            raise MappingError(f"--phoenix-reference {reference!r} finds nothing in session "
                               f"{record.session_id}")
        value = values["reference"]
        context["reference"] = "\n\n".join(map(str, value)) if isinstance(value, list) \
            else value
    return context


def session_case(record: SessionRecord, context: Mapping[str, Any], group: Group) -> Case:
    """The case of a session: its id is the session id, its node id ``session-<id>``."""
    example = Example(id=record.session_id, input=context["input"],
                      reference=context["reference"], metadata=context["metadata"],
                      dataset_name=group.dataset_name, dataset_id=group.dataset_id,
                      version_id="")
    return Case(example=example, case_id=f"session-{record.session_id}", group=group)


class SessionSource(SubjectSource[SessionSelection, SessionListing]):
    """A project's settled sessions as cases; listed once (on xdist's controller) or given a
    listing."""

    def kind(self) -> GroupKind:
        return "sessions"

    def condition(self) -> str | None:
        names = sorted({n for e in self.evaluators() for n in evaluator_names(e)})
        return session_condition(self.selection, names)

    def _case(self, found: Any, group: Group) -> Case:
        return session_case(found.record, found.context, group)

    # --- listing ----------------------------------------------------------------------------

    def _list(self) -> SessionListing:
        selection = self.selection
        project = self.project
        names = {e.name: evaluator_names(e) for e in self.evaluators()}
        listing = SessionListing(project)
        if self._journaled is not None:
            self._waiting, listing.problems = self._journaled(project)
        window = selection.window
        page: list[SessionRecord] = []
        for record in self.traces.sessions(project, condition=self.condition()):
            if not in_selection(record.session_id, selection.sample, selection.shard):
                continue
            if not started_since(record, window):
                continue
            if not settled(record, window):
                listing.unsettled += 1
                ended = _time(record.end_time)
                if window is not None and window.settle > 0 and ended is not None:
                    ready = window.ready(ended.astimezone(UTC)).isoformat()
                    listing.settles_at = max(listing.settles_at, ready)
                continue
            page.append(record)
            if len(page) >= 200:
                if self._take(page, names, listing):
                    listing.more = True
                    break
                page = []
        else:
            if page and self._take(page, names, listing):
                listing.more = True
        self._add_context(listing)
        return listing

    def _take(self, page: list[SessionRecord], names: Mapping[str, list[str]],
              listing: SessionListing) -> bool:
        """Add the sessions of ``page`` that still need an evaluator; True once the listing
        is full (and some session of the page was left)."""
        ids = [r.session_id for r in page]
        every_name = sorted({n for ns in names.values() for n in ns})
        have: dict[str, dict[str, set[str]]] = {}
        corrected: dict[str, set[str]] = {}
        for row in self.traces.annotations(self.project, "session", ids, every_name):
            subject = str(row.get("session_id"))
            identifier = row.get("identifier") or ""
            have.setdefault(subject, {}).setdefault(row["name"], set()).add(identifier)
            if identifier == IDENTIFIER and row.get("annotator_kind") == "HUMAN":
                corrected.setdefault(subject, set()).add(row["name"])
        wanted: list[tuple[SessionRecord, tuple[str, ...]]] = []
        for record in page:
            present = have.get(record.session_id, {})
            fixed = corrected.get(record.session_id, set())
            waiting = self._waiting.get(record.session_id, set())
            due = [name for name, written in names.items()
                   if self._needs(written, present, fixed)]
            needs = tuple(name for name in due if not all(n in waiting for n in names[name]))
            if self.selection.rejudge and any(fixed & set(ns) for ns in names.values()):
                listing.corrected += 1
            if needs:
                wanted.append((record, needs))
            elif len(due) > len(needs):
                listing.waiting += 1
            else:
                listing.judged += 1
        limit = self.selection.max_spans
        room = None if limit is None else limit - len(listing.cases)
        if room == 0:
            return bool(wanted)
        free = self._claim([r.session_id for r, _ in wanted], room, listing) \
            if self._claims is not None and wanted and not listing.unclaimed else None
        if free is not None:
            taken = [(r, n) for r, n in wanted if r.session_id in free]
            last = wanted.index(taken[-1]) + 1 if taken else len(wanted)
            listing.claimed += last - len(taken)
            left = len(wanted) - last
            wanted = taken
        else:
            left = max(0, len(wanted) - room) if room is not None else 0
            wanted = wanted[:room] if room is not None else wanted
        listing.cases += [SessionCase(record, needs, {}) for record, needs in wanted]
        return left > 0

    def _needs(self, written: Sequence[str], present: Mapping[str, set[str]],
               corrected: set[str]) -> bool:
        """As for spans: due unless someone else's annotation of the name is there, or (when
        rejudging) a person corrected ours."""
        if self.selection.rejudge:
            return not any(ids - {IDENTIFIER} for name in written
                           if (ids := present.get(name))) and not corrected & set(written)
        return any(name not in present for name in written)

    def _add_context(self, listing: SessionListing) -> None:
        """Each session's turns: the root span of each of its traces."""
        roots = self.roots([t for c in listing.cases for t in c.record.trace_ids])
        for found in listing.cases:
            found.context = session_context(found.record, roots, self.selection.reference)

    def roots(self, trace_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The root span's attributes of each of these traces (by trace id)."""
        return {record.trace_id: record.attributes
                for record in self.traces.spans_among(self.project, "trace_id", trace_ids,
                                                      "parent_id is None")}
