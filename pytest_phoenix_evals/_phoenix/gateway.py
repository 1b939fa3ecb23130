"""The Phoenix gateway: the only code that speaks HTTP to Phoenix.

arize-phoenix-client does what it offers (datasets, experiments, runs, evaluations); a small
GraphQL call does what it lacks (a dataset's attached evaluators and splits). Every request has a
timeout and is retried with backoff on connection errors and 5xx answers; every failure becomes a
:class:`PhoenixError` whose message names the server and what to do.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .._evaluators.builtins import BuiltinEvaluator
from .._core.types import NOT_RUN, Example, OutputConfig

T = TypeVar("T")

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
RETRY_DELAYS = (0.5, 1.0, 2.0)
# A batch of previews runs one after another on the server, judge calls included.
PREVIEW_TIMEOUT = 600.0
# The client's own precedence for the server's address (phoenix.client.utils.config).
CLIENT_URL_VARIABLES = ("PHOENIX_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT",
                        "OTEL_EXPORTER_OTLP_ENDPOINT", "PHOENIX_BASE_URL", "PHOENIX_HOST")


class PhoenixError(Exception):
    """A failure talking to Phoenix, with a message meant for the user."""


def mask_url(url: str) -> str:
    """The URL without any user:password part, safe to print."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def resolve_url(explicit: str | None, explicit_source: str | None) -> tuple[str, str]:
    """The server's URL and where it came from (for messages)."""
    if explicit:
        return explicit.rstrip("/"), explicit_source or "--phoenix-url"
    from phoenix.client.utils.config import get_base_url

    url = str(get_base_url()).rstrip("/")
    source = next((var for var in CLIENT_URL_VARIABLES if os.environ.get(var)), None)
    return url, source or "arize-phoenix-client's default (no PHOENIX_* variable set)"


def _headers() -> dict[str, str]:
    from phoenix.client.utils.config import get_env_client_headers, get_env_phoenix_api_key

    headers = dict(get_env_client_headers())
    if api_key := get_env_phoenix_api_key():
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


@dataclass
class LoadedDataset:
    """A dataset at one version, with its examples and attached evaluators."""

    id: str
    name: str
    version_id: str
    splits: tuple[str, ...]
    examples: list[Example]
    evaluators: list[Any] = field(default_factory=list)


