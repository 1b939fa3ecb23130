"""The span source: a project's spans (or traces) that lack given evaluations, as cases.

One group per project and target. There is no task: each case carries the span's own output,
and its context is the server's four keys built from the span (``input``: the last user
message's text, else ``input.value``; ``output``: the assistant's text, else ``output.value``;
``reference``: empty unless ``--phoenix-reference`` maps it; ``metadata``: the span's metadata
with its ids, name, kind, model, start time, attributes and the documents that RETRIEVER spans
of the same trace retrieved).

Never twice: the server lists only spans missing an annotation of one of the evaluators'
names (``not annotations['NAME']``, an existence test), and the annotations of each page are
then read to give every span only the evaluators whose annotation it lacks (with
``--phoenix-rejudge``: lacks, or has only from us, unless a person corrected ours: an
annotation of ours whose annotator kind is now HUMAN is never judged again). A span whose
result waits in the local journal (not written yet: Phoenix was down, or the run was killed)
counts as judged: ``pytest --phoenix-upload-pending`` writes it. Spans another run (on this
host or any other) has claimed on the server and not finished are left to it
(:class:`Claims`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..._core.naming import IDENTIFIER, annotation_names
from ..._core.types import Case, Example, Group, GroupKind
from ..._core.window import Window, id_range, in_selection
from ..._evaluators.mapping import MappingError
from ..._evaluators.protocol import Evaluator
from ..._phoenix.http import PhoenixError
from ..._phoenix.traces import Project, SpanRecord, Target, quote_dsl
from .subjects import SubjectSource

DEFAULT_FILTER = "span_kind == 'LLM'"
#: Cases whose contexts are built together as they run (one documents request a page).
CONTEXT_PAGE = 100
#: Spans whose annotations (and claims) are read and written together while listing (the
#: server reads at most 1,000 span ids a request).
LISTING_PAGE = 1000


@dataclass(frozen=True)
class SpanSelection:
    """Which spans become cases (the span options, resolved)."""

    project: str
    condition: str | None = None
    window: Window | None = None
    sample: float | None = None
    max_spans: int | None = None
    target: Target = "span"
    rejudge: bool = False
    reference: str | None = None  # a JSONPath into the span's context, for ``reference``
    shard: tuple[int, int] | None = None  # (K, N): shard K of N, by id (window.id_range)


@dataclass(slots=True)
class SpanCase:
    """A listed span (or trace) and what it still needs."""

    record: SpanRecord
    needs: tuple[str, ...]  # evaluator names
    context: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"record": self.record.to_wire(), "needs": list(self.needs),
                "context": self.context}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SpanCase:
        return cls(SpanRecord.from_wire(data["record"]), tuple(data["needs"]), data["context"])


@dataclass
class Listing:
    """What the listing found: the cases, and what it says about the rest."""

    project: Project
    cases: list[SpanCase] = field(default_factory=list)
    more: bool = False  # spans beyond --phoenix-max-spans wait for a later run
    claimed: int = 0  # left to another run judging them now (its claims on the server)
    judged: int = 0  # listed but every evaluation already there
    waiting: int = 0  # results waiting in the local journal (not judged again)
    corrected: int = 0  # a person's correction of ours (HUMAN): never rejudged
    problems: list[str] = field(default_factory=list)  # journal files that could not be read
    unclaimed: str = ""  # why this run judges without claims (the server refused them)
    unsettled: int = 0  # newer than --phoenix-settle: left for a later run
    settles_at: str = ""  # when the newest of those is old enough (ISO, UTC)

    def to_wire(self) -> dict[str, Any]:
        return {"project": {"id": self.project.id, "name": self.project.name},
                "cases": [c.to_wire() for c in self.cases], "more": self.more,
                "claimed": self.claimed, "judged": self.judged, "waiting": self.waiting,
                "corrected": self.corrected, "problems": self.problems,
                "unclaimed": self.unclaimed, "unsettled": self.unsettled,
                "settles_at": self.settles_at}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Listing:
        return cls(Project(**data["project"]), [SpanCase.from_wire(c) for c in data["cases"]],
                   data["more"], data["claimed"], data["judged"], data.get("waiting", 0),
                   data.get("corrected", 0), list(data.get("problems") or ()),
                   str(data.get("unclaimed") or ""), int(data.get("unsettled") or 0),
                   str(data.get("settles_at") or ""))


def evaluator_names(evaluator: Evaluator) -> list[str]:
    """The annotation names an evaluator writes (its own name when it declares none)."""
    return annotation_names(evaluator.output_configs) or [evaluator.name]


def lacks_condition(names: Sequence[str]) -> str:
    """The server-side test for "misses an annotation of one of these names"."""
    return " or ".join(f"not annotations[{quote_dsl(n)}]" for n in names)


def condition_for(selection: SpanSelection, names: Sequence[str]) -> str:
    """The whole filter the server applies: the user's, roots for traces, the sample, and
    (unless rejudging spans) the missing annotations."""
    parts = [f"({selection.condition or DEFAULT_FILTER})"]
    if selection.target == "trace":
        parts.append("parent_id is None")
    low, high = id_range(selection.sample, selection.shard)
    key = "trace_id" if selection.target == "trace" else "span_id"
    if low is not None:
        parts.append(f"{key} >= {quote_dsl(low)}")
    if high is not None:
        parts.append(f"{key} < {quote_dsl(high)}")
    if selection.target == "span" and not selection.rejudge and names:
        parts.append(f"({lacks_condition(names)})")
    return " and ".join(parts)


# --- the context of a span ------------------------------------------------------------------


def _indexed(value: Any) -> list[Any]:
    """OpenInference lists (``llm.input_messages.0...``) as the server stores them: a list,
    or a dict keyed by index."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        keys = sorted((k for k in value if str(k).isdigit()), key=int)
        return [value[k] for k in keys]
    return []


