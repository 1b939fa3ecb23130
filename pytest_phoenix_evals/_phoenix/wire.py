"""Phoenix's JSON, both ways: REST and GraphQL answers as the plugin's data, and the plugin's
data as GraphQL inputs (prompt versions, output configs, evaluator previews).

Pure functions of plain data; no HTTP here (the gateway sends and receives).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._core.types import Direction, Example, OutputConfig

# --- answers -> the plugin's data ---------------------------------------------------------


def output_config(raw: Mapping[str, Any]) -> OutputConfig:
    """A GraphQL ``AnnotationConfig`` (``outputConfigs`` of a dataset evaluator)."""
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


def input_mapping(node: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """A dataset evaluator's ``inputMapping`` as (path mapping, literal mapping)."""
    mapping = node.get("inputMapping") or {}
    return dict(mapping.get("pathMapping") or {}), dict(mapping.get("literalMapping") or {})


def example(raw: Mapping[str, Any], *, dataset_name: str, dataset_id: str, version_id: str,
            splits: Sequence[str] = ()) -> Example:
    """A REST dataset example (``output`` is the reference). Its id is the GlobalID
    (``node_id``): an example uploaded with an id of its own (``example_ids``, such as the
    failing spans a run adds) lists that id as ``id``, and runs are posted on the GlobalID."""
    return Example(id=raw.get("node_id") or raw["id"], input=raw.get("input"),
                   reference=raw.get("output"),
                   metadata=dict(raw.get("metadata") or {}), dataset_name=dataset_name,
                   dataset_id=dataset_id, version_id=version_id, splits=tuple(splits))


def experiment_run(node: Mapping[str, Any]) -> dict[str, Any]:
    """A GraphQL ``ExperimentRun`` as {example_id, repetition, error, annotations}; each
    annotation {name, label, score, explanation, error, annotatorKind}."""
    return {"example_id": node["example"]["id"], "repetition": node["repetitionNumber"],
            "error": node["error"],
            "annotations": [a["node"] for a in node["annotations"]["edges"]]}


@dataclass(frozen=True)
class JudgeTemplate:
    """One of the server's built-in classification judges (``classificationEvaluatorConfigs``).

    ``messages`` are ``{"role": <lower case>, "content": <text>}``; ``choices`` are the labels
    with their scores, in the server's order.
    """

    name: str
    description: str | None
    direction: Direction
    choices: tuple[tuple[str, float], ...]
    messages: tuple[dict[str, str], ...]


def judge_template(raw: Mapping[str, Any]) -> JudgeTemplate:
    return JudgeTemplate(
        name=raw["name"], description=raw.get("description"),
        direction=raw["optimizationDirection"],
        choices=tuple((label, float(score)) for label, score in raw["choices"].items()),
        messages=tuple({"role": m["role"].lower(),
                        "content": "".join(part["text"]["text"] for part in m["content"]
                                           if part.get("text"))} for m in raw["messages"]))


@dataclass(frozen=True)
class PreviewAnswer:
    """The server's answer to one evaluator preview: its results, or why there are none."""

    results: list[dict[str, Any]] | None
    error: str | None = None


# --- the plugin's data -> GraphQL inputs --------------------------------------------------

#: Message roles (lower case) -> GraphQL ``PromptMessageRole``.
GRAPHQL_ROLES = {"user": "USER", "system": "SYSTEM", "assistant": "AI", "ai": "AI",
                 "tool": "TOOL", "model": "AI", "developer": "SYSTEM"}
_TOOL_CHOICE_IN = {"none": "none", "zero_or_more": "zeroOrMore", "one_or_more": "oneOrMore"}
_ENUM_KEYS = ("display", "effort", "thinkingLevel", "reasoningEffort")


