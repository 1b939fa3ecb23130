"""Set up datasets in a Phoenix server: for the example's seed script and the tests.

The plugin itself only reads datasets; creating them and attaching evaluators is what this
helper is for. It speaks the server's REST and GraphQL APIs with httpx.

Prompts and LLM / code evaluators (Phoenix 20.26.x): an LLM evaluator's prompt version must
carry exactly one function tool per categorical output config, named after the config, whose
parameters are ``{"type": "object", "properties": {"label": {"type": "string", "enum":
[labels], "description": <config name>}, "explanation": {"type": "string", ...}}, "required":
["label", "explanation"]}``, a tool choice of ``oneOrMore`` (or a specific function) and no
response format; :func:`evaluator_tools` builds that. A dataset LLM evaluator is always pinned to
one prompt version through a tag the server creates itself (``<name>-evaluator-<hex>``).
Code evaluators need a sandbox config; a stock server seeds ``default-monty-python`` (Monty,
restricted Python, runs locally) which :meth:`PhoenixAdmin.sandbox_config_id` finds.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

# Message roles (lower case) -> GraphQL PromptMessageRole, snake_case -> camelCase, and the
# REST -> GraphQL prompt version conversion: the plugin's own, for server-run previews.
from pytest_phoenix_evals._phoenix.wire import (
    GRAPHQL_ROLES,
    camel_case,
    graphql_invocation_parameters,
    version_input_from_rest,
)

#: Which PromptInvocationParametersInput member a provider's parameters go in.
_INVOCATION_FAMILY = {"ANTHROPIC": "anthropic", "GOOGLE": "google", "AWS": "aws"}


def _camel_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level snake_case keys to camelCase (``extra_body`` values are left alone)."""
    return {camel_case(k): v for k, v in value.items()}


def global_id(type_name: str, row_id: int | str) -> str:
    """The GraphQL global id of a row: base64 of ``"<Type>:<id>"`` (REST takes it too)."""
    return base64.b64encode(f"{type_name}:{row_id}".encode()).decode()


def parse_global_id(value: str) -> tuple[str, str] | None:
    """``(type name, row id)`` of a GraphQL global id, or None if ``value`` is not one."""
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    type_name, sep, row_id = decoded.partition(":")
    return (type_name, row_id) if sep and type_name.isidentifier() and row_id else None


def prompt_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"role": "user"|"system"|"assistant"|"ai"|"tool", "content": str | [str, ...]}]``
    as GraphQL ``PromptMessageInput`` (text parts only)."""
    out = []
    for message in messages:
        role = str(message["role"])
        role = GRAPHQL_ROLES.get(role.lower(), role.upper())
        content = message["content"]
        texts = [content] if isinstance(content, str) else list(content)
        out.append({"role": role, "content": [{"text": {"text": str(t)}} for t in texts]})
    return out


def categorical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A categorical output config as GraphQL ``CategoricalAnnotationConfigInput``.

    Accepts ``{"categorical": {...}}`` or the bare ``{"name", "values": [{"label", "score"}],
    "optimizationDirection" (or optimization_direction; default MAXIMIZE), "description"?}``.
    """
    inner = dict(config.get("categorical") or config)
    out: dict[str, Any] = {
        "name": inner["name"],
        "optimizationDirection": str(
            inner.get("optimizationDirection") or inner.get("optimization_direction")
            or "MAXIMIZE").upper(),
        "values": [{"label": v["label"], "score": v.get("score")} for v in inner["values"]],
    }
    if inner.get("description") is not None:
        out["description"] = inner["description"]
    return out