_EVALUATORS_QUERY = """
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


def output_config(raw: dict[str, Any]) -> OutputConfig:
    kind = {"CategoricalAnnotationConfig": "CATEGORICAL",
            "ContinuousAnnotationConfig": "CONTINUOUS",
            "FreeformAnnotationConfig": "FREEFORM"}[raw["__typename"]]
    return OutputConfig(
        kind=kind,  # type: ignore[arg-type]
        name=raw["name"],
        direction=raw.get("optimizationDirection") or "NONE",
        values=tuple((v["label"], v.get("score")) for v in raw.get("values") or ()),
        lower_bound=raw.get("lowerBound"),
        upper_bound=raw.get("upperBound"),
        threshold=raw.get("threshold"),
    )


@dataclass
class UnsupportedEvaluator:
    """An attached evaluator this version cannot run locally: every case reports it as not run."""

    name: str
    kind: str
    output_configs: Sequence[OutputConfig]
    reason: str

    async def evaluate(self, context: dict[str, Any], example: Example) -> list[Any]:
        from .._evaluators.protocol import annotation_names
        from .._core.types import Score

        return [Score(name=name, evaluator=self.name, error=self.reason, config=config)
                for name, config in zip(annotation_names(self.output_configs),
                                        self.output_configs)]


def _mapping(node: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    mapping = node.get("inputMapping") or {}
    return dict(mapping.get("pathMapping") or {}), dict(mapping.get("literalMapping") or {})


@dataclass
class AttachedEvaluators:
    """How to build the evaluator that runs each attached evaluator, where it should run."""

    gateway: Gateway
    prompt_tag: str | None = None
    notices: list[str] = field(default_factory=list)
    evaluate_on: str = "local"
    allow_code: bool = False
    code_timeout: float = 10.0

    def build(self, node: dict[str, Any], dataset: str) -> Any:
        from .._evaluators.server import ServerEvaluator, builtin_preview, code_preview, llm_preview

        configs = [output_config(c) for c in node["outputConfigs"]]
        evaluator = node["evaluator"]
        typename = evaluator["__typename"]
        name = node["name"]
        path_mapping, literal_mapping = _mapping(node)
        project = (node.get("project") or {}).get("name")
        on_server = self.evaluate_on == "server"

        def server(preview: dict[str, Any], kind: str, **extra: Any) -> ServerEvaluator:
            return ServerEvaluator(name=name, kind=kind, output_configs=configs, preview=preview,
                                   path_mapping=path_mapping, literal_mapping=literal_mapping,
                                   batcher=self.gateway.previews, **extra)

        if typename == "BuiltInEvaluator":
            if on_server:
                return server(builtin_preview(evaluator["id"]), "BUILTIN")
            return BuiltinEvaluator(
                name=name, builtin=evaluator["name"],
                input_schema=evaluator.get("inputSchema") or {}, output_configs=configs,
                path_mapping=path_mapping, literal_mapping=literal_mapping, project_name=project)
        if typename == "LLMEvaluator":
            from .._evaluators.llm.judge import LLMJudge, PromptSpec

            prompt_name = (evaluator.get("prompt") or {}).get("name") or ""
            data, problem = self._prompt(name, evaluator, dataset)
            if data is not None and on_server:
                return server(llm_preview(name, data, configs), "LLM")
            prompt = None
            if data is not None:
                try:
                    prompt = PromptSpec.from_phoenix(prompt_name, data)
                except ValueError as exc:  # a string template cannot back a judge
                    problem = str(exc)
            return LLMJudge(name=name, prompt=prompt, output_configs=configs,
                            path_mapping=path_mapping, literal_mapping=literal_mapping,
                            project_name=project, problem=problem)
        if typename == "CodeEvaluator":
            source = evaluator.get("sourceCode") or ""
            language = evaluator.get("language") or "PYTHON"
            if self.allow_code and not on_server and language == "PYTHON":
                from .._evaluators.sandbox import LocalCode

                return LocalCode(name=name, source=source, output_configs=configs,
                                 path_mapping=path_mapping, literal_mapping=literal_mapping,
                                 timeout=self.code_timeout)
            sandbox = (evaluator.get("sandboxConfig") or {}).get("id")
            how = "" if on_server else (
                " (run it locally with --phoenix-allow-code-evaluators)"
                if language == "PYTHON" else "")
            return server(code_preview(name, source, language, configs, sandbox), "CODE",
                          refused=f"the Phoenix server could not run code evaluator "
                                  f"{name!r}{how}")
        return UnsupportedEvaluator(
            name=name, kind=evaluator.get("kind") or typename, output_configs=configs,
            reason=f"{NOT_RUN}{typename} evaluators are not known to this version of "
                   f"pytest-phoenix-evals")

    def _prompt(self, name: str, evaluator: dict[str, Any], dataset: str
                ) -> tuple[dict[str, Any] | None, str | None]:
        """The prompt version (REST JSON) an attached LLM evaluator runs, or why there is none.

        Without --phoenix-prompt-tag it is the version the server's runner would use
        (``LLMEvaluator.promptVersion``: its pinned tag's, else the latest).
        """
        prompt_name = (evaluator.get("prompt") or {}).get("name") or ""
        version_id = (evaluator.get("promptVersion") or {}).get("id")
        data = None
        try:
            if self.prompt_tag:
                data = self.gateway.prompt_version(prompt_name, tag=self.prompt_tag)
                if data is None:
                    self.notices.append(
                        f"LLM evaluator {name!r} (dataset {dataset!r}): prompt {prompt_name!r} "
                        f"has no version tagged {self.prompt_tag!r}; it runs the version the "
                        f"server would run")
            if data is None and version_id:
                data = self.gateway.prompt_version(prompt_name, version_id=version_id)
            if data is None:
                return None, f"prompt {prompt_name!r} of LLM evaluator {name!r} has no version"
            return data, None
        except PhoenixError as exc:
            return None, f"cannot load the prompt of LLM evaluator {name!r}: {exc}"


class Gateway:
    """Synchronous access for collection time; :meth:`async_client` for uploads."""

    def __init__(self, url: str, source: str) -> None:
        self.url = url
        self.source = source
        self._http = httpx.Client(base_url=url, headers=_headers(), timeout=TIMEOUT)
        from phoenix.client import Client

        self.client = Client(http_client=self._http)
        self._ahttp: httpx.AsyncClient | None = None
        self._previews: Any = None
        # Every read answer, by request, for the local snapshot (--phoenix-offline replays it).
        self.tape: dict[str, Any] = {}

    def close(self) -> None:
        self._http.close()

    @property
    def previews(self) -> Any:
        """The batcher that sends evaluator previews (used on the engine's loop)."""
        if self._previews is None:
            from .._evaluators.server import PreviewBatcher

            self._previews = PreviewBatcher(self)
        return self._previews

    async def agraphql_raw(self, query: str, variables: dict[str, Any], doing: str
                           ) -> dict[str, Any]:
        """A GraphQL request from the engine's loop; the whole payload (data and errors)."""
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(base_url=self.url, headers=_headers(),
                                            timeout=httpx.Timeout(PREVIEW_TIMEOUT, connect=5.0))

        async def post() -> dict[str, Any]:
            assert self._ahttp is not None
            response = await self._ahttp.post("graphql", json={"query": query,
                                                               "variables": variables})
            response.raise_for_status()
            return dict(response.json())

        return await self.acall(doing, post)

    async def aclose(self) -> None:
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None

    # --- error handling -------------------------------------------------------------------

    def where(self) -> str:
        return f"Phoenix at {mask_url(self.url)} (from {self.source})"

    def explain(self, exc: BaseException, doing: str) -> PhoenixError:
        if isinstance(exc, PhoenixError):
            return exc
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            body = exc.response.text.strip()[:300]
            if status in (401, 403):
                return PhoenixError(
                    f"{self.where()} refused {doing} ({status}): set PHOENIX_API_KEY to a valid "
                    f"API key for this server")
            return PhoenixError(f"{self.where()} answered {status} while {doing}: {body}")
        if isinstance(exc, httpx.TransportError):
            return PhoenixError(
                f"cannot reach {self.where()} while {doing}: {type(exc).__name__}: {exc}. "
                f"Start a server (phoenix serve) or point --phoenix-url at a running one.")
        return PhoenixError(f"{self.where()}: {doing} failed: {type(exc).__name__}: {exc}")

    def call(self, doing: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with retries on connection errors and 5xx; raise PhoenixError."""
        for delay in (*RETRY_DELAYS, None):
            try:
                return fn()
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if delay is None or not _retryable(exc):
                    raise self.explain(exc, doing) from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    def graphql(self, query: str, variables: dict[str, Any], doing: str) -> dict[str, Any]:
        def post() -> dict[str, Any]:
            response = self._http.post("graphql", json={"query": query, "variables": variables})
            response.raise_for_status()
            return dict(response.json())

        payload = self.call(doing, post)
        if not payload.get("errors"):
            self.tape[tape_key("graphql", query, variables)] = payload
        if payload.get("errors"):
            messages = "; ".join(e.get("message", str(e)) for e in payload["errors"])
            raise PhoenixError(f"{self.where()} rejected the query while {doing}: {messages}")
        return dict(payload.get("data") or {})

    def _get(self, path: str, params: Any, doing: str) -> httpx.Response:
        def get() -> httpx.Response:
            response = self._http.get(path, params=params)
            if response.status_code >= 500:
                response.raise_for_status()
            return response

        response = self.call(doing, get)
        if response.status_code < 500 and "json" in response.headers.get("content-type", ""):
            self.tape[tape_key("get", path, params)] = {"status": response.status_code,
                                                        "json": response.json()}
        return response

    # --- datasets -------------------------------------------------------------------------

    def dataset_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = self._get("v1/datasets", params, "listing datasets")
            self._raise_for_status(response, "listing datasets")
            body = response.json()
            names.update({d["name"]: d["id"] for d in body["data"]})
            cursor = body.get("next_cursor")
            if not cursor:
                return names

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
        return dict(response.json()["data"])

    def load_dataset(
        self, name: str, version_id: str | None = None, splits: Sequence[str] = (),
        attached: AttachedEvaluators | None = None, split_membership: bool = False,
    ) -> LoadedDataset:
        """The dataset's examples (at ``version_id``, in ``splits``) and evaluators. With
        ``split_membership`` each example learns its splits: the REST listing does not say
        them, so every split of the dataset is listed once more."""
        names = self.dataset_names()
        dataset_id = names.get(name) or (name if name in names.values() else None)
        if dataset_id is None:
            raise PhoenixError(f"dataset {name!r} not found in {self.where()}."
                               + _closest("datasets", name, list(names)))
        name = next(n for n, i in names.items() if i == dataset_id)
        data = self.graphql(_EVALUATORS_QUERY, {"id": dataset_id},
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
        body = response.json()["data"]
        membership: dict[str, list[str]] = {}
        for split in known_splits if split_membership else ():
            listed = self._get(path, {"version_id": body["version_id"], "split": split},
                               f"listing split {split!r} of dataset {name!r}")
            self._raise_for_status(listed, f"listing split {split!r} of dataset {name!r}")
            for e in listed.json()["data"]["examples"]:
                membership.setdefault(e["id"], []).append(split)
        examples = [
            Example(id=e["id"], input=e.get("input"), reference=e.get("output"),
                    metadata=dict(e.get("metadata") or {}), dataset_name=name,
                    dataset_id=dataset_id, version_id=body["version_id"],
                    splits=tuple(membership.get(e["id"], ())))
            for e in body["examples"]
        ]
        attached = attached or AttachedEvaluators(self)
        evaluators = [attached.build(edge["node"], name)
                      for edge in (node.get("datasetEvaluators") or {}).get("edges", ())]
        return LoadedDataset(id=dataset_id, name=name, version_id=body["version_id"],
                             splits=tuple(splits), examples=examples, evaluators=evaluators)

    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        """An experiment by id (REST), or None when the server has none of that id."""
        doing = f"reading experiment {experiment_id!r}"
        response = self._get(f"v1/experiments/{quote(experiment_id)}", None, doing)
        if response.status_code in (404, 422):
            return None
        self._raise_for_status(response, doing)
        return dict(response.json()["data"])

    def _versions_hint(self, dataset_id: str) -> str:
        response = self._get(f"v1/datasets/{quote(dataset_id)}/versions", {"limit": 10},
                             "listing dataset versions")
        if response.status_code != 200:
            return ""
        versions = response.json()["data"]
        lines = [f"  {v['version_id']}  {v.get('created_at', '')}  {v.get('description') or ''}"
                 for v in versions]
        return " Newest versions:\n" + "\n".join(lines) if lines else ""

    def _raise_for_status(self, response: httpx.Response, doing: str) -> None:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise self.explain(exc, doing) from None

    # --- uploads (async) ------------------------------------------------------------------

    def async_http(self) -> httpx.AsyncClient:
        """An HTTP client on the same server, with the same headers; one loop only."""
        return httpx.AsyncClient(base_url=self.url, headers=_headers(), timeout=TIMEOUT,
                                 limits=httpx.Limits(max_connections=16))

    def async_client(self) -> tuple[Any, httpx.AsyncClient]:
        """An AsyncClient on the same server and its HTTP client (to close); one loop only."""
        from phoenix.client import AsyncClient

        http = self.async_http()
        return AsyncClient(http_client=http), http

    async def acall(self, doing: str, fn: Callable[[], Awaitable[T]]) -> T:
        for delay in (*RETRY_DELAYS, None):
            try:
                return await fn()
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if delay is None or not _retryable(exc):
                    raise self.explain(exc, doing) from None
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def experiment_url(self, dataset_id: str, experiment_id: str) -> str:
        return f"{mask_url(self.url)}/datasets/{dataset_id}/compare?experimentId={experiment_id}"


def tape_key(kind: str, what: str, arguments: Any) -> str:
    """The snapshot's key for one read request. A dataset version is not part of an examples
    listing's key: the snapshot file is per version already."""
    if kind == "get" and what.endswith("/examples") and isinstance(arguments, dict):
        arguments = {k: v for k, v in arguments.items() if k != "version_id"}
    return json.dumps([kind, what, arguments], sort_keys=True, default=str)


class OfflineGateway(Gateway):
    """--phoenix-offline: the same reads, answered from local snapshots; no server at all."""

    def __init__(self, tape: dict[str, Any], where: str) -> None:
        self.url = "offline"
        self.source = "--phoenix-offline"
        self.tape = tape
        self._where = where
        self._ahttp = None
        self._previews = None

    def close(self) -> None:
        pass

    def where(self) -> str:
        return self._where

    def _missing(self, doing: str) -> PhoenixError:
        return PhoenixError(f"{self._where} has no answer for {doing}: run once without "
                            f"--phoenix-offline, with the same options, to refresh it")

    def graphql(self, query: str, variables: dict[str, Any], doing: str) -> dict[str, Any]:
        payload = self.tape.get(tape_key("graphql", query, variables))
        if payload is None:
            raise self._missing(doing)
        return dict(payload.get("data") or {})

    def _get(self, path: str, params: Any, doing: str) -> httpx.Response:
        answer = self.tape.get(tape_key("get", path, params))
        wanted = (params or {}).get("version_id") if isinstance(params, dict) else None
        if answer is not None and wanted and path.endswith("/examples") and \
                answer["json"].get("data", {}).get("version_id") != wanted:
            answer = None
        if answer is None:
            raise self._missing(doing)
        return httpx.Response(answer["status"], json=answer["json"],
                              request=httpx.Request("GET", f"http://offline/{path}"))

    def async_http(self) -> httpx.AsyncClient:  # and so async_client
        raise PhoenixError("nothing is uploaded with --phoenix-offline")

    async def agraphql_raw(self, query: str, variables: dict[str, Any], doing: str
                           ) -> dict[str, Any]:
        raise PhoenixError(f"{self._where}: {doing} needs the server (--phoenix-offline)")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


def _closest(what: str, wanted: str, available: Sequence[str]) -> str:
    if not available:
        return f" There are no {what}."
    close = difflib.get_close_matches(wanted, available, n=5, cutoff=0.4)
    if close:
        return f" Closest {what}: {', '.join(close)}."
    shown = sorted(available)[:10]
    more = f" and {len(available) - 10} more" if len(available) > 10 else ""
    return f" Available {what}: {', '.join(shown)}{more}."
