"""The gateway's span half: projects, their spans, span and trace annotations, and datasets
grown from spans.

Every request goes through the :class:`~.gateway.Gateway` it wraps (its client, headers, retry
policy and messages), so that there is still one place that speaks to Phoenix. The server facts
behind each method are in ``phoenix-notes.md`` ("Spans and span annotations"):

* spans are listed with GraphQL ``Project.spans`` (cursor paging, at most 1,000 a page, the
  filter DSL, a time range on the start time, sorted oldest first); the REST span list has no
  DSL and ``POST /v1/spans`` no cursor;
* a filter is checked first with ``Project.validateSpanFilterCondition``;
* annotations are read with ``GET /v1/projects/{p}/span_annotations`` (or
  ``trace_annotations``), at most 1,000 ids a request, and written with
  ``POST /v1/span_annotations?sync=true`` (all or nothing: one unknown span answers 404);
* failing spans are appended to a dataset with ``POST /v1/datasets/upload?sync=true``
  (``action: append`` creates the dataset when missing; ``example_ids`` make a repeat add
  nothing, ``span_ids`` link each example to its span).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from .gateway import Gateway
from .http import PhoenixError, raise_for_retryable

#: Span (or trace) ids the server takes in one annotation read.
IDS_PER_READ = 1000
#: Spans in one page of ``Project.spans`` (the server's maximum).
SPANS_PER_PAGE = 1000
#: Ids in one span filter of :meth:`Traces.spans_among` (``trace_id in [...]``): the filter is
#: text the server parses, kept short.
IDS_PER_FILTER = 100

Target = Literal["span", "trace", "session"]
#: Sessions listed in one page of ``GET /v1/projects/{p}/sessions`` (each with its traces).
SESSIONS_PER_PAGE = 100

_SPANS_QUERY = """
query($id: ID!, $first: Int!, $after: String, $timeRange: TimeRange, $filter: String) {
  node(id: $id) { ... on Project {
    spans(first: $first, after: $after, timeRange: $timeRange, filterCondition: $filter,
          sort: {col: startTime, dir: asc}) {
      pageInfo { hasNextPage endCursor }
      edges { node { id name spanKind startTime parentId statusCode
                     context { spanId traceId } %s } } } } } }
"""
# How many spans match, and the newest of them (the spans a settle leaves for a later run).
_NEWER_SPANS = """
query($id: ID!, $timeRange: TimeRange, $filter: String) {
  node(id: $id) { ... on Project {
    recordCount(timeRange: $timeRange, filterCondition: $filter)
    spans(first: 1, timeRange: $timeRange, filterCondition: $filter,
          sort: {col: startTime, dir: desc}) { edges { node { startTime } } } } } }
"""
_VALIDATE_SESSIONS = """
query($id: ID!, $condition: String!) { node(id: $id) { ... on Project {
  validateSessionFilterCondition(condition: $condition) { isValid errorMessage } } } }
"""
_VALIDATE = """
query($id: ID!, $condition: String!) { node(id: $id) { ... on Project {
  validateSpanFilterCondition(condition: $condition) { isValid errorMessage } } } }