def _dig(attributes: Mapping[str, Any], *path: str) -> Any:
    value: Any = attributes
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _message_text(message: Any) -> str | None:
    message = message.get("message", message) if isinstance(message, Mapping) else {}
    content = message.get("content")
    if isinstance(content, str) and content:
        return content
    texts = [c.get("message_content", c).get("text") for c in _indexed(message.get("contents"))
             if isinstance(c, Mapping)]
    text = "\n".join(t for t in texts if isinstance(t, str))
    return text or None


def _value(attributes: Mapping[str, Any], key: str) -> Any:
    value = _dig(attributes, key, "value")
    mime = _dig(attributes, key, "mime_type")
    if isinstance(value, str) and mime == "application/json":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def span_input(attributes: Mapping[str, Any]) -> Any:
    """The last user message's text, else ``input.value``."""
    for message in reversed(_indexed(_dig(attributes, "llm", "input_messages"))):
        role = (message.get("message", message) if isinstance(message, Mapping) else {}
                ).get("role")
        if role == "user" and (text := _message_text(message)):
            return text
    return _value(attributes, "input")


def span_output(attributes: Mapping[str, Any]) -> Any:
    """The assistant's text, else ``output.value``."""
    texts = [t for m in _indexed(_dig(attributes, "llm", "output_messages"))
             if (t := _message_text(m))]
    if texts:
        return "\n".join(texts)
    return _value(attributes, "output")


def documents_of(attributes: Mapping[str, Any]) -> list[str]:
    """The contents a RETRIEVER span retrieved."""
    found = []
    for document in _indexed(_dig(attributes, "retrieval", "documents")):
        content = _dig(document, "document", "content") if isinstance(document, Mapping) else None
        if isinstance(content, str):
            found.append(content)
    return found


