"""The Phoenix gateway: the only code that speaks to Phoenix's REST and GraphQL APIs.

Every REST path and GraphQL document the plugin uses is here, behind typed methods: datasets
(with their attached evaluators and splits), prompt versions, experiments and their runs,
baselines, the server's judge templates, evaluator previews, and the uploads (experiments,
runs, evaluations), in plain httpx. Every request goes through the one retry policy of
:mod:`.http`, and every failure becomes a :class:`PhoenixError` whose message names the server
and what to do; so does an answer that is not the Phoenix API's (:func:`.http.json_body`).

Every read answer is kept on :attr:`Gateway.tape`, for the local snapshot that
``--phoenix-offline`` replays: the offline gateway is this class over
:class:`~.offline.ReplayTransport` (:func:`~.offline.offline_gateway`).
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from .._core.types import Example
from .http import (
    TIMEOUT,
    Observe,
    PhoenixError,
    awith_retries,
    explain,
    headers,
    json_body,
    mask_url,
    not_the_api,
    raise_for_retryable,
    with_retries,
)
from .offline import DOING, TAPE_KEY, answers_version, tape_key
from .wire import (
    JudgeTemplate,
    PreviewAnswer,
    example,
    experiment_run,
    judge_template,
)

__all__ = ["Gateway", "LoadedDataset"]

T = TypeVar("T")

# A batch of previews runs one after another on the server, judge calls included.
PREVIEW_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
#: Previews in one request: the server's limit on aliases in one GraphQL document.
PREVIEWS_PER_REQUEST = 50
#: Connections of one async client: as many as uploads may be in flight at once (the most of
#: ``_run/sinks/pace.py``), so that an upload never waits for a connection.
MAX_CONNECTIONS = 64
#: Experiments whose ``git_branch`` metadata names one of these are baselines for "main".
MAIN_BRANCHES = ("main", "master")

_DATASET_QUERY = """
query($id: ID!) { node(id: $id) { ... on Dataset {
  splits { name }
  datasetEvaluators(first: 100) { edges { node {
    id name
    inputMapping { pathMapping literalMapping }
    outputConfigs { __typename
      ... on CategoricalAnnotationConfig { name optimizationDirection values { label score } }
      ... on ContinuousAnnotationConfig { name optimizationDirection lowerBound upperBound }
      ... on FreeformAnnotationConfig { name optimizationDirection threshold lowerBound
                                        upperBound } }
    project { name }
    evaluator { __typename id name kind
      ... on BuiltInEvaluator { inputSchema }
      ... on LLMEvaluator { prompt { id name } promptVersionTag { name } promptVersion { id } }
      ... on CodeEvaluator { inputSchema sourceCode language sandboxConfig { id } } } } } } } } }
"""
_RUNS_QUERY = """
query($id: ID!, $after: String) { node(id: $id) { ... on Experiment {
  runs(first: 200, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { repetitionNumber error example { id }
      annotations { edges { node { name label score explanation error annotatorKind } } }
    } }
  } } } }
"""
_BASELINE_QUERY = """
query($id: ID!) { node(id: $id) { ... on Dataset { baselineExperiment { id name } } } }
"""
_SET_BASELINE = """
mutation($id: ID!) { setExperimentBaseline(experimentId: $id, baseline: true) {
  __typename } }