def camel_case(key: str) -> str:
    """``snake_case`` -> ``camelCase`` (REST keys -> GraphQL input fields)."""
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def graphql_invocation_parameters(value: Mapping[str, Any]) -> dict[str, Any]:
    """REST invocation parameters (snake_case, lower-case enums) to the GraphQL input form
    (camelCase keys, upper-case enum values); ``extraBody`` is passed through untouched."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        key = camel_case(key)
        if isinstance(item, dict) and key != "extraBody":
            item = graphql_invocation_parameters(item)
        elif isinstance(item, str) and key in _ENUM_KEYS:
            item = item.upper()
        out[key] = item
    return out


def version_input_from_rest(version: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a REST prompt version (``GET /v1/prompt_versions/{id}`` -> ``data``) back into the
    GraphQL ``ChatPromptVersionInput`` with identical content (chat templates only)."""
    template = version["template"]
    if template.get("type") != "chat":
        raise ValueError("only chat prompt versions can back an LLM evaluator")
    messages = []
    for message in template["messages"]:
        parts = message["content"]
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        content = []
        for part in parts:
            if part["type"] == "text":
                content.append({"text": {"text": part["text"]}})
            elif part["type"] == "tool_call":
                call = part["tool_call"]
                content.append({"toolCall": {"toolCallId": part["tool_call_id"], "toolCall": {
                    "type": call.get("type", "function"), "name": call["name"],
                    "arguments": call["arguments"]}}})
            else:  # GraphQL takes the result as JSON text (the server parses it back)
                content.append({"toolResult": {"toolCallId": part["tool_call_id"],
                                               "result": json.dumps(part["tool_result"])}})
        role = str(message["role"]).lower()
        role = GRAPHQL_ROLES.get(role, role.upper())
        messages.append({"role": role, "content": content})
    raw_params = dict(version.get("invocation_parameters") or {})
    family = str(raw_params.pop("type", "openai"))
    gql_family = family if family in ("anthropic", "google", "aws") else "openai"
    inner = graphql_invocation_parameters(dict(raw_params.get(family) or {}))
    if gql_family == "anthropic" and isinstance(inner.get("thinking"), dict):
        thinking = dict(inner["thinking"])
        kind = str(thinking.pop("type")).lower()
        inner["thinking"] = {kind: thinking if kind != "disabled" else {"disabled": True}}
    out: dict[str, Any] = {
        "templateFormat": version["template_format"],
        "template": {"messages": messages},
        "invocationParameters": {gql_family: inner},
        "modelProvider": version["model_provider"],
        "modelName": version["model_name"],
        "metadata": dict(version.get("metadata") or {}),
    }
    if version.get("description") is not None:
        out["description"] = version["description"]
    tools = version.get("tools")
    if tools:
        gql_tools: dict[str, Any] = {"tools": [
            {"function": {k: v for k, v in t["function"].items()}} if t["type"] == "function"
            else {"raw": t["raw"]} for t in tools["tools"]]}
        choice = tools.get("tool_choice")
        if choice:
            gql_tools["toolChoice"] = (
                {"functionName": choice["function_name"]}
                if choice["type"] == "specific_function"
                else {_TOOL_CHOICE_IN[choice["type"]]: True})
        if tools.get("disable_parallel_tool_calls") is not None:
            gql_tools["disableParallelToolCalls"] = tools["disable_parallel_tool_calls"]
        out["tools"] = gql_tools
    if version.get("response_format"):
        fmt = version["response_format"]
        out["responseFormat"] = {"type": fmt["type"], "jsonSchema": fmt["json_schema"]}
    return out


def config_input(config: OutputConfig) -> dict[str, Any]:
    """An output config as the server's GraphQL ``AnnotationConfigInput``."""
    if config.kind == "CATEGORICAL":
        return {"categorical": {"name": config.name, "optimizationDirection": config.direction,
                                "values": [{"label": label, "score": score}
                                           for label, score in config.values]}}
    inner: dict[str, Any] = {"name": config.name, "optimizationDirection": config.direction}
    if config.lower_bound is not None:
        inner["lowerBound"] = config.lower_bound
    if config.upper_bound is not None:
        inner["upperBound"] = config.upper_bound
    if config.kind == "FREEFORM":
        if config.threshold is not None:
            inner["threshold"] = config.threshold
        return {"freeform": inner}
    return {"continuous": inner}


# ``EvaluatorPreviewInput.evaluator``: what the server runs for one preview.


def builtin_preview(builtin_id: str) -> dict[str, Any]:
    return {"builtInEvaluatorId": builtin_id}


def llm_preview(name: str, version: Mapping[str, Any], configs: Sequence[OutputConfig]
                ) -> dict[str, Any]:
    return {"inlineLlmEvaluator": {
        "name": name, "promptVersion": version_input_from_rest(version),
        "outputConfigs": [config_input(c) for c in configs]}}


def code_preview(name: str, source: str, language: str, configs: Sequence[OutputConfig],
                 sandbox_config_id: str | None) -> dict[str, Any]:
    inline: dict[str, Any] = {"name": name, "language": language, "sourceCode": source,
                              "outputConfigs": [config_input(c) for c in configs]}
    if sandbox_config_id:
        inline["sandboxConfigId"] = sandbox_config_id
    return {"inlineCodeEvaluator": inline}
