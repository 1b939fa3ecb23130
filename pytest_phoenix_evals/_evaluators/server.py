"""Evaluators run by the Phoenix server itself, through its ``evaluatorPreviews`` mutation.

With ``--phoenix-evaluate-on=server`` every attached evaluator runs here, and attached code
evaluators run here unless ``--phoenix-allow-code-evaluators`` lets them run locally. The server
then uses its own provider credentials, secrets and sandboxes, and the results are the server's
by construction. LLM evaluators are sent inline (the server has no preview of a stored one): the
prompt version it would run, read over REST, is turned back into its GraphQL input.

Batching: many previews go in one request as aliased fields of one mutation (the server's
alias limit is 50). Aliases rather than one ``previews`` list, because the server flattens a
list's results (an answer whose tool matches no config yields none) and fails the whole list
on any request-level problem; with aliases every preview gets its own results or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .protocol import annotation_names
from .._core.types import NOT_RUN, Example, OutputConfig, Score

MAX_ALIASES = 50
#: Seconds a preview waits for others to share its request.
LINGER = 0.005

_ROLES = {"user": "USER", "system": "SYSTEM", "assistant": "AI", "ai": "AI", "tool": "TOOL",
          "model": "AI", "developer": "SYSTEM"}
_TOOL_CHOICE_IN = {"none": "none", "zero_or_more": "zeroOrMore", "one_or_more": "oneOrMore"}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


_ENUM_KEYS = ("display", "effort", "thinkingLevel", "reasoningEffort")


def _gql_invocation_value(value: dict[str, Any]) -> dict[str, Any]:
    """REST invocation parameters (snake_case, lower-case enums) to the GraphQL input form
    (camelCase keys, upper-case enum values); ``extraBody`` is passed through untouched."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        key = _camel(key)
        if isinstance(item, dict) and key != "extraBody":
            item = _gql_invocation_value(item)
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
            else:
                content.append({"toolResult": {"toolCallId": part["tool_call_id"],
                                               "result": part["tool_result"]}})
        role = str(message["role"]).lower()
        role = _ROLES.get(role, role.upper())
        messages.append({"role": role, "content": content})
    raw_params = dict(version.get("invocation_parameters") or {})
    family = str(raw_params.pop("type", "openai"))
    gql_family = family if family in ("anthropic", "google", "aws") else "openai"
    inner = _gql_invocation_value(dict(raw_params.get(family) or {}))
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


_RESULTS = ("{ evaluatorName error annotation { name annotatorKind label score explanation "
            "metadata traceId } }")


class PreviewBatcher:
    """Sends previews to the server, many per request; use on the engine's loop only."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway
        self._queue: list[tuple[dict[str, Any], asyncio.Future[list[dict[str, Any]]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, preview: dict[str, Any]) -> list[dict[str, Any]]:
        """The server's results for one preview; PreviewRefused with its error if refused."""
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._queue.append((preview, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(LINGER)
        while self._queue:
            batch, self._queue = self._queue[:MAX_ALIASES], self._queue[MAX_ALIASES:]
            await self._send(batch)

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[Any]]]) -> None:
        params = ", ".join(f"$p{i}: EvaluatorPreviewsInput!" for i in range(len(batch)))
        fields = " ".join(f"p{i}: evaluatorPreviews(input: $p{i}) {{ results {_RESULTS} }}"
                          for i in range(len(batch)))
        variables = {f"p{i}": {"previews": [preview]} for i, (preview, _) in enumerate(batch)}
        try:
            payload = await self._gateway.agraphql_raw(f"mutation({params}) {{ {fields} }}",
                                                       variables, "running evaluator previews")
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(PreviewRefused(str(exc)))
            return
        errors: dict[str, str] = {}
        for error in payload.get("errors") or ():
            path = error.get("path") or ["?"]
            errors.setdefault(str(path[0]), error.get("message", str(error)))
        data = payload.get("data") or {}
        for index, (_, future) in enumerate(batch):
            alias = f"p{index}"
            if future.done():
                continue
            if data.get(alias) is None:
                future.set_exception(PreviewRefused(errors.get(alias) or "; ".join(
                    errors.values()) or "the server returned no result"))
            else:
                future.set_result(list(data[alias]["results"]))


class PreviewRefused(Exception):
    """The server refused to run a preview (no sandbox, no provider key, ...)."""


@dataclass
class ServerEvaluator:
    """An attached evaluator that the Phoenix server runs (``evaluatorPreviews``).

    ``preview`` is the ``EvaluatorPreviewInput`` (built-in id, inline LLM or inline code);
    results are renamed the way the server's experiment runner names annotations.
    """

    name: str
    kind: str
    output_configs: Sequence[OutputConfig]
    preview: dict[str, Any]
    path_mapping: dict[str, str] = field(default_factory=dict)
    literal_mapping: dict[str, Any] = field(default_factory=dict)
    batcher: PreviewBatcher | None = None
    # Why the annotation was not computed when the server refuses to run it at all.
    refused: str = "the Phoenix server could not run this evaluator"

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        assert self.batcher is not None
        start = datetime.now(timezone.utc)
        names = annotation_names(self.output_configs) or [self.name]
        kind = "LLM" if self.kind == "LLM" else "CODE"
        item = {"evaluator": self.preview, "context": context,
                "inputMapping": {"pathMapping": self.path_mapping,
                                 "literalMapping": self.literal_mapping}}
        try:
            results = await self.batcher.run(item)
        except PreviewRefused as exc:
            return [Score(name=names[0], evaluator=self.name, annotator_kind=kind,
                          error=f"{NOT_RUN}{self.refused}: {exc}", start_time=start,
                          end_time=datetime.now(timezone.utc))]
        end = datetime.now(timezone.utc)
        if len(results) == 1 and results[0].get("error"):
            config = self.output_configs[0] if len(self.output_configs) == 1 else None
            return [Score(name=names[0], evaluator=self.name, annotator_kind=kind,
                          error=results[0]["error"], config=config, start_time=start,
                          end_time=end)]
        by_config = {config.name: (config, name)
                     for config, name in zip(self.output_configs, names)}
        scores: dict[str, Score] = {}
        for result in results:
            annotation = result.get("annotation") or {}
            config_name = self._config_of(str(result.get("evaluatorName") or ""))
            if config_name not in by_config or config_name in scores:
                continue
            config, name = by_config[config_name]
            scores[config_name] = Score(
                name=name, evaluator=self.name,
                annotator_kind=annotation.get("annotatorKind") or kind,
                label=annotation.get("label"), score=annotation.get("score"),
                explanation=annotation.get("explanation"), error=result.get("error"),
                metadata=dict(annotation.get("metadata") or {}), config=config,
                start_time=start, end_time=end)
        return [scores.get(config.name) or Score(
            name=name, evaluator=self.name, annotator_kind=kind, config=config,
            error=f"the server returned no result for {config.name!r}", start_time=start,
            end_time=end) for config, name in by_config.values()]

    def _config_of(self, preview_name: str) -> str:
        """The config a preview result belongs to: previews are named ``<name>`` (one config)
        or ``<name>.<config>`` (several), after the inline name or the built-in's."""
        if len(self.output_configs) == 1:
            return self.output_configs[0].name
        for config in self.output_configs:
            if preview_name.endswith(f".{config.name}"):
                return config.name
        return preview_name


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