"""
_TEMPLATES_QUERY = """query { classificationEvaluatorConfigs {
  name description optimizationDirection choices
  messages { role content { ... on TextContentPart { text { text } } } } } }"""
_PREVIEW_RESULTS = ("{ evaluatorName error annotation { name annotatorKind label score "
                    "explanation metadata traceId } }")

#: The metadata key of the token that makes experiment creation idempotent: one per
#: :meth:`Gateway.acreate_experiment` call, looked for after a failed attempt.
CREATION_TOKEN = "pytest_phoenix_evals_creation"

#: Phoenix's 409 for a run that already exists without an error (``experiment_runs.py``).
EXISTING_RUN = re.compile(r"Experiment run (\S+) already exists")


@dataclass
class LoadedDataset:
    """A dataset at one version, with its examples and attached evaluators."""

    id: str
    name: str
    version_id: str
    splits: tuple[str, ...]
    examples: list[Example]
    # The attached evaluators as the server stores them (GraphQL ``DatasetEvaluator`` nodes);
    # the evaluators package turns them into evaluators (``AttachedEvaluators.for_dataset``).
    evaluator_nodes: list[dict[str, Any]] = field(default_factory=list)


class Gateway:
    """Synchronous reads for collection time; ``a*`` methods on the engine's loop (one loop).

    ``transport`` (sync and, for the ``a*`` methods, async) replaces the network: the offline
    replay. ``where`` replaces "Phoenix at <url> (from <source>)" in messages.
    """

    def __init__(self, url: str, source: str, *, where: str | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 tape: dict[str, Any] | None = None,
                 primed: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.source = source
        self._where = where
        self._request_headers = _env_headers() if headers is None else dict(headers)
        self._transport = transport
        self._http = httpx.Client(base_url=url, headers=self._request_headers, timeout=TIMEOUT,
                                  transport=transport)
        self._ahttp: httpx.AsyncClient | None = None
        # Every read answer, by request, for the local snapshot (--phoenix-offline replays it).
        self.tape: dict[str, Any] = {} if tape is None else tape
        # A pytest-xdist worker's: the answers xdist's controller read (the datasets, their
        # evaluators), taken instead of asking again, so that every worker runs the version
        # the controller made the experiment for, and the server is asked once, not N+1 times.
        self._primed = dict(primed or {})

    def close(self) -> None:
        self._http.close()

    def reopened(self) -> Gateway:
        """A gateway to the same server with the same headers, for work after this one was
        closed (the session closes its clients before it decides its gates)."""
        return Gateway(self.url, self.source, where=self._where,
                       headers=self._request_headers, transport=self._transport)

    async def aclose(self) -> None:
        """Close the async client (on the loop that used it)."""
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None

    # --- error handling and retries -------------------------------------------------------

    def where(self) -> str:
        return self._where or f"Phoenix at {mask_url(self.url)} (from {self.source})"

    def explain(self, exc: BaseException, doing: str) -> PhoenixError:
        return explain(exc, doing, self.where())

    def call(self, doing: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the retry policy; its httpx errors become PhoenixError."""
        try:
            return with_retries(fn)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            raise self.explain(exc, doing) from None

    async def acall(self, doing: str, fn: Callable[[], Awaitable[T]], *,
                    observe: Observe | None = None) -> T:
        """:meth:`call` for a coroutine function; ``observe`` is told of every answer."""
        try:
            return await awith_retries(fn, observe=observe)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            raise self.explain(exc, doing) from None

    # --- requests -------------------------------------------------------------------------

    @staticmethod
    def _extensions(doing: str, key: str | None = None) -> dict[str, Any]:
        return {DOING: doing} if key is None else {DOING: doing, TAPE_KEY: key}

    def _graphql(self, query: str, variables: dict[str, Any], doing: str, *,
                 read: bool = True) -> dict[str, Any]:
        """A GraphQL request; its ``data`` (a query's answer goes on the tape)."""
        key = tape_key("graphql", query, variables) if read else None
        if key is not None and key in self._primed:
            self.tape[key] = self._primed[key]
            return dict(self._primed[key].get("data") or {})

        def post() -> dict[str, Any]:
            response = self._http.post("graphql", json={"query": query, "variables": variables},
                                       extensions=self._extensions(doing, key))
            response.raise_for_status()
            return self._graphql_answer(response, doing)

        payload = self.call(doing, post)
        if payload.get("errors"):
            messages = "; ".join(e.get("message", str(e)) for e in payload["errors"])
            raise PhoenixError(f"{self.where()} rejected the query while {doing}: {messages}")
        if key is not None:
            self.tape[key] = payload
        return dict(payload.get("data") or {})

    def _get(self, path: str, params: Any, doing: str, *, read: bool = True) -> httpx.Response:
        """A REST read; 4xx answers are the caller's to read (a JSON one goes on the tape,
        unless ``read`` is False: what no offline run replays, such as spans)."""
        key = tape_key("get", path, params) if read else None

        def get() -> httpx.Response:
            return raise_for_retryable(self._http.get(
                path, params=params, extensions=self._extensions(doing, key)))

        primed = self._primed.get(key) if key is not None else None
        wanted = params.get("version_id") if isinstance(params, dict) else None
        if primed is not None and not answers_version(primed, path, wanted):
            primed = None
        response = httpx.Response(
            primed["status"], json=primed["json"],
            request=httpx.Request("GET", f"{self.url.rstrip('/')}/{path}")) \
            if primed is not None else self.call(doing, get)
        if key is not None and "json" in response.headers.get("content-type", ""):
            self.tape[key] = {"status": response.status_code,
                              "json": self._json(response, doing)}
        return response

    def _json(self, response: httpx.Response, doing: str, field: str | None = None) -> Any:
        """The answer's JSON (with ``field``: an object holding it); PhoenixError saying this
        is not the Phoenix API when it is anything else (an SSO login page, another service).
        Every JSON answer the gateway reads goes through here."""
        return json_body(response, doing, self.where(), field)

    def _graphql_answer(self, response: httpx.Response, doing: str) -> dict[str, Any]:
        """A GraphQL answer: an object with ``data`` or ``errors`` (else not the API)."""
        payload = self._json(response, doing)
        if not isinstance(payload, dict) or not {"data", "errors"} & payload.keys():
            raise not_the_api(response, doing, self.where())
        return payload

    def _raise_for_status(self, response: httpx.Response, doing: str) -> None:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise self.explain(exc, doing) from None

    # --- datasets and prompts -------------------------------------------------------------

    def pages(self, path: str, doing: str, *, limit: int = 100,
              read: bool = True) -> Iterator[dict[str, Any]]:
        """Every item of a REST listing, page by page (``limit`` a page, following
        ``next_cursor``); ``read`` as for :meth:`_get`."""
        cursor = None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            response = self._get(path, params, doing, read=read)
            self._raise_for_status(response, doing)
            body = self._json(response, doing, "data")
            yield from body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def dataset_names(self) -> dict[str, str]:
        """Every dataset's name -> id."""
        return {d["name"]: d["id"] for d in self.pages("v1/datasets", "listing datasets")}

    def prompt_version(self, prompt: str, *, version_id: str | None = None,
                       tag: str | None = None) -> dict[str, Any] | None:
        """A prompt version (the server's v1 PromptVersion JSON); None if the tag is unknown."""
        if version_id:
            path = f"v1/prompt_versions/{quote(version_id)}"
        else:
            path = f"v1/prompts/{quote(prompt)}/tags/{quote(str(tag))}"
        doing = f"loading prompt {prompt!r}" + (f" tagged {tag!r}" if tag else "")
        response = self._get(path, None, doing)
        if response.status_code == 404 and tag:
            return None
        self._raise_for_status(response, doing)
        return dict(self._json(response, doing, "data")["data"])

    def find_prompt_version(self, prompt: str, ref: str | None) -> dict[str, Any]:
        """The version of ``prompt`` that ``ref`` names: a tag, else a version id (None: the
        latest). PhoenixError listing the closest prompts, or the prompt's tags and latest
        versions, when it names none."""
        from .http import PhoenixError

        data: dict[str, Any] | None = None
        if not ref:
            doing = f"loading the latest version of prompt {prompt!r}"
            response = self._get(f"v1/prompts/{quote(prompt)}/latest", None, doing)
            if response.status_code != 404:
                self._raise_for_status(response, doing)
                return dict(self._json(response, doing, "data")["data"])
        else:
            data = self.prompt_version(prompt, tag=ref)
            if data is None:  # not a tag: a version id?
                try:
                    data = self.prompt_version(prompt, version_id=ref)
                except PhoenixError as exc:
                    if exc.status is None or exc.status >= 500:
                        raise
        if data is not None:
            return data
        names = self.prompt_names()
        if prompt not in names:
            raise PhoenixError(f"there is no prompt {prompt!r} in {self.where()}."
                               + _closest("prompts", prompt, names))
        versions = self.prompt_versions(prompt)
        tags = sorted({t for v in versions for t in self.prompt_version_tags(v["id"])})
        raise PhoenixError(
            f"prompt {prompt!r} has no tag or version {ref!r}."
            + _closest("tags", str(ref), tags)
            + f" Its latest versions: {', '.join(v['id'] for v in versions[:5]) or 'none'}.")

    def prompt_names(self) -> list[str]:
        """Every prompt's name."""
        return [p["name"] for p in self.pages("v1/prompts", "listing prompts")]

    def prompt_versions(self, prompt: str, limit: int = 20) -> list[dict[str, Any]]:
        """A prompt's latest versions, newest first."""
        doing = f"listing the versions of prompt {prompt!r}"
        response = self._get(f"v1/prompts/{quote(prompt)}/versions", {"limit": limit}, doing)
        self._raise_for_status(response, doing)
        return list(self._json(response, doing, "data")["data"])

    def prompt_version_tags(self, version_id: str) -> list[str]:
        """The tags a prompt version carries."""
        doing = f"listing the tags of prompt version {version_id}"
        response = self._get(f"v1/prompt_versions/{quote(version_id)}/tags", None, doing)
        self._raise_for_status(response, doing)
        return [t["name"] for t in self._json(response, doing, "data")["data"]]

    def push_prompt_version(self, prompt: str, version: Mapping[str, Any]) -> dict[str, Any]:
        """A new version of ``prompt`` (the prompt made first if there is none): ``POST
        /v1/prompts``, which the server validates as it validates any prompt version. Sent
        once, never retried: a retry after an answer lost on the way back would make a second
        version (the caller looks whether the server made it)."""
        doing = f"creating a version of prompt {prompt!r}"
        try:
            response = self._http.post(
                "v1/prompts", json={"prompt": {"name": prompt}, "version": dict(version)},
                extensions=self._extensions(doing))
        except httpx.TransportError as exc:
            raise self.explain(exc, doing) from None
        self._raise_for_status(response, doing)
        return dict(self._json(response, doing, "data")["data"])

    def tag_prompt_version(self, version_id: str, tag: str, description: str) -> None:
        """Put ``tag`` on a prompt version (``POST /v1/prompt_versions/{id}/tags``: the server
        moves the tag when another version of the prompt carries it)."""
        doing = f"tagging prompt version {version_id} {tag!r}"

        def post() -> httpx.Response:
            return raise_for_retryable(self._http.post(
                f"v1/prompt_versions/{quote(version_id)}/tags",
                json={"name": tag, "description": description},
                extensions=self._extensions(doing)))

        response = self.call(doing, post)
        self._raise_for_status(response, doing)

    def load_dataset(
        self, name: str, version_id: str | None = None, splits: Sequence[str] = (),
        split_membership: bool = False,
    ) -> LoadedDataset:
        """The dataset's examples (at ``version_id``, in ``splits``) and its attached evaluator
        nodes. With ``split_membership`` each example learns its splits: the REST listing does
        not say them, so every split of the dataset is listed once more."""
        names = self.dataset_names()
        dataset_id = names.get(name) or (name if name in names.values() else None)
        if dataset_id is None:
            raise PhoenixError(f"dataset {name!r} not found in {self.where()}."
                               + _closest("datasets", name, list(names)))
        name = next(n for n, i in names.items() if i == dataset_id)
        data = self._graphql(_DATASET_QUERY, {"id": dataset_id},
                             f"reading the evaluators of dataset {name!r}")
        node = data.get("node") or {}
        known_splits = [s["name"] for s in node.get("splits") or ()]
        for split in splits:
            if split not in known_splits:
                raise PhoenixError(f"split {split!r} not found in dataset {name!r}."
                                   + _closest("splits", split, known_splits))
        params: dict[str, Any] = {}
        if version_id:
            params["version_id"] = version_id
        if splits:
            params["split"] = list(splits)
        path = f"v1/datasets/{quote(dataset_id)}/examples"
        response = self._get(path, params, f"loading the examples of dataset {name!r}")
        if version_id and response.status_code in (404, 422):
            raise PhoenixError(f"version {version_id!r} not found for dataset {name!r}."
                               + self._versions_hint(dataset_id))
        self._raise_for_status(response, f"loading the examples of dataset {name!r}")
        body = self._json(response, f"loading the examples of dataset {name!r}", "data")["data"]
        membership: dict[str, list[str]] = {}
        for split in known_splits if split_membership else ():
            listed = self._get(path, {"version_id": body["version_id"], "split": split},
                               f"listing split {split!r} of dataset {name!r}")
            self._raise_for_status(listed, f"listing split {split!r} of dataset {name!r}")
            listing = self._json(listed, f"listing split {split!r} of dataset {name!r}", "data")
            for e in listing["data"]["examples"]:
                membership.setdefault(e["id"], []).append(split)
        examples = [example(e, dataset_name=name, dataset_id=dataset_id,
                            version_id=body["version_id"], splits=membership.get(e["id"], ()))
                    for e in body["examples"]]
        nodes = [edge["node"] for edge in (node.get("datasetEvaluators") or {}).get("edges", ())]
        return LoadedDataset(id=dataset_id, name=name, version_id=body["version_id"],
                             splits=tuple(splits), examples=examples, evaluator_nodes=nodes)

    def _versions_hint(self, dataset_id: str) -> str:
        response = self._get(f"v1/datasets/{quote(dataset_id)}/versions", {"limit": 10},
                             "listing dataset versions")
        if response.status_code != 200:
            return ""
        versions = self._json(response, "listing dataset versions", "data")["data"]
        lines = [f"  {v['version_id']}  {v.get('created_at', '')}  {v.get('description') or ''}"
                 for v in versions]
        return " Newest versions:\n" + "\n".join(lines) if lines else ""

    def classification_evaluator_configs(self) -> list[JudgeTemplate]:
        """The server's built-in judge templates (their text is Phoenix's: never stored)."""
        data = self._graphql(_TEMPLATES_QUERY, {}, "reading the server's judge templates")
        return [judge_template(t) for t in data.get("classificationEvaluatorConfigs") or ()]

    # --- experiments and baselines --------------------------------------------------------

    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        """An experiment by id (REST), or None when the server has none of that id."""
        doing = f"reading experiment {experiment_id!r}"
        response = self._get(f"v1/experiments/{quote(experiment_id)}", None, doing)
        if response.status_code in (404, 422):
            return None
        self._raise_for_status(response, doing)
        return dict(self._json(response, doing, "data")["data"])

    def add_experiment_metadata(self, experiment_id: str, extra: Mapping[str, Any]) -> None:
        """Add keys to an experiment's metadata: ``PATCH /v1/experiments/{id}``, which replaces
        the metadata whole, so what is there is read first."""
        found = self.experiment(experiment_id)
        if found is None:
            raise PhoenixError(f"experiment {experiment_id!r} not found in {self.where()}")
        doing = f"updating the metadata of experiment {experiment_id}"
        metadata = {**(found.get("metadata") or {}), **extra}

        def patch() -> httpx.Response:
            return raise_for_retryable(self._http.patch(
                f"v1/experiments/{quote(experiment_id)}", json={"metadata": metadata},
                extensions=self._extensions(doing)))

        self._raise_for_status(self.call(doing, patch), doing)

    def dataset_experiments(self, dataset_id: str) -> list[dict[str, Any]]:
        """Every experiment of the dataset (REST JSON, page by page: the server gives 50 a
        page unless asked), newest first."""
        experiments = self.pages(f"v1/datasets/{dataset_id}/experiments",
                                 "listing the dataset's experiments", limit=1000)
        return sorted(experiments, key=lambda e: e.get("created_at") or "", reverse=True)

    def baseline_experiment(self, dataset_id: str, dataset_name: str) -> dict[str, Any] | None:
        """The dataset's baseline experiment as {id, name}; None when it has none."""
        data = self._graphql(_BASELINE_QUERY, {"id": dataset_id},
                             f"reading the baseline of dataset {dataset_name!r}")
        found = (data.get("node") or {}).get("baselineExperiment")
        return {"id": found["id"], "name": found.get("name")} if found else None

    def find_experiment(self, spec: str, dataset_id: str, dataset_name: str,
                        exclude: Sequence[str] = ()) -> dict[str, Any]:
        """The experiment ``spec`` names on a dataset, as {id, name}: ``dataset`` (its
        baseline), ``previous`` (the newest), ``main`` (the newest of a main branch), else an
        experiment id or name; ``prompt-version:ID`` (the newest whose metadata says its task
        was that prompt version); never one in ``exclude``. PhoenixError saying what exists."""
        if spec == "dataset":
            found = self.baseline_experiment(dataset_id, dataset_name)
            if found is None:
                raise PhoenixError(f"dataset {dataset_name!r} has no baseline experiment; set "
                                   f"one in Phoenix or with --phoenix-set-baseline")
            return found
        experiments = [e for e in self.dataset_experiments(dataset_id)
                       if e["id"] not in exclude]
        if spec == "previous":
            chosen = experiments[0] if experiments else None
        elif spec == "main":
            chosen = next((e for e in experiments if (e.get("metadata") or {}).get("git_branch")
                           in MAIN_BRANCHES), None)
        elif spec.startswith("prompt-version:"):
            version = spec.removeprefix("prompt-version:")
            chosen = next((e for e in experiments if ((e.get("metadata") or {}).get("task")
                                                       or {}).get("prompt_version_id") == version),
                          None)
        else:
            chosen = next((e for e in experiments if spec in (e["id"], e.get("name"))), None)
        if chosen is None and spec.startswith("prompt-version:"):
            raise PhoenixError(f"no experiment on dataset {dataset_name!r} ran prompt version "
                               f"{spec.removeprefix('prompt-version:')}")
        if chosen is None:
            names = ", ".join(f"{e.get('name')} ({e['id']})" for e in experiments[:5])
            raise PhoenixError(f"no experiment {spec!r} on dataset {dataset_name!r}"
                               + (f"; the latest: {names}" if names else "; it has none"))
        return {"id": chosen["id"], "name": chosen.get("name")}

    def set_baseline(self, experiment_id: str) -> None:
        """Make the experiment its dataset's baseline."""
        self._graphql(_SET_BASELINE, {"id": experiment_id}, "setting the dataset's baseline",
                      read=False)

    def experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every run of an experiment with its annotations (GraphQL, page by page), as
        {example_id, repetition, error, annotations}."""
        runs: list[dict[str, Any]] = []
        after = None
        while True:
            data = self._graphql(_RUNS_QUERY, {"id": experiment_id, "after": after},
                                 f"reading the runs of experiment {experiment_id}")
            node = data.get("node")
            if not node:
                raise PhoenixError(f"experiment {experiment_id!r} not found in {self.where()}")
            page = node["runs"]
            runs.extend(experiment_run(edge["node"]) for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                return runs
            after = page["pageInfo"]["endCursor"]

    def experiment_url(self, dataset_id: str, experiment_id: str) -> str:
        return f"{mask_url(self.url)}/datasets/{dataset_id}/compare?experimentId={experiment_id}"

    # --- on the engine's loop: uploads and previews ---------------------------------------

    def async_http(self) -> httpx.AsyncClient:
        """A new HTTP client on the same server, with the same headers; one loop only (the
        caller closes it)."""
        transport = self._transport
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError("the gateway's transport has no async side")
        return httpx.AsyncClient(base_url=self.url, headers=self._request_headers,
                                 timeout=TIMEOUT, transport=transport,
                                 limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                                                     max_keepalive_connections=MAX_CONNECTIONS))

    def _async(self) -> httpx.AsyncClient:
        """The gateway's own async client (closed by :meth:`aclose`)."""
        if self._ahttp is None:
            self._ahttp = self.async_http()
        return self._ahttp

    async def acreate_experiment(
        self, dataset_id: str, dataset_version_id: str, *, dataset_name: str,
        experiment_name: str, metadata: Mapping[str, Any], splits: Sequence[str] = (),
        repetitions: int = 1, token: str | None = None, look_first: bool | None = None,
    ) -> dict[str, Any]:
        """Create an experiment (the request arize-phoenix-client's ``experiments.create``
        posts); the server's record of it (``id``, ``project_name``, ...).

        Idempotent under the retry policy: the experiment's metadata carries a token of this
        call (:data:`CREATION_TOKEN`), and after a failed attempt (a 5xx or a dropped
        connection, possibly after the server made it) the dataset's newest experiments are
        looked up for one carrying the token before trying again, and once more when every
        attempt failed. So a flaky server never leaves empty experiments of the same name.

        ``token`` (default: a new one) is for a caller that kept it (a journal) and calls again
        after a crash: the experiment already made with it is then looked up first, and used
        (``look_first``: by default, when a token is given).
        """
        doing = f"creating an experiment on dataset {dataset_name!r}"
        look_first = token is not None if look_first is None else look_first
        token = token or uuid.uuid4().hex
        payload: dict[str, Any] = {"repetitions": repetitions,
                                   "metadata": {**metadata, CREATION_TOKEN: token}}
        if experiment_name.strip():
            payload["name"] = experiment_name.strip()
        if dataset_version_id.strip():
            payload["version_id"] = dataset_version_id.strip()
        if splits:
            payload["splits"] = list(splits)
        http = self._async()
        path = f"v1/datasets/{quote(dataset_id)}/experiments"
        attempts = 0

        async def attempt() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            if (attempts > 1 or look_first) and (
                    made := await self._acreated(dataset_id, token, doing)):
                return made
            response = await http.post(path, json=payload, extensions=self._extensions(doing))
            response.raise_for_status()
            created = self._json(response, doing, "data")["data"]
            if not isinstance(created, dict) or "id" not in created:
                raise not_the_api(response, doing, self.where())
            return dict(created)

        try:
            return await self.acall(doing, attempt)
        except PhoenixError:
            try:  # the last attempt may have been made by the server all the same
                made = await self._acreated(dataset_id, token, doing)
            except (httpx.TransportError, httpx.HTTPStatusError, PhoenixError):
                made = None
            if made is None:
                raise
            return made

    async def aoldest_with_token(self, dataset_id: str, token: str) -> dict[str, Any] | None:
        """The first experiment the dataset got with creation ``token`` (several shards of a
        run may each have made one at once), or None."""
        doing = "looking for the run's experiment"

        async def look() -> dict[str, Any] | None:
            found = [e async for e in self._awith_token(dataset_id, token, doing, strict=True)]
            return min(found, key=lambda e: (e.get("created_at") or "", _row_id(e["id"])),
                       default=None)

        return await self.acall(doing, look)

    async def _awith_token(self, dataset_id: str, token: str, doing: str, *, strict: bool
                           ) -> AsyncIterator[dict[str, Any]]:
        """The dataset's experiments made with creation ``token``, newest first, page by page.
        A listing the server refuses (a 4xx) raises with ``strict``, else ends the iteration;
        httpx errors worth a retry are raised for the retry policy."""
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = raise_for_retryable(await self._async().get(
                f"v1/datasets/{quote(dataset_id)}/experiments", params=params,
                extensions=self._extensions(doing)))
            if response.status_code != 200:
                if strict:
                    response.raise_for_status()
                return
            body = self._json(response, doing, "data")
            for experiment in body["data"] or ():
                if (experiment.get("metadata") or {}).get(CREATION_TOKEN) == token:
                    yield dict(experiment)
            cursor = body.get("next_cursor")
            if not cursor:
                return

    async def adelete_experiment(self, experiment_id: str) -> None:
        doing = f"deleting experiment {experiment_id}"
        http = self._async()

        async def delete() -> None:
            response = raise_for_retryable(await http.delete(
                f"v1/experiments/{quote(experiment_id)}", extensions=self._extensions(doing)))
            if response.status_code != 404:  # gone already: as good
                response.raise_for_status()

        await self.acall(doing, delete)

    async def _acreated(self, dataset_id: str, token: str, doing: str) -> dict[str, Any] | None:
        """The dataset's experiment made with creation ``token``, if the server has it (newest
        first, page by page: a journal's may be old); None also when the server cannot list
        them (a 4xx). Raises httpx errors worth a retry, for the retry policy."""
        async for experiment in self._awith_token(
                dataset_id, token, f"{doing} (looking for one already made)", strict=False):
            return experiment
        return None

    async def apost_run(self, experiment_id: str, run: Mapping[str, Any], *,
                        doing: str | None = None, observe: Observe | None = None) -> str:
        """Post a run (the body arize-phoenix-client's log_run posts); its id, also when
        Phoenix already had it. ``observe`` is told of every attempt's answer."""
        http = self._async()
        doing = doing or f"uploading a run of experiment {experiment_id}"
        return await self.acall(doing, lambda: send_run(http, experiment_id, run,
                                                        where=self.where(), doing=doing),
                                observe=observe)

    async def apost_evaluation(self, run_id: str, evaluation: Mapping[str, Any], *,
                               doing: str | None = None, observe: Observe | None = None) -> None:
        """Post one evaluation of a run (Phoenix upserts by run and name); ``observe`` as for
        :meth:`apost_run`."""
        http = self._async()
        doing = doing or f"uploading annotation {evaluation.get('name')!r}"
        await self.acall(doing, lambda: send_evaluation(http, run_id, evaluation,
                                                        where=self.where(), doing=doing),
                         observe=observe)

    async def aevaluator_previews(self, previews: Sequence[Mapping[str, Any]]
                                  ) -> list[PreviewAnswer]:
        """Run up to :data:`PREVIEWS_PER_REQUEST` evaluator previews (``EvaluatorPreviewInput``)
        in one request; each one's results or error, in order. PhoenixError when the request
        itself fails.

        Aliases rather than one ``previews`` list: the server flattens a list's results (an
        answer whose tool matches no config yields none) and fails the whole list on any
        request-level problem; with aliases every preview gets its own results or error.
        """
        if len(previews) > PREVIEWS_PER_REQUEST:
            raise ValueError(f"at most {PREVIEWS_PER_REQUEST} previews a request")
        count = range(len(previews))
        params = ", ".join(f"$p{i}: EvaluatorPreviewsInput!" for i in count)
        fields = " ".join(f"p{i}: evaluatorPreviews(input: $p{i}) {{ results {_PREVIEW_RESULTS} }}"
                          for i in count)
        query = f"mutation({params}) {{ {fields} }}"
        variables = {f"p{i}": {"previews": [preview]} for i, preview in enumerate(previews)}
        doing = "running evaluator previews"
        http = self._async()

        async def post() -> dict[str, Any]:
            response = await http.post("graphql", json={"query": query, "variables": variables},
                                       timeout=PREVIEW_TIMEOUT,
                                       extensions=self._extensions(doing))
            response.raise_for_status()
            return self._graphql_answer(response, doing)

        payload = await self.acall(doing, post)
        errors: dict[str, str] = {}
        for error in payload.get("errors") or ():
            path = error.get("path") or ["?"]
            errors.setdefault(str(path[0]), error.get("message", str(error)))
        data = payload.get("data") or {}
        answers = []
        for i in count:
            alias = f"p{i}"
            if data.get(alias) is None:
                answers.append(PreviewAnswer(None, errors.get(alias) or "; ".join(
                    errors.values()) or "the server returned no result"))
            else:
                answers.append(PreviewAnswer(list(data[alias]["results"])))
        return answers