def annotation_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Any output config as GraphQL ``AnnotationConfigInput`` (categorical / continuous /
    freeform). Already-wrapped dicts pass through; a bare dict with ``values`` is categorical,
    one with ``type: "freeform"`` is freeform, anything else continuous (name,
    optimizationDirection, lowerBound, upperBound; snake_case accepted)."""
    if any(k in config for k in ("categorical", "continuous", "freeform")):
        return dict(config)
    if "values" in config:
        return {"categorical": categorical_config(config)}
    inner = {k: v for k, v in _camel_keys(config).items() if k != "type"}
    inner["optimizationDirection"] = str(inner.get("optimizationDirection") or "MAXIMIZE").upper()
    kind = "freeform" if str(config.get("type", "")).lower() == "freeform" else "continuous"
    return {kind: inner}


def evaluator_tools(
    output_configs: Sequence[Mapping[str, Any]],
    *,
    description: str | None = None,
    include_explanation: bool = True,
    tool_choice: Mapping[str, Any] | None = None,
    disable_parallel_tool_calls: bool | None = None,
) -> dict[str, Any]:
    """GraphQL ``PromptToolsInput`` for an LLM evaluator: one function tool per categorical
    config, as the server validates them (phoenix/server/api/helpers/evaluators.py) and the UI
    builds them. ``description`` becomes every function's description; the server requires
    it to equal the evaluator's description when that one is set. ``tool_choice`` defaults to
    ``{"oneOrMore": True}`` (sent to OpenAI as ``"required"``)."""
    tools = []
    for config in map(categorical_config, output_configs):
        properties: dict[str, Any] = {"label": {
            "type": "string",
            "enum": [v["label"] for v in config["values"]],
            "description": config["name"],  # the server requires: equal to the config name
        }}
        if include_explanation:
            properties["explanation"] = {
                "type": "string", "description": f"Reasoning for the {config['name']} label"}
        function: dict[str, Any] = {"name": config["name"], "parameters": {
            "type": "object", "properties": properties, "required": list(properties)}}
        if description is not None:
            function["description"] = description
        tools.append({"function": function})
    out: dict[str, Any] = {"tools": tools, "toolChoice": dict(tool_choice or {"oneOrMore": True})}
    if disable_parallel_tool_calls is not None:
        out["disableParallelToolCalls"] = disable_parallel_tool_calls
    return out


def invocation_parameters_input(
    provider: str, invocation_parameters: Mapping[str, Any] | None
) -> dict[str, Any]:
    """GraphQL ``PromptInvocationParametersInput``: ``{"temperature": 0}`` goes under the
    provider's family (openai for every OpenAI-compatible provider); an already-wrapped
    ``{"openai": {...}}`` is kept. snake_case keys are camel-cased and enum values
    (reasoning_effort, thinking display, ...) upper-cased, at every level but extra_body."""
    params = dict(invocation_parameters or {})
    families = ("openai", "anthropic", "google", "aws")
    if len(params) == 1 and next(iter(params)) in families:
        family, inner = next(iter(params.items()))
        return {family: graphql_invocation_parameters(dict(inner or {}))}
    family = _INVOCATION_FAMILY.get(provider.upper(), "openai")
    return {family: graphql_invocation_parameters(params)}


def chat_prompt_version_input(
    messages: Sequence[Mapping[str, Any]],
    *,
    template_format: str = "MUSTACHE",
    output_configs: Sequence[Mapping[str, Any]] | None = None,
    tools: Mapping[str, Any] | None = None,
    model_name: str = "gpt-4o-mini",
    provider: str = "OPENAI",
    invocation_parameters: Mapping[str, Any] | None = None,
    version_description: str | None = None,
    tool_description: str | None = None,
    include_explanation: bool = True,
    tool_choice: Mapping[str, Any] | None = None,
    disable_parallel_tool_calls: bool | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """GraphQL ``ChatPromptVersionInput``. ``tools`` (a ``PromptToolsInput``) wins over the
    evaluator tools built from ``output_configs``; with neither the version has no tools."""
    version: dict[str, Any] = {
        "templateFormat": template_format.upper(),
        "template": {"messages": prompt_messages(messages)},
        "invocationParameters": invocation_parameters_input(provider, invocation_parameters),
        "modelProvider": provider.upper(),
        "modelName": model_name,
        "metadata": dict(metadata or {}),
    }
    if tools is not None:
        version["tools"] = dict(tools)
    elif output_configs:
        version["tools"] = evaluator_tools(
            output_configs, description=tool_description,
            include_explanation=include_explanation, tool_choice=tool_choice,
            disable_parallel_tool_calls=disable_parallel_tool_calls)
    if version_description is not None:
        version["description"] = version_description
    return version


class PhoenixAdmin:
    def __init__(self, url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=60)
        self._builtins: dict[str, dict[str, Any]] | None = None

    def close(self) -> None:
        self.http.close()

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def dataset_id(self, name: str) -> str | None:
        response = self.http.get("/v1/datasets", params={"name": name})
        response.raise_for_status()
        found = [d["id"] for d in response.json()["data"] if d["name"] == name]
        return found[0] if found else None

    def create_dataset(
        self,
        name: str,
        examples: Sequence[dict[str, Any]],
        splits: Sequence[Sequence[str] | None] | None = None,
    ) -> str:
        """Create ``name`` from examples of the form {input, output, metadata}; its id."""
        payload: dict[str, Any] = {
            "action": "create",
            "name": name,
            "inputs": [e["input"] for e in examples],
            "outputs": [e.get("output", {}) for e in examples],
            "metadata": [e.get("metadata", {}) for e in examples],
        }
        if splits is not None:
            payload["splits"] = [list(s) if s else None for s in splits]
        response = self.http.post("/v1/datasets/upload", params={"sync": "true"}, json=payload)
        response.raise_for_status()
        return str(response.json()["data"]["dataset_id"])

    def builtin_ids(self) -> dict[str, dict[str, Any]]:
        if self._builtins is None:
            data = self.graphql("{ builtInEvaluators { id name inputSchema } }")
            self._builtins = {e["name"]: e for e in data["builtInEvaluators"]}
        return self._builtins

    def attach_builtin(
        self,
        dataset_id: str,
        builtin: str,
        name: str,
        path_mapping: dict[str, str] | None = None,
        literal_mapping: dict[str, Any] | None = None,
        output_configs: list[dict[str, Any]] | None = None,
    ) -> str:
        """Attach a built-in evaluator to a dataset; returns the dataset evaluator's id."""
        variables: dict[str, Any] = {
            "datasetId": dataset_id,
            "evaluatorId": self.builtin_ids()[builtin]["id"],
            "name": name,
            "inputMapping": {"pathMapping": path_mapping or {},
                             "literalMapping": literal_mapping or {}},
        }
        if output_configs is not None:
            variables["outputConfigs"] = output_configs
        data = self.graphql(
            "mutation($input: CreateDatasetBuiltinEvaluatorInput!) {"
            " createDatasetBuiltinEvaluator(input: $input) { evaluator { id } } }",
            input=variables,
        )
        return str(data["createDatasetBuiltinEvaluator"]["evaluator"]["id"])

    def preview_builtins(self, previews: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run built-ins on the server: each preview is {builtin, context, path, literal}."""
        return self.preview([
            {"evaluator": {"builtInEvaluatorId": self.builtin_ids()[p["builtin"]]["id"]},
             "context": p["context"], "path": p.get("path", {}), "literal": p.get("literal", {})}
            for p in previews])

    def experiments(self, dataset_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/v1/datasets/{dataset_id}/experiments")
        response.raise_for_status()
        return list(response.json()["data"])

    def runs(self, experiment_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/v1/experiments/{experiment_id}/runs")
        response.raise_for_status()
        return list(response.json()["data"])

    def annotations(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every annotation of an experiment's runs (GraphQL: the REST API has no listing)."""
        data = self.graphql(
            "query($id: ID!) { node(id: $id) { ... on Experiment { runs(first: 1000) {"
            " edges { run: node { id exampleId: example { id } annotations { edges {"
            " annotation: node { name label score explanation error annotatorKind"
            " metadata } } } } } } } } }",
            id=experiment_id,
        )
        found = []
        for edge in data["node"]["runs"]["edges"]:
            run = edge["run"]
            for a in run["annotations"]["edges"]:
                found.append({**a["annotation"], "run_id": run["id"],
                              "example_id": run["exampleId"]["id"]})
        return found

    def spans(self, project: str, **filters: Any) -> list[dict[str, Any]]:
        """Every stored span of a project, as the server gives them: ``name``, ``context``,
        ``span_kind``, ``parent_id``, ``status_code``, ``status_message``, ``attributes`` (all
        of them, flattened: ``llm.input_messages.0.message.content``) and ``events`` (with
        their attributes). REST ``GET /v1/projects/{project}/spans``, followed page by page.

        filters: the route's query parameters (``trace_id=[...]``, ``span_kind=["LLM"]``,
        ``parent_id="null"``, ...). A project the server does not have (yet: it is made by its
        first span) gives ``[]``. Spans are stored a while after they are sent: poll.
        """
        from urllib.parse import quote

        path = f"/v1/projects/{quote(project, safe='')}/spans"
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **filters}
            if cursor is not None:
                params["cursor"] = cursor
            response = self.http.get(path, params=params)
            if response.status_code == 404 and not found:
                return []
            response.raise_for_status()
            body = response.json()
            found += body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return found

    # ----- prompts -------------------------------------------------------------------------

    def _prompt_gid(self, prompt_id_or_name: str) -> str:
        """A prompt's GraphQL id from its id or its name."""
        parsed = parse_global_id(prompt_id_or_name)
        if parsed is not None and parsed[0] == "Prompt":
            return prompt_id_or_name
        data = self.graphql(
            "query($name: String!) { prompts(first: 100, filter: {col: name, value: $name}) {"
            " edges { node { id name } } } }",
            name=prompt_id_or_name,
        )
        found = [e["node"]["id"] for e in data["prompts"]["edges"]
                 if e["node"]["name"] == prompt_id_or_name]
        if not found:
            raise LookupError(f"no prompt named {prompt_id_or_name!r}")
        return str(found[0])

    def create_prompt(
        self,
        name: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        description: str | None = None,
        tags: Sequence[str] = (),
        **version_options: Any,
    ) -> dict[str, str]:
        """Create a chat prompt with one version (GraphQL ``createChatPrompt``).

        ``version_options`` are those of :func:`chat_prompt_version_input` (defaults there):

        messages: ``[{"role": "system"|"user"|"assistant"|"tool", "content": str}]``.
        template_format: MUSTACHE, F_STRING or NONE.
        output_configs: categorical configs (``{"name", "values": [{"label", "score"}],
            "optimizationDirection"?}``); each becomes one function tool as an LLM evaluator
            needs it (see :func:`evaluator_tools`). ``tools`` (a raw GraphQL
            ``PromptToolsInput``) replaces them, e.g. to build a prompt the server rejects.
        invocation_parameters: e.g. ``{"temperature": 0.0, "max_tokens": 100}``; placed under
            the provider's family (openai/anthropic/google/aws).
        description: the prompt's description; tool_description: each tool's description.
        tags: version tags to create on the new version (e.g. ``["production"]``).
        Returns ``{"prompt_id", "version_id"}`` (GraphQL global ids, also valid for REST).
        """
        variables: dict[str, Any] = {
            "name": name,
            "promptVersion": chat_prompt_version_input(messages, **version_options),
        }
        if description is not None:
            variables["description"] = description
        if tags:
            variables["tags"] = [{"name": t} for t in tags]
        data = self.graphql(
            "mutation($input: CreateChatPromptInput!) { createChatPrompt(input: $input) {"
            " id version { id } } }",
            input=variables,
        )
        prompt = data["createChatPrompt"]
        return {"prompt_id": str(prompt["id"]), "version_id": str(prompt["version"]["id"])}

    def add_prompt_version(
        self,
        prompt_id_or_name: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        description: str | None = None,
        tags: Sequence[str] = (),
        **version_options: Any,
    ) -> str:
        """Add a version to a prompt (GraphQL ``createChatPromptVersion``); it becomes the
        latest. ``version_options`` are those of :meth:`create_prompt` (template_format,
        output_configs, model_name, ...); ``description`` is the version's description here.
        Returns the new version's global id."""
        variables: dict[str, Any] = {
            "promptId": self._prompt_gid(prompt_id_or_name),
            "promptVersion": chat_prompt_version_input(
                messages, version_description=description, **version_options),
        }
        if tags:
            variables["tags"] = [{"name": t} for t in tags]
        data = self.graphql(
            "mutation($input: CreateChatPromptVersionInput!) {"
            " createChatPromptVersion(input: $input) { version { id } } }",
            input=variables,
        )
        return str(data["createChatPromptVersion"]["version"]["id"])

    def tag_prompt_version(
        self, version_id: str, tag: str, description: str | None = None
    ) -> str:
        """Point tag ``tag`` of the version's prompt at ``version_id`` (GraphQL
        ``setPromptVersionTag``: creates the tag or moves it). Returns the tag's global id."""
        variables: dict[str, Any] = {"promptVersionId": version_id, "name": tag}
        if description is not None:
            variables["description"] = description
        data = self.graphql(
            "mutation($input: SetPromptVersionTagInput!) { setPromptVersionTag(input: $input) {"
            " promptVersionTag { id } } }",
            input=variables,
        )
        return str(data["setPromptVersionTag"]["promptVersionTag"]["id"])

    def delete_prompt_version_tag(self, tag_id: str) -> None:
        """Delete a prompt version tag by its global id (GraphQL ``deletePromptVersionTag``)."""
        self.graphql(
            "mutation($input: DeletePromptVersionTagInput!) {"
            " deletePromptVersionTag(input: $input) { query { __typename } } }",
            input={"promptVersionTagId": tag_id},
        )

    def prompt_version(self, version_id: str) -> dict[str, Any]:
        """A prompt version as REST returns it (``GET /v1/prompt_versions/{id}`` -> data)."""
        response = self.http.get(f"/v1/prompt_versions/{version_id}")
        response.raise_for_status()
        return dict(response.json()["data"])

    def prompt_version_input(self, prompt_id: str, tag: str | None = None) -> dict[str, Any]:
        """The prompt's version tagged ``tag`` (else its latest) as ``{"id", "input"}``, where
        ``input`` is a GraphQL ``ChatPromptVersionInput`` with the version's exact content
        (REST gives the content but turns a null description into ""; GraphQL keeps it)."""
        data = self.graphql(
            "query($id: ID!, $tag: Identifier) { node(id: $id) { ... on Prompt {"
            " version(tagName: $tag) { id description metadata customProvider { id } } } } }",
            id=self._prompt_gid(prompt_id), tag=tag,
        )
        version = data["node"]["version"]
        version_input = version_input_from_rest(self.prompt_version(version["id"]))
        version_input.pop("description", None)
        if version["description"] is not None:
            version_input["description"] = version["description"]
        version_input["metadata"] = version["metadata"] or {}
        if version["customProvider"]:
            version_input["customProviderId"] = version["customProvider"]["id"]
        return {"id": str(version["id"]), "input": version_input}

    # ----- evaluators ----------------------------------------------------------------------

    def attach_llm_evaluator(
        self,
        dataset_id: str,
        name: str,
        prompt_id: str,
        output_configs: Sequence[Mapping[str, Any]],
        path_mapping: Mapping[str, str],
        literal_mapping: Mapping[str, Any] | None = None,
        prompt_version_tag: str | None = None,
        *,
        description: str | None = None,
        follow_latest: bool = False,
    ) -> str:
        """Attach an LLM evaluator backed by an existing prompt to a dataset
        (GraphQL ``createDatasetLlmEvaluator``); returns the dataset evaluator's global id.

        prompt_id: the prompt's global id or name. The version used is the one tagged
            ``prompt_version_tag``, else the prompt's latest. The server copies nothing: it
            reuses that version when the content sent is identical (it is: we send the
            version's own content back), then pins the evaluator to it with a tag of its own,
            ``<name>-evaluator-<hex>``. Moving ``prompt_version_tag`` later does not move the
            evaluator. follow_latest=True deletes that pin tag, so the server then uses the
            prompt's latest version at run time (``LLMEvaluator.promptVersionTag`` is null).
        output_configs: categorical configs; their names and labels must match the version's
            tools (one function per config, label enum = the config's labels).
        path_mapping / literal_mapping: the evaluator's input mapping (template variable ->
            JSONPath into {input, reference, output, metadata} / a fixed value).
        description: the evaluator's description; when set, the server requires every tool's
            description to equal it.
        """
        resolved = self.prompt_version_input(prompt_id, prompt_version_tag)
        version_id, version_input = resolved["id"], resolved["input"]
        variables: dict[str, Any] = {
            "datasetId": dataset_id,
            "name": name,
            "promptVersionId": version_id,
            "promptVersion": version_input,
            "outputConfigs": [{"categorical": categorical_config(c)} for c in output_configs],
            "inputMapping": {"pathMapping": dict(path_mapping),
                             "literalMapping": dict(literal_mapping or {})},
        }
        if description is not None:
            variables["description"] = description
        data = self.graphql(
            "mutation($input: CreateDatasetLLMEvaluatorInput!) {"
            " createDatasetLlmEvaluator(input: $input) { evaluator { id evaluator {"
            " ... on LLMEvaluator { promptVersion { id } promptVersionTag { id } } } } } }",
            input=variables,
        )
        created = data["createDatasetLlmEvaluator"]["evaluator"]
        pinned = created["evaluator"]["promptVersion"]["id"]
        if pinned != version_id:
            raise RuntimeError(
                f"the server made a new prompt version {pinned} instead of reusing {version_id}")
        if follow_latest and created["evaluator"]["promptVersionTag"]:
            self.delete_prompt_version_tag(created["evaluator"]["promptVersionTag"]["id"])
        return str(created["id"])

    def sandbox_config_id(self, language: str = "PYTHON") -> str:
        """An enabled sandbox config whose backend is available for ``language``; Monty's
        seeded ``default-monty-python`` first. Raises LookupError when there is none."""
        data = self.graphql(
            "{ sandboxBackends { backendType status } sandboxProviders { backendType enabled"
            " configs { id name language enabled } } }")
        available = {b["backendType"] for b in data["sandboxBackends"]
                     if b["status"] == "AVAILABLE"}
        candidates = [
            (p["backendType"] != "MONTY", c["name"], c["id"])
            for p in data["sandboxProviders"] if p["enabled"] and p["backendType"] in available
            for c in p["configs"] if c["enabled"] and c["language"] == language.upper()
        ]
        if not candidates:
            raise LookupError(f"no enabled sandbox config for {language} on this server")
        return str(min(candidates)[2])

    def attach_code_evaluator(
        self,
        dataset_id: str,
        name: str,
        source_code: str,
        output_configs: Sequence[Mapping[str, Any]],
        path_mapping: Mapping[str, str],
        literal_mapping: Mapping[str, Any] | None = None,
        *,
        language: str = "PYTHON",
        sandbox_config_id: str | None = None,
        description: str | None = None,
    ) -> str:
        """Create a code evaluator and attach it to a dataset; returns the dataset evaluator's
        global id (GraphQL ``createCodeEvaluator`` then ``createDatasetCodeEvaluator``).

        source_code: defines a top-level ``evaluate(...)`` whose parameters are some of
            ``output``, ``reference``, ``input``, ``metadata`` (the server rejects others).
        output_configs: categorical (``values``), continuous (``lowerBound``/``upperBound``)
            or freeform (``type: "freeform"``) configs, or ready ``AnnotationConfigInput``s.
        path_mapping / literal_mapping: input mapping for the evaluate parameters.
        sandbox_config_id: defaults to :meth:`sandbox_config_id` (Monty on a stock server).
        The code evaluator's own name must be unique server-wide, so a short suffix is added
        when ``name`` is taken; the dataset evaluator keeps ``name``.
        """
        configs = [annotation_config(c) for c in output_configs]
        mapping = {"pathMapping": dict(path_mapping),
                   "literalMapping": dict(literal_mapping or {})}
        sandbox = sandbox_config_id or self.sandbox_config_id(language)
        evaluator_id = None
        for attempt in range(3):
            variables: dict[str, Any] = {
                "name": name if attempt == 0 else f"{name}-{secrets.token_hex(3)}",
                "sourceCode": source_code,
                "language": language.upper(),
                "sandboxConfigId": sandbox,
                "outputConfigs": configs,
                "inputMapping": mapping,
            }
            if description is not None:
                variables["description"] = description
            try:
                data = self.graphql(
                    "mutation($input: CreateCodeEvaluatorInput!) {"
                    " createCodeEvaluator(input: $input) { evaluator { id } } }",
                    input=variables,
                )
            except RuntimeError as error:
                if "Could not create code evaluator" in str(error) and attempt < 2:
                    continue
                raise
            evaluator_id = data["createCodeEvaluator"]["evaluator"]["id"]
            break
        dataset_variables: dict[str, Any] = {
            "datasetId": dataset_id, "evaluatorId": evaluator_id, "name": name,
            "inputMapping": mapping, "outputConfigs": configs,
        }
        if description is not None:
            dataset_variables["description"] = description
        data = self.graphql(
            "mutation($input: CreateDatasetCodeEvaluatorInput!) {"
            " createDatasetCodeEvaluator(input: $input) { evaluator { id } } }",
            input=dataset_variables,
        )
        return str(data["createDatasetCodeEvaluator"]["evaluator"]["id"])

    def dataset_evaluators(self, dataset_id: str) -> list[dict[str, Any]]:
        """The evaluators attached to a dataset, with what the server runs: for LLM evaluators
        the prompt, its pin tag and the resolved ``promptVersion`` (id, template, tools...)."""
        data = self.graphql(
            "query($id: ID!) { node(id: $id) { ... on Dataset { datasetEvaluators(first: 100) {"
            " edges { node { id name description inputMapping { pathMapping literalMapping }"
            " project { id name }"
            " outputConfigs { __typename"
            "  ... on CategoricalAnnotationConfig { name optimizationDirection"
            "   values { label score } }"
            "  ... on ContinuousAnnotationConfig { name optimizationDirection"
            "   lowerBound upperBound }"
            "  ... on FreeformAnnotationConfig { name } }"
            " evaluator { __typename id name kind"
            "  ... on LLMEvaluator { prompt { id name } promptVersionTag { id name }"
            "   promptVersion { id sequenceNumber isLatest templateFormat modelName modelProvider"
            "    tags { name } } }"
            "  ... on CodeEvaluator { sourceCode language inputSchema"
            "   sandboxConfig { id name } } } } } } } } }",
            id=dataset_id,
        )
        return [e["node"] for e in data["node"]["datasetEvaluators"]["edges"]]

    # ----- previews ------------------------------------------------------------------------

    @staticmethod
    def inline_llm_evaluator(
        name: str,
        messages: Sequence[Mapping[str, Any]],
        output_configs: Sequence[Mapping[str, Any]],
        **version_options: Any,
    ) -> dict[str, Any]:
        """``EvaluatorPreviewInput`` for an unsaved LLM evaluator; ``version_options`` are the
        keyword arguments of :func:`chat_prompt_version_input` (template_format, model_name,
        provider, invocation_parameters, tools, ...)."""
        return {"inlineLlmEvaluator": {
            "name": name,
            "promptVersion": chat_prompt_version_input(
                messages, output_configs=output_configs, **version_options),
            "outputConfigs": [{"categorical": categorical_config(c)} for c in output_configs],
        }}

    def inline_code_evaluator(
        self,
        name: str,
        source_code: str,
        output_configs: Sequence[Mapping[str, Any]],
        *,
        language: str = "PYTHON",
        sandbox_config_id: str | None = None,
    ) -> dict[str, Any]:
        """``EvaluatorPreviewInput`` for an unsaved code evaluator (sandbox: see
        :meth:`sandbox_config_id`; pass ``sandbox_config_id=""`` to send none)."""
        item: dict[str, Any] = {
            "name": name, "language": language.upper(), "sourceCode": source_code,
            "outputConfigs": [annotation_config(c) for c in output_configs],
        }
        if sandbox_config_id is None:
            sandbox_config_id = self.sandbox_config_id(language)
        if sandbox_config_id:
            item["sandboxConfigId"] = sandbox_config_id
        return {"inlineCodeEvaluator": item}

    def preview(
        self,
        previews: Sequence[Mapping[str, Any]],
        credentials: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run evaluators server-side (GraphQL ``evaluatorPreviews``), all in one request.

        Each preview: ``{"evaluator": EvaluatorPreviewInput, "context": {...},
        "inputMapping": {"pathMapping", "literalMapping"}}``, or with ``"path"`` /
        ``"literal"`` instead of ``inputMapping``. EvaluatorPreviewInput is exactly one of
        ``builtInEvaluatorId``, ``codeEvaluatorId``, ``inlineLlmEvaluator`` (see
        :meth:`inline_llm_evaluator`), ``inlineCodeEvaluator``. credentials: e.g.
        ``{"OPENAI_API_KEY": "..."}`` for LLM evaluators.

        Returns the server's results in order, flattened: an evaluator with several output
        configs gives several. Each: ``{"evaluatorName", "error", "annotation": {name,
        annotatorKind, label, score, explanation, metadata, traceId} | None}``. A request-level
        problem (unknown id, invalid prompt, missing sandbox) fails the whole call.
        """
        items = []
        for p in previews:
            mapping = p.get("inputMapping") or {
                "pathMapping": dict(p.get("path") or {}),
                "literalMapping": dict(p.get("literal") or {})}
            items.append({"evaluator": dict(p["evaluator"]), "context": p.get("context", {}),
                          "inputMapping": mapping})
        payload: dict[str, Any] = {"previews": items}
        if credentials:
            payload["credentials"] = [{"envVarName": k, "value": v}
                                      for k, v in credentials.items()]
        data = self.graphql(
            "mutation($input: EvaluatorPreviewsInput!) { evaluatorPreviews(input: $input) {"
            " results { evaluatorName error annotation { name annotatorKind label score"
            " explanation metadata traceId } } } }",
            input=payload,
        )
        return list(data["evaluatorPreviews"]["results"])

    def classification_configs(self, labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Phoenix's built-in LLM judge templates (GraphQL ``classificationEvaluatorConfigs``):
        ``[{"name", "description", "optimizationDirection", "choices": {label: score},
        "messages": [{"role": "USER", "content": str}]}]``. ``labels`` filters (the UI asks for
        ``["promoted_dataset_evaluator"]``). Their text belongs to Phoenix: fetch, don't copy."""
        data = self.graphql(
            "query($labels: [String!]) { classificationEvaluatorConfigs(labels: $labels) {"
            " name description optimizationDirection choices messages { role content {"
            " __typename ... on TextContentPart { text { text } } } } } }",
            labels=list(labels) if labels else None,
        )
        out = []
        for config in data["classificationEvaluatorConfigs"]:
            messages = [{"role": m["role"], "content": "".join(
                part["text"]["text"] for part in m["content"] if part.get("text"))}
                for m in config["messages"]]
            out.append({**config, "messages": messages})
        return out

    def run_server_experiment(
        self,
        dataset_id: str,
        dataset_evaluator_ids: Sequence[str],
        messages: Sequence[Mapping[str, Any]],
        *,
        model_name: str = "gpt-4o-mini",
        provider: str = "OPENAI",
        template_format: str = "MUSTACHE",
        invocation_parameters: Mapping[str, Any] | None = None,
        repetitions: int = 1,
        experiment_name: str | None = None,
        credentials: Mapping[str, str] | None = None,
        timeout: float = 300,
        prompt_version: Mapping[str, Any] | None = None,
        template_variables_path: str | None = None,
        appended_messages_path: str | None = None,
    ) -> str:
        """Let the server run a prompt task over a dataset and evaluate it with the given
        dataset evaluators, the way the playground does (GraphQL subscription
        ``chatCompletionOverDataset`` over HTTP multipart). Waits until the server has
        finished and returns the experiment's global id (RuntimeError if the job did not end
        COMPLETED). Template variables resolve under the
        example's ``input`` (``{{q}}`` is ``input.q``); the task output the evaluators see is
        ``{"messages": [{"role": "assistant", "content": ...}], "available_tools": [...]}``.

        prompt_version: a whole GraphQL ``ChatPromptVersionInput`` (for instance
        :meth:`prompt_version_input`'s ``input``), run instead of one built from ``messages``.
        template_variables_path / appended_messages_path: the playground's settings (server
        defaults when None).
        """
        payload: dict[str, Any] = {
            "promptVersion": dict(prompt_version) if prompt_version is not None else
            chat_prompt_version_input(
                messages, template_format=template_format, model_name=model_name,
                provider=provider, invocation_parameters=invocation_parameters),
            "repetitions": repetitions,
            "datasetId": dataset_id,
            "streamModelOutput": False,
        }
        if experiment_name is not None:
            payload["experimentName"] = experiment_name
        if template_variables_path is not None:
            payload["templateVariablesPath"] = template_variables_path
        if appended_messages_path is not None:
            payload["appendedMessagesPath"] = appended_messages_path
        if credentials:
            payload["credentials"] = [{"envVarName": k, "value": v}
                                      for k, v in credentials.items()]
        payload["evaluators"] = self._dataset_evaluator_inputs(dataset_id, dataset_evaluator_ids)
        query = (
            "subscription($input: ChatCompletionOverDatasetInput!) {"
            " chatCompletionOverDataset(input: $input) { __typename"
            " ... on ChatCompletionSubscriptionExperiment { experiment { id } } } }")
        experiment_id = None
        errors: list[Any] = []
        with self.http.stream(
            "POST", "/graphql", json={"query": query, "variables": {"input": payload}},
            headers={"accept": 'multipart/mixed;subscriptionSpec="1.0", application/json'},
            timeout=timeout,
        ) as response:
            response.raise_for_status()
            body = "".join(response.iter_text())
        for part in body.split("--graphql"):
            start = part.find("{")
            if start < 0:
                continue
            try:
                message = json.loads(part[start:])
            except ValueError:
                continue
            payload_part = message.get("payload") or {}
            errors += payload_part.get("errors") or message.get("errors") or []
            node = (payload_part.get("data") or {}).get("chatCompletionOverDataset") or {}
            if node.get("experiment"):
                experiment_id = node["experiment"]["id"]
        if experiment_id is None:
            raise RuntimeError(f"the server started no experiment: {errors or body[:500]}")
        deadline = time.monotonic() + 30
        while True:
            job = self.graphql(
                "query($id: ID!) { node(id: $id) { ... on Experiment { job { status"
                " lastError { message } } } } }", id=experiment_id)["node"]["job"]
            if job["status"] != "RUNNING" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if job["status"] != "COMPLETED":
            # e.g. STOPPED with no runs when an evaluator cannot be built (disabled sandbox);
            # the reason is then only in the server's log
            raise RuntimeError(f"experiment {experiment_id} ended {job['status']}: "
                               f"{(job['lastError'] or {}).get('message', 'see the server log')}")
        return str(experiment_id)

    def _dataset_evaluator_inputs(
        self, dataset_id: str, ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        by_id = {de["id"]: de for de in self.dataset_evaluators(dataset_id)}
        return [{"id": i, "name": by_id[i]["name"],
                 "inputMapping": {"pathMapping": {}, "literalMapping": {}}} for i in ids]