"""
# The server's identity: when its database was made, as the creation time of the project
# ``default`` (made by the first migration, and never deletable: projects.py and
# project_mutations.py refuse). Phoenix 20.26.1 offers nothing else that is the same for one
# server whatever URL reaches it and differs between servers (``/arize_phoenix_version`` is
# the release).
_IDENTITY = """query { getProjectByName(name: "default") { createdAt } }"""
_PROJECT_CREATED = """
query($id: ID!) { node(id: $id) { ... on Project { name createdAt } } }
"""
# Phoenix's own 404 for an annotation of a span (trace) it does not have: plain text, from
# ``annotate_spans`` / ``annotate_traces`` (routers/v1/spans.py, traces.py).
_UNKNOWN = re.compile(r"(Spans|Traces|Sessions) with IDs (.+) do not exist\.")
# One aliased ``getSpanByOtelId`` per span (the schema has no plural): a span deleted
# meanwhile answers null for its alias alone, where ``node(id:)`` fails the whole query.
_EXAMPLE_REVISION = """s{n}: getSpanByOtelId(spanId: $id{n}) {{
  asExampleRevision {{ input output metadata }} }}"""
#: Spans read in one ``asExampleRevision`` query.
REVISIONS_PER_READ = 100


@dataclass(frozen=True)
class Project:
    id: str  # the GraphQL global id
    name: str


#: The attributes and metadata of a span listed without them (read-only: shared).
_UNREAD: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span as listed: what a case is built from."""

    node_id: str  # the GraphQL global id (for asExampleRevision)
    span_id: str
    trace_id: str
    name: str
    span_kind: str
    start_time: str
    parent_id: str | None
    status_code: str
    attributes: Mapping[str, Any]
    metadata: Mapping[str, Any]
    # Listed without its attributes and metadata (``Traces.spans(bodies=False)``): its ids,
    # name and times only; ``Traces.spans_among`` reads the rest when it is needed.
    unread: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {**_fields_of(self), "attributes": dict(self.attributes),
                "metadata": dict(self.metadata)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SpanRecord:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session as listed (``GET /v1/projects/{p}/sessions``): its traces in time order."""

    node_id: str  # the GraphQL global id
    session_id: str  # the app's ``session.id``
    start_time: str
    end_time: str
    trace_ids: tuple[str, ...]  # in start-time order, as the server gives them
    token_count_prompt: int = 0
    token_count_completion: int = 0
    token_count_total: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {**_fields_of(self), "trace_ids": list(self.trace_ids)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SessionRecord:
        return cls(**{**data, "trace_ids": tuple(data["trace_ids"])})


@dataclass
class Revisions:
    """Spans read as dataset examples (:meth:`Traces.example_revisions`)."""

    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # by span id
    gone: set[str] = field(default_factory=set)  # span ids Phoenix no longer has
    refused: dict[str, str] = field(default_factory=dict)  # span id -> the server's reason


def _fields_of(record: Any) -> dict[str, Any]:
    """A slotted dataclass's fields by name, shallow (``dataclasses.asdict`` copies every
    nested dict: a span's attributes)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _loads(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {"value": text}
    return value if isinstance(value, dict) else {"value": value}


class UnknownSubjects(PhoenixError):
    """Phoenix's own answer that some spans (traces) of an annotation write do not exist
    (nothing of the write was stored). Only that plain-text answer of the server: a 404 of a
    proxy or an ingress is a plain PhoenixError."""

    def __init__(self, message: str, ids: set[str], *, body: str) -> None:
        super().__init__(message, status=404, body=body)
        self.ids = ids


def unknown_subjects(response: httpx.Response) -> set[str] | None:
    """The span (trace) ids Phoenix's 404 to an annotation write names; None when the answer
    is not that one (another 404: a proxy, an ingress during a deploy, a login page)."""
    if response.status_code != 404 or \
            not response.headers.get("content-type", "").startswith("text/plain"):
        return None
    found = _UNKNOWN.fullmatch(response.text.strip())
    if found is None:
        return None
    ids = {part.strip() for part in found.group(2).split(",")}
    if found.group(1) == "Sessions":  # the app's own ids, any text (read back before use)
        return ids if all(ids) else None
    return ids if all(re.fullmatch(r"[0-9a-fA-F]+", i) for i in ids) else None


def normalised_url(url: str) -> str:
    """A server's URL as one key: scheme, host and port in lower case, a loopback host
    (``localhost``, ``127.0.0.1``, ``::1``) as one name, the default port written out, no
    credentials and no trailing slash."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower()
    if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        host = "loopback"
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def quote_dsl(text: str) -> str:
    """A string literal of the filter DSL (Python syntax)."""
    return repr(str(text))


class Traces:
    """Reads at collection time (pytest's thread); ``a*`` methods on the engine's loop."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._identity: str | None = None

    def where(self) -> str:
        return self.gateway.where()

    def project_url(self, project: Project) -> str:
        from .http import mask_url

        return f"{mask_url(self.gateway.url)}/projects/{project.id}"

    # --- projects and spans -----------------------------------------------------------------

    def project(self, identifier: str) -> Project:
        """A project by name or id; PhoenixError naming the projects there are otherwise."""
        doing = f"loading project {identifier!r}"
        gateway = self.gateway
        response = gateway._get(f"v1/projects/{quote(identifier, safe='')}", None, doing,
                                read=False)
        if response.status_code == 404:
            names = self.project_names()
            shown = ", ".join(sorted(names)[:20]) or "none"
            raise PhoenixError(f"{self.where()} has no project {identifier!r}; its projects: "
                               f"{shown}", status=404)
        gateway._raise_for_status(response, doing)
        data = gateway._json(response, doing, "data")["data"]
        return Project(id=str(data["id"]), name=str(data["name"]))

    def server_identity(self) -> str:
        """What this server is, whatever URL reaches it: ``phoenix:<when its database was
        made>``; the normalised URL (loopback names folded) when the server does not say.
        PhoenixError when it cannot be reached."""
        if self._identity is None:
            data = self.gateway._graphql(_IDENTITY, {}, "asking the server what it is",
                                         read=False)
            created = (data.get("getProjectByName") or {}).get("createdAt")
            self._identity = f"phoenix:{created}" if created else \
                f"url:{normalised_url(self.gateway.url)}"
        return self._identity

    def project_created(self, project: Project) -> str | None:
        """When this project (found on this server) was made."""
        data = self.gateway._graphql(_PROJECT_CREATED, {"id": project.id},
                                     f"reading project {project.name!r}", read=False)
        created = (data.get("node") or {}).get("createdAt")
        return str(created) if created else None

    def project_names(self) -> list[str]:
        return [p["name"] for p in self.gateway.pages("v1/projects", "listing projects",
                                                      read=False)]

    def filter_problem(self, project: Project, condition: str) -> str | None:
        """Why the server refuses a span filter (None when it takes it)."""
        data = self.gateway._graphql(_VALIDATE, {"id": project.id, "condition": condition},
                                     f"checking the span filter {condition!r}", read=False)
        answer = (data.get("node") or {}).get("validateSpanFilterCondition") or {}
        if answer.get("isValid"):
            return None
        return str(answer.get("errorMessage") or "the server gave no reason")

    def spans(self, project: Project, *, condition: str | None, start: datetime | None,
              end: datetime | None, bodies: bool = True) -> Iterator[SpanRecord]:
        """The project's spans matching ``condition`` that started in [start, end), oldest
        first, page by page (the caller stops when it has enough). ``bodies=False`` does not
        ask for their attributes and metadata (``unread`` records: :meth:`spans_among` reads
        them)."""
        query = _SPANS_QUERY % ("attributes metadata" if bodies else "")
        time_range = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v}
        after = None
        doing = f"listing the spans of project {project.name!r}"
        while True:
            variables: dict[str, Any] = {"id": project.id, "first": SPANS_PER_PAGE,
                                         "after": after, "filter": condition or None,
                                         "timeRange": time_range or None}
            data = self.gateway._graphql(query, variables, doing, read=False)
            page = (data.get("node") or {}).get("spans")
            if page is None:
                raise PhoenixError(f"{self.where()} gave no spans for project "
                                   f"{project.name!r} while {doing}")
            for edge in page["edges"]:
                node = edge["node"]
                # The listing keeps every span to the end of the run: the strings many spans
                # share (name, kind, status) are one string each, and an unread span shares
                # one empty mapping for its attributes and metadata.
                yield SpanRecord(
                    node_id=node["id"], span_id=node["context"]["spanId"],
                    trace_id=node["context"]["traceId"], name=sys.intern(str(node["name"])),
                    span_kind=sys.intern(str(node["spanKind"]).upper()),
                    start_time=node["startTime"], parent_id=node.get("parentId"),
                    status_code=sys.intern(str(node.get("statusCode"))),
                    attributes=_loads(node.get("attributes")) if bodies else _UNREAD,
                    metadata=_loads(node.get("metadata")) if bodies else _UNREAD,
                    unread=not bodies)
            if not page["pageInfo"]["hasNextPage"]:
                return
            after = page["pageInfo"]["endCursor"]

    def spans_among(self, project: Project, key: str, values: Sequence[str],
                    where: str | None = None) -> Iterator[SpanRecord]:
        """The project's spans, whole, whose ``key`` (``span_id``, ``trace_id``) is one of
        ``values`` (and that match ``where``), :data:`IDS_PER_FILTER` values to a query; the
        values the server has no span for are left out."""
        unique = list(dict.fromkeys(values))
        for at in range(0, len(unique), IDS_PER_FILTER):
            chunk = unique[at:at + IDS_PER_FILTER]
            condition = f"{key} in [{', '.join(quote_dsl(v) for v in chunk)}]"
            if where:
                condition = f"{where} and {condition}"
            yield from self.spans(project, condition=condition, start=None, end=None)

    def count_since(self, project: Project, *, condition: str | None, start: datetime
                    ) -> tuple[int, str | None]:
        """How many of the project's spans matching ``condition`` started at ``start`` or
        later, and the start time of the newest (None when there is none); counted by the
        server, no span read."""
        variables = {"id": project.id, "filter": condition or None,
                     "timeRange": {"start": start.isoformat()}}
        data = self.gateway._graphql(_NEWER_SPANS, variables,
                                     f"counting the newest spans of project {project.name!r}",
                                     read=False)
        node = data.get("node") or {}
        edges = (node.get("spans") or {}).get("edges") or []
        newest = str(edges[0]["node"]["startTime"]) if edges else None
        return int(node.get("recordCount") or 0), newest

    # --- sessions ---------------------------------------------------------------------------

    def session_filter_problem(self, project: Project, condition: str) -> str | None:
        """Why the server refuses a session filter (None when it takes it)."""
        data = self.gateway._graphql(_VALIDATE_SESSIONS,
                                     {"id": project.id, "condition": condition},
                                     f"checking the session filter {condition!r}", read=False)
        answer = (data.get("node") or {}).get("validateSessionFilterCondition") or {}
        if answer.get("isValid"):
            return None
        return str(answer.get("errorMessage") or "the server gave no reason")

    def sessions(self, project: Project, *, condition: str | None
                 ) -> Iterator[SessionRecord]:
        """The project's sessions matching ``condition`` (the session filter language), in
        the order Phoenix made them, page by page (the caller stops when it has enough)."""
        path = f"v1/projects/{quote(project.id, safe='')}/sessions"
        doing = f"listing the sessions of project {project.name!r}"
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": SESSIONS_PER_PAGE, "order": "asc"}
            if condition:
                params["filter"] = condition
            if cursor:
                params["cursor"] = cursor
            response = self.gateway._get(path, params, doing, read=False)
            self.gateway._raise_for_status(response, doing)
            body = self.gateway._json(response, doing, "data")
            for item in body["data"]:
                yield SessionRecord(
                    node_id=str(item["id"]), session_id=str(item["session_id"]),
                    start_time=str(item["start_time"]), end_time=str(item["end_time"]),
                    trace_ids=tuple(str(t["trace_id"]) for t in item.get("traces") or ()),
                    token_count_prompt=int(item.get("token_count_prompt") or 0),
                    token_count_completion=int(item.get("token_count_completion") or 0),
                    token_count_total=int(item.get("token_count_total") or 0))
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def session_project(self, session_id: str) -> str | None:
        """The id of the project holding this session (None: Phoenix has no such session)."""
        doing = f"reading session {session_id!r}"
        response = self.gateway._get(f"v1/sessions/{quote(session_id, safe='')}", None, doing,
                                     read=False)
        if response.status_code == 404 and "not found" in response.text:
            return None
        self.gateway._raise_for_status(response, doing)
        return str(self.gateway._json(response, doing, "data")["data"]["project_id"])

    # --- annotations ------------------------------------------------------------------------

    def annotations(self, project: Project, target: Target, ids: Sequence[str],
                    names: Sequence[str], *, identifier: str | None = None
                    ) -> list[dict[str, Any]]:
        """The annotations of these spans (or traces) with these names (only those with
        ``identifier`` when given): the server's rows, ``span_id``/``trace_id`` included."""
        rows: list[dict[str, Any]] = []
        what = target
        path = f"v1/projects/{quote(project.id, safe='')}/{what}_annotations"
        doing = f"reading the {what} annotations of project {project.name!r}"
        unique = list(dict.fromkeys(ids))
        for at in range(0, len(unique), IDS_PER_READ):
            chunk = unique[at:at + IDS_PER_READ]
            cursor = None
            while True:
                params: list[tuple[str, str | int]] = [(f"{what}_ids", i) for i in chunk]
                params += [("include_annotation_names", n) for n in names]
                if identifier:
                    params.append(("identifier", identifier))
                params.append(("limit", 1000))
                if cursor:
                    params.append(("cursor", cursor))
                response = self.gateway._get(path, params, doing, read=False)
                if response.status_code == 404 and "exist" in response.text:
                    break  # none of these spans exist (any more): none has annotations
                self.gateway._raise_for_status(response, doing)
                body = self.gateway._json(response, doing, "data")
                rows += body["data"]
                cursor = body.get("next_cursor")
                if not cursor:
                    break
        return rows

    async def apost_annotations(self, target: Target, rows: Sequence[Mapping[str, Any]]
                                ) -> None:
        """Write annotations synchronously (upserted on name, span and identifier).
        Phoenix's own 404 naming spans (traces) it does not have (all or nothing: nothing was
        written) is :class:`UnknownSubjects`; any other failure, a foreign 404 included, a
        PhoenixError."""
        what = target
        doing = f"writing {len(rows)} {what} annotation(s)"
        http = self.gateway._async()

        async def post() -> None:
            response = raise_for_retryable(await http.post(
                f"v1/{what}_annotations", params={"sync": "true"},
                json={"data": [dict(r) for r in rows]},
                extensions=self.gateway._extensions(doing)))
            if (unknown := unknown_subjects(response)) is not None:
                raise UnknownSubjects(f"{self.where()} has no {what}(s) "
                                      f"{', '.join(sorted(unknown))} while {doing}", unknown,
                                      body=response.text[:500])
            response.raise_for_status()
            self.gateway._json(response, doing, "data")

        await self.gateway.acall(doing, post)

    def post_annotations(self, target: str, rows: Sequence[Mapping[str, Any]], *,
                         sync: bool = True) -> None:
        """:meth:`apost_annotations` from pytest's thread (the claims, written while listing):
        synchronous, all or nothing; :class:`UnknownSubjects` for Phoenix's own 404 naming
        subjects it does not have. ``sync=False``: the server answers at once and inserts
        the rows a moment later, in bulk (about a quarter of the server's time a row); rows
        of subjects it does not have are dropped silently, so the caller reads them back."""
        doing = f"writing {len(rows)} {target} annotation(s)"
        gateway = self.gateway

        def post() -> httpx.Response:
            return raise_for_retryable(gateway._http.post(
                f"v1/{target}_annotations", params={"sync": "true"} if sync else {},
                json={"data": [dict(r) for r in rows]}, extensions=gateway._extensions(doing)))

        response = gateway.call(doing, post)
        if (unknown := unknown_subjects(response)) is not None:
            raise UnknownSubjects(f"{self.where()} has no {target}(s) "
                                  f"{', '.join(sorted(unknown))} while {doing}", unknown,
                                  body=response.text[:500])
        gateway._raise_for_status(response, doing)

    def delete_annotations(self, project: Project, target: str, name: str,
                           identifier: str) -> None:
        """Delete every annotation of this name and identifier in the project (Phoenix's
        ``DELETE /v1/projects/{p}/{target}_annotations``, 204 also when none matched;
        ``delete_all=true`` waives its time-range bound, the name and identifier narrow it).
        With auth on, a non-admin key deletes only the rows it wrote."""
        doing = f"deleting the {target} annotations {name!r} of {identifier!r}"
        gateway = self.gateway
        path = f"v1/projects/{quote(project.id, safe='')}/{target}_annotations"

        def delete() -> httpx.Response:
            return raise_for_retryable(gateway._http.delete(
                path, params={"name": name, "identifier": identifier, "delete_all": "true"},
                extensions=gateway._extensions(doing)))

        response = gateway.call(doing, delete)
        gateway._raise_for_status(response, doing)

    # --- datasets from spans ----------------------------------------------------------------

    def example_revisions(self, span_ids: Sequence[str]) -> Revisions:
        """The example the server itself would make of each span (``Span.asExampleRevision``),
        by span id; the spans Phoenix no longer has, and those it could not make an example of
        (with why), apart. PhoenixError when a read fails as a whole."""
        found = Revisions()
        unique = list(dict.fromkeys(span_ids))
        doing = "reading spans as dataset examples"
        gateway = self.gateway
        for at in range(0, len(unique), REVISIONS_PER_READ):
            chunk = unique[at:at + REVISIONS_PER_READ]
            query = ("query(" + ", ".join(f"$id{n}: String!" for n in range(len(chunk)))
                     + ") { " + " ".join(_EXAMPLE_REVISION.format(n=n)
                                         for n in range(len(chunk))) + " }")
            variables = {f"id{n}": i for n, i in enumerate(chunk)}

            def post(query: str = query, variables: dict[str, Any] = variables
                     ) -> dict[str, Any]:
                response = gateway._http.post("graphql", json={"query": query,
                                                               "variables": variables},
                                              extensions=gateway._extensions(doing))
                response.raise_for_status()
                return gateway._graphql_answer(response, doing)

            # Read by hand, not through ``_graphql``: an error on one alias (one span the
            # server cannot make an example of) must not cost the others theirs.
            payload = gateway.call(doing, post)
            refused: dict[str, str] = {}
            for error in payload.get("errors") or ():
                error = error if isinstance(error, dict) else {"message": str(error)}
                path = error.get("path") or [None]
                alias = path[0] if isinstance(path[0], str) else None
                message = str(error.get("message", error))
                if alias is None or not alias.startswith("s") or not alias[1:].isdigit() \
                        or int(alias[1:]) >= len(chunk):
                    raise PhoenixError(f"{self.where()} rejected the query while {doing}: "
                                       f"{message}")
                refused[chunk[int(alias[1:])]] = message
            data = payload.get("data") or {}
            for n, span_id in enumerate(chunk):
                if span_id in refused:
                    found.refused[span_id] = refused[span_id]
                    continue
                node = data.get(f"s{n}")
                revision = node.get("asExampleRevision") if isinstance(node, dict) else None
                if node is None:
                    found.gone.add(span_id)
                elif revision is None:
                    found.refused[span_id] = "the server made no example of it"
                else:
                    found.examples[span_id] = {key: _loads(revision.get(key))
                                               for key in ("input", "output", "metadata")}
        return found

    def example_ids(self, dataset: str) -> set[str] | None:
        """The example ids of a dataset's latest version (None: no such dataset)."""
        names = self.gateway.dataset_names()
        dataset_id = names.get(dataset)
        if dataset_id is None:
            return None
        ids: set[str] = set()
        doing = f"listing the examples of dataset {dataset!r}"
        response = self.gateway._get(f"v1/datasets/{quote(dataset_id)}/examples", None, doing,
                                     read=False)
        self.gateway._raise_for_status(response, doing)
        body = self.gateway._json(response, doing, "data")
        ids.update(str(e["id"]) for e in body["data"].get("examples") or ())
        return ids

    def append_examples(self, dataset: str, examples: Sequence[Mapping[str, Any]],
                        split: str | None, *, description: str | None = None
                        ) -> dict[str, Any]:
        """Append examples (``input``, ``output``, ``metadata``, ``span_id``, ``example_id``,
        optionally ``split``) to a dataset, made when missing; the server's answer
        (``dataset_id``, ``version_id``). ``split`` puts them all in one split; an example's
        own ``split`` wins."""
        doing = f"adding {len(examples)} example(s) to dataset {dataset!r}"
        payload: dict[str, Any] = {
            "action": "append", "name": dataset,
            "description": description or "Failing production spans, added by "
                                          "pytest-phoenix-evals",
            "inputs": [dict(e["input"]) for e in examples],
            "outputs": [dict(e["output"]) for e in examples],
            "metadata": [dict(e["metadata"]) for e in examples],
            "span_ids": [e["span_id"] for e in examples],
            "example_ids": [e["example_id"] for e in examples]}
        if split or any(e.get("split") for e in examples):
            payload["splits"] = [e.get("split") or split for e in examples]
        gateway = self.gateway

        def post() -> httpx.Response:
            return raise_for_retryable(gateway._http.post(
                "v1/datasets/upload", params={"sync": "true"}, json=payload,
                extensions=gateway._extensions(doing)))

        response = gateway.call(doing, post)
        gateway._raise_for_status(response, doing)
        return dict(gateway._json(response, doing, "data")["data"])