def output_tool_calls(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tool calls an LLM span's output messages carry (``message.tool_calls``), in order,
    as ``{"name", "arguments"}``."""
    found = []
    for message in _indexed(_dig(attributes, "llm", "output_messages")):
        message = message.get("message", message) if isinstance(message, Mapping) else {}
        for call in _indexed(message.get("tool_calls")):
            call = call.get("tool_call", call) if isinstance(call, Mapping) else {}
            name = _dig(call, "function", "name")
            if isinstance(name, str):
                found.append({"name": name,
                              "arguments": _json(_dig(call, "function", "arguments"))})
    return found


def tool_span_call(record: SpanRecord) -> dict[str, Any]:
    """What a TOOL span called, as ``{"name", "arguments"}``: ``tool.name`` (else the span's
    name) with ``tool_call.function.arguments``, else its ``input.value``."""
    attributes = record.attributes
    name = _dig(attributes, "tool", "name")
    arguments = _dig(attributes, "tool_call", "function", "arguments")
    if arguments is None:
        arguments = _value(attributes, "input")
    return {"name": name if isinstance(name, str) and name else record.name,
            "arguments": _json(arguments)}


def _started(record: SpanRecord) -> Any:

    try:
        return datetime.fromisoformat(record.start_time.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return 0.0


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def span_context(record: SpanRecord, documents: Sequence[str],
                 reference: str | None = None,
                 tool_calls: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The evaluation context of a span, the server's four keys."""
    attributes = record.attributes
    metadata = {**record.metadata, "span_id": record.span_id, "trace_id": record.trace_id,
                "name": record.name, "span_kind": record.span_kind,
                "model": _dig(attributes, "llm", "model_name"),
                "start_time": record.start_time, "attributes": attributes,
                "documents": list(documents),
                # The calls made: a trace's TOOL spans in order, else the span's own output's.
                "tool_calls": list(tool_calls) if tool_calls is not None
                else output_tool_calls(attributes)}
    context = {"input": span_input(attributes), "output": span_output(attributes),
               "reference": "", "metadata": metadata}
    if reference:
        from ..._evaluators.mapping import map_inputs

        values = map_inputs(input_schema={"type": "object", "properties": {"reference": {}}},
                            path_mapping={"reference": reference}, literal_mapping=None,
                            context=context)
        if "reference" not in values:
            raise MappingError(f"--phoenix-reference {reference!r} finds nothing in span "
                               f"{record.span_id}")
        value = values["reference"]
        # Texts (documents) are joined; a list of objects (expected tool calls) stays one.
        context["reference"] = "\n\n".join(map(str, value)) if isinstance(value, list) \
            and all(isinstance(v, str) for v in value) else value
    return context


# --- the source -----------------------------------------------------------------------------


class SpanSource(SubjectSource[SpanSelection, Listing]):
    """A project's spans (or traces) as cases; listed once (on xdist's controller) or given a
    listing."""

    def kind(self) -> GroupKind:
        return "spans" if self.selection.target == "span" else "traces"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index: dict[str, int] = {}  # subject id -> place in the listing
        self._pages: dict[int, Any] = {}  # page -> the future of its contexts
        self._used: set[int] = set()  # pages whose every context was taken

    def _case(self, found: Any, group: Group) -> Case:
        if found.context:
            return span_case(found.record, found.context, group, self.selection.target)
        # Not built yet (:meth:`prepare` builds it as the case starts): the ids, the name.
        record = found.record
        light = {"input": None, "reference": "", "output": None, "metadata": {
            "span_id": record.span_id, "trace_id": record.trace_id, "name": record.name,
            "span_kind": record.span_kind, "start_time": record.start_time}}
        return span_case(record, light, group, self.selection.target)

    # --- listing ----------------------------------------------------------------------------

    def _list(self) -> Listing:
        selection = self.selection
        project = self.project
        evaluators = self.evaluators()
        names = {e.name: evaluator_names(e) for e in evaluators}
        every_name = sorted({n for ns in names.values() for n in ns})
        condition = condition_for(selection, every_name)
        window = selection.window
        listing = Listing(project)
        if self._journaled is not None:
            self._waiting, listing.problems = self._journaled(project)
        limit = selection.max_spans
        page: list[SpanRecord] = []
        # Without their attributes: the listing holds every span it found until the run
        # ends, so it holds only their ids, names and times; a page's attributes are read
        # (and their contexts built) as its cases start, and let go once they have them
        # (memory bounded by the cases in flight, however large the spans: issue 28).
        spans = self.traces.spans(project, condition=condition,
                                  start=window.start if window else None,
                                  end=window.end if window else None, bodies=False)
        for record in spans:
            page.append(record)
            if len(page) >= LISTING_PAGE:
                if self._take(page, names, listing, limit):
                    listing.more = True
                    break
                page = []
        else:
            if page and self._take(page, names, listing, limit):
                listing.more = True
        if window is not None and window.settle > 0:
            self._count_unsettled(condition, window, listing)
        return listing

    def _count_unsettled(self, condition: str, window: Window, listing: Listing) -> None:
        """The spans (traces) the settle left out: those of the same filter that started
        after the window's end (counted by the server), and when the newest of them is old
        enough to be judged."""
        from ..._core.window import parse_time

        count, newest = self.traces.count_since(self.project, condition=condition,
                                                start=window.end)
        listing.unsettled = count
        began = parse_time(newest) if newest else None
        if count and began is not None:
            listing.settles_at = window.ready(began.astimezone(UTC)).isoformat()

    def _take(self, page: list[SpanRecord], names: Mapping[str, list[str]], listing: Listing,
              limit: int | None) -> bool:
        """Add the spans of ``page`` that still need an evaluator; True once the listing is
        full (and some span of the page was left)."""
        target = self.selection.target
        page = [r for r in page if in_selection(subject_of(r, target), self.selection.sample,
                                                self.selection.shard)]
        subjects = [subject_of(r, target) for r in page]
        every_name = sorted({n for ns in names.values() for n in ns})
        # subject -> name -> identifiers of its annotations; ours a person corrected (HUMAN)
        have: dict[str, dict[str, set[str]]] = {}
        corrected: dict[str, set[str]] = {}  # subject -> names
        for row in self.traces.annotations(self.project, target, subjects, every_name):
            subject = str(row.get("trace_id" if target == "trace" else "span_id"))
            identifier = row.get("identifier") or ""
            have.setdefault(subject, {}).setdefault(row["name"], set()).add(identifier)
            if identifier == IDENTIFIER and row.get("annotator_kind") == "HUMAN":
                corrected.setdefault(subject, set()).add(row["name"])
        wanted: list[tuple[SpanRecord, tuple[str, ...]]] = []
        for record, subject in zip(page, subjects, strict=True):
            present = have.get(subject, {})
            fixed = corrected.get(subject, set())
            waiting = self._waiting.get(subject, set())
            due = [name for name, written in names.items()
                   if self._needs(written, present, fixed)]
            needs = tuple(name for name in due
                          if not all(n in waiting for n in names[name]))
            if self.selection.rejudge and any(fixed & set(ns) for ns in names.values()):
                listing.corrected += 1
            if needs:
                wanted.append((record, needs))
            elif len(due) > len(needs):
                listing.waiting += 1
            else:
                listing.judged += 1
        room = None if limit is None else limit - len(listing.cases)
        if room == 0:
            return bool(wanted)
        free = self._claim([subject_of(r, target) for r, _ in wanted], room, listing) \
            if self._claims is not None and wanted and not listing.unclaimed else None
        if free is not None:
            taken = [(r, n) for r, n in wanted if subject_of(r, target) in free]
            # Claimed by another run: those before the last one taken, or all when none was.
            last = wanted.index(taken[-1]) + 1 if taken else len(wanted)
            listing.claimed += last - len(taken)
            left = len(wanted) - last
            wanted = taken
        else:
            left = max(0, len(wanted) - room) if room is not None else 0
            wanted = wanted[:room] if room is not None else wanted
        listing.cases += [SpanCase(record, needs, {}) for record, needs in wanted]
        return left > 0

    def _needs(self, written: Sequence[str], present: Mapping[str, set[str]],
               corrected: AbstractSet[str] = frozenset()) -> bool:
        """Whether an evaluator writing these annotation names is due on a span that has
        ``present`` (name -> identifiers of the annotations it has), ``corrected`` naming
        those of ours a person has corrected (the UI's editor keeps our identifier and makes
        the kind HUMAN)."""
        if self.selection.rejudge:
            # Judged again unless someone else's annotation of the name is there (a human's
            # is never overwritten, nor shadowed by ours), or a person corrected ours.
            return not any(ids - {IDENTIFIER} for name in written
                           if (ids := present.get(name))) and not corrected & set(written)
        return any(name not in present for name in written)

    # --- contexts, built a page at a time as the cases run ---------------------------------

    def cases(self, group: Group | None = None) -> list[Case]:
        cases = super().cases(group)
        if not self._index:
            self._index = {case.example.id: at for at, case in enumerate(cases)}
        return cases

    def output(self, case: Case) -> Any:
        return self._by_key[case.example.id].context.get("output")

    async def prepare(self, case: Case) -> tuple[Case, Any]:
        """On the engine's loop, when a case starts: the case with its span's whole context
        (the example's input, reference and metadata) and its output. The contexts are built
        a page at a time (:data:`CONTEXT_PAGE` cases in listing order: their attributes
        parsed, the documents of their traces read in one request), the next page while this
        one runs, and each is let go once its case has it: memory holds the cases in flight,
        not the backlog. MappingError (``--phoenix-reference`` finds nothing) or PhoenixError
        when it cannot be built: the case errors, and is judged again by the next run."""
        import asyncio

        found: SpanCase = self._by_key[case.example.id]
        if found.context:  # a listing given with its contexts (built, or a test's)
            return self._full(case, found, found.context), found.context["output"]
        page = self._index.get(case.example.id, 0) // CONTEXT_PAGE
        for ahead in (page, page + 1):  # this page, and the next one meanwhile
            if ahead not in self._pages and ahead not in self._used and \
                    ahead * CONTEXT_PAGE < len(self._index):
                self._pages[ahead] = asyncio.ensure_future(asyncio.to_thread(
                    self._page_contexts, ahead))
        key = (case.key[0], case.key[1])
        context = None
        built = self._pages.get(page)
        if built is not None:
            contexts = await built
            context = contexts.pop(key, None)
            if not contexts and self._pages.get(page) is built:
                del self._pages[page]
                self._used.add(page)
        if context is None:  # asked again (a repetition of the case): built alone
            context = (await asyncio.to_thread(self._contexts, [found])).get(key)
        if isinstance(context, Exception):
            raise context
        assert context is not None
        return self._full(case, found, context), context["output"]

    def _full(self, case: Case, found: SpanCase, context: Mapping[str, Any]) -> Case:
        from dataclasses import replace

        full = span_case(found.record, context, case.group, self.selection.target)
        return replace(case, example=full.example)

    def _page_contexts(self, page: int) -> dict[tuple[str, str], Any]:
        cases = self._cases or []
        chunk = cases[page * CONTEXT_PAGE:(page + 1) * CONTEXT_PAGE]
        return self._contexts([self._by_key[c.example.id] for c in chunk])

    def _contexts(self, found: Sequence[SpanCase]) -> dict[tuple[str, str], Any]:
        """The contexts of these listed spans, by (group key, subject); a span whose context
        cannot be built gets the error instead. PhoenixError when the documents cannot be
        read."""
        group = self.group().key
        target = self.selection.target
        trace_ids = [f.record.trace_id for f in found]
        try:
            unread = [f.record.span_id for f in found if f.record.unread]
            read = {r.span_id: r for r in self.traces.spans_among(self.project, "span_id",
                                                                   unread)}
            documents = self._documents(trace_ids)
            tools = self._tool_calls(trace_ids) if target == "trace" else None
        except Exception as exc:  # every case of the page errors so
            return {(group, subject_of(f.record, target)): exc for f in found}
        contexts: dict[tuple[str, str], Any] = {}
        for f in found:
            listed = f.record
            record = read.get(listed.span_id) if listed.unread else listed
            if record is None:
                contexts[(group, subject_of(listed, target))] = PhoenixError(
                    f"span {listed.span_id} ({listed.name!r}) of project "
                    f"{self.project.name!r} was listed but is no longer on the server "
                    f"(deleted since, or its project's data was cleared)")
                continue
            trace_id = record.trace_id
            try:
                contexts[(group, subject_of(record, target))] = span_context(
                    record, documents.get(trace_id, []), self.selection.reference,
                    tools.get(trace_id, []) if tools is not None else None)
            except MappingError as exc:
                contexts[(group, subject_of(record, target))] = exc
        return contexts

    def every_context(self) -> list[dict[str, Any]]:
        """Every listed span's context, built now (``--collect-only``'s estimate)."""
        listed = self.listing().cases
        out: list[dict[str, Any]] = []
        for at in range(0, len(listed), CONTEXT_PAGE):
            chunk = listed[at:at + CONTEXT_PAGE]
            if all(f.context for f in chunk):
                out += [f.context for f in chunk]
                continue
            built = self._contexts(chunk)
            out += [c for c in built.values() if isinstance(c, dict)]
        return out

    def _tool_calls(self, trace_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Per trace, the calls its TOOL spans made, in the order they started."""
        spans: dict[str, list[SpanRecord]] = {}
        for record in self.traces.spans_among(self.project, "trace_id", trace_ids,
                                              "span_kind == 'TOOL'"):
            spans.setdefault(record.trace_id, []).append(record)
        return {trace_id: [tool_span_call(r) for r in sorted(found, key=_started)]
                for trace_id, found in spans.items()}

    def _documents(self, trace_ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for record in self.traces.spans_among(self.project, "trace_id", trace_ids,
                                              "span_kind == 'RETRIEVER'"):
            found.setdefault(record.trace_id, []).extend(documents_of(record.attributes))
        return found


def span_case(record: SpanRecord, context: Mapping[str, Any], group: Group, target: Target
              ) -> Case:
    """The case of a span (or of its trace): its id is the subject's, its node id
    ``<span name>-<subject id>``."""
    subject = subject_of(record, target)
    example = Example(id=subject, input=context["input"], reference=context["reference"],
                      metadata=context["metadata"], dataset_name=group.dataset_name,
                      dataset_id=group.dataset_id, version_id="")
    return Case(example=example, case_id=f"{record.name}-{subject}", group=group)


def subject_of(record: SpanRecord, target: Target) -> str:
    """What a case judges: the span, or (for a trace target) its trace."""
    return record.trace_id if target == "trace" else record.span_id