async def send_run(http: httpx.AsyncClient, experiment_id: str, run: Mapping[str, Any], *,
                   where: str = "Phoenix", doing: str = "uploading a run") -> str:
    """One post of a run, no retry; its id, also when Phoenix already had it (a retried post
    that had gone through, or a journaled case uploaded before the session died: Phoenix
    answers 409 naming it). A run Phoenix already had is this run only when its times and
    output are this run's: another session's run of the same example is never adopted
    (PhoenixError with status 409). Raises httpx errors, and PhoenixError (naming ``where``)
    for an answer that is not the Phoenix API's."""
    response = await http.post(f"v1/experiments/{quote(experiment_id)}/runs", json=dict(run))
    if response.status_code == 409 and (found := EXISTING_RUN.search(response.text)):
        existing = await _read_run(http, experiment_id, found.group(1), where, doing)
        if existing is not None and not _same_run(existing, run):
            raise PhoenixError(
                f"example {run.get('dataset_example_id')} (repetition "
                f"{run.get('repetition_number', 1)}) already has another run in experiment "
                f"{experiment_id} ({found.group(1)}, started {existing.get('start_time')}, not "
                f"{run.get('start_time')}): another session recorded it; this result was not "
                f"uploaded", status=409)
        return found.group(1)
    response.raise_for_status()
    body = json_body(response, doing, where, "data")
    if not isinstance(body["data"], dict) or "id" not in body["data"]:
        raise not_the_api(response, doing, where)
    return str(body["data"]["id"])


async def _read_run(http: httpx.AsyncClient, experiment_id: str, run_id: str, where: str,
                    doing: str) -> dict[str, Any] | None:
    """One run of an experiment (None if the server does not show it). The run list pages
    by run id, newest first, from the cursor: a cursor at the run with a limit of one gives
    exactly that run."""
    response = await http.get(f"v1/experiments/{quote(experiment_id)}/runs",
                              params={"cursor": run_id, "limit": 1})
    if response.status_code != 200:
        return None
    runs = json_body(response, f"{doing} (reading the run Phoenix had)", where, "data")["data"]
    return dict(runs[0]) if runs and runs[0].get("id") == run_id else None


def _same_run(existing: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
    """The run Phoenix has is ``run``: the same start and end times and the same output."""
    def moment(value: Any) -> Any:
        try:
            found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return value
        return found if found.tzinfo else found.replace(tzinfo=UTC)  # stored as UTC

    def canonical(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    return all(moment(existing.get(k)) == moment(run.get(k)) for k in ("start_time", "end_time")) \
        and canonical(existing.get("output")) == canonical(run.get("output"))


async def send_evaluation(http: httpx.AsyncClient, run_id: str,
                          evaluation: Mapping[str, Any], *, where: str = "Phoenix",
                          doing: str = "uploading an annotation") -> None:
    """One post of an evaluation of a run, no retry. Raises httpx errors, and PhoenixError
    (naming ``where``) for an answer that is not the Phoenix API's (a 200 login page must not
    pass for an upload)."""
    response = await http.post("v1/experiment_evaluations",
                               json={**evaluation, "experiment_run_id": run_id})
    response.raise_for_status()
    json_body(response, doing, where, "data")


def _row_id(global_id: str) -> int:
    """The row id in a GraphQL global id ("Experiment:12", base64): creation order."""
    import base64

    try:
        return int(base64.b64decode(global_id).decode().rsplit(":", 1)[-1])
    except (ValueError, UnicodeDecodeError):
        return 0


def _env_headers() -> dict[str, str]:
    # Gateway.__init__'s ``headers`` parameter hides the module's function of that name.
    return headers()


def _closest(what: str, wanted: str, available: Sequence[str]) -> str:
    if not available:
        return f" There are no {what}."
    close = difflib.get_close_matches(wanted, available, n=5, cutoff=0.4)
    if close:
        return f" Closest {what}: {', '.join(close)}."
    shown = sorted(available)[:10]
    more = f" and {len(available) - 10} more" if len(available) > 10 else ""
    return f" Available {what}: {', '.join(shown)}{more}."
