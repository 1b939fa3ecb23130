"""LLM evaluators: a prompt version's messages and tools, sent to a judge, read back as scores.

One class serves the judges attached to a dataset in Phoenix (their prompt versions come from
Phoenix prompt management) and the judges written in code (``qa_correctness``,
``hallucination``, the server's classification templates). Each step is the server's
(``LLMEvaluator.evaluate`` in ``phoenix/server/api/evaluators.py``): the input schema comes from
the template's variables; inputs are mapped from the context; every message is rendered (text
parts of a multi-part message are joined); the judge must call a tool; each tool call is matched
to the output config of the same name, and its ``label`` becomes the annotation's label, the
label's score in the config its score, and ``explanation`` its explanation.

Where we differ, on purpose: a label outside the config's labels is an evaluator error here (the
server stores it with no score), a config whose tool was not called is reported as an error
(the server silently skips it), and every malformed answer quotes what the judge said.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..._core.naming import annotation_names
from ..._core.types import Example, OutputConfig, Score
from ..mapping import MappingError, map_inputs
from ..templates import TemplateError, input_schema, render, roots, unfilled
from .client import (
    Completion,
    JudgeError,
    Judges,
    openai_message,
    request_params,
    responses_params,
)


@dataclass
class PromptSpec:
    """A chat prompt version: what is sent to the judge (the server's PromptVersion shape)."""

    prompt_name: str
    messages: list[dict[str, Any]]
    template_format: str = "MUSTACHE"
    tools: dict[str, Any] | None = None
    invocation_parameters: dict[str, Any] | None = None
    model_provider: str = "OPENAI"
    model_name: str | None = None
    version_id: str | None = None
    response_format: dict[str, Any] | None = None
    # The tag this version was read by (``prompt:NAME@TAG``), recorded on its annotations.
    version_tag: str | None = None

    @classmethod
    def from_phoenix(cls, prompt_name: str, data: dict[str, Any]) -> PromptSpec:
        template = data.get("template") or {}
        if template.get("type") != "chat":
            raise ValueError(f"prompt {prompt_name!r} has a {template.get('type')!r} template; "
                             f"LLM evaluators need a chat template")
        return cls(prompt_name=prompt_name, messages=list(template.get("messages") or ()),
                   template_format=data.get("template_format") or "MUSTACHE",
                   tools=data.get("tools"), invocation_parameters=data.get("invocation_parameters"),
                   model_provider=data.get("model_provider") or "OPENAI",
                   model_name=data.get("model_name"), version_id=data.get("id"),
                   response_format=data.get("response_format"))

    def texts(self) -> list[str]:
        """Every template text, in order (strings and the text parts of part lists)."""
        out: list[str] = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                out.append(content)
            else:
                out.extend(part["text"] for part in content or () if part.get("type") == "text")
        return out

    def render_messages(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        rendered = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                text = render(content, self.template_format, values)
            else:
                text = "".join(render(part["text"], self.template_format, values)
                               for part in content or () if part.get("type") == "text")
            rendered.append(openai_message(message.get("role", "user"), text))
        return rendered


def label_tool(name: str, labels: Sequence[str], description: str) -> dict[str, Any]:
    """A function tool whose call carries a ``label`` out of ``labels`` and an explanation."""
    return {"type": "function", "function": {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {
                "explanation": {"type": "string",
                                "description": "Brief reasoning, written before the label."},
                "label": {"type": "string", "enum": list(labels),
                          "description": "The verdict: one of the allowed labels."},
            },
            "required": ["explanation", "label"],
        }}}


@dataclass
class LLMJudge:
    """An LLM evaluator; ``judges`` (the session's judge clients) is set before it runs."""

    name: str
    prompt: PromptSpec | None
    output_configs: Sequence[OutputConfig]
    path_mapping: dict[str, str] = field(default_factory=dict)
    literal_mapping: dict[str, Any] = field(default_factory=dict)
    # tool name -> output config name; by default each tool is named after its config
    tool_configs: dict[str, str] | None = None
    project_name: str | None = None
    # Inputs from the context in a judge's own way (catalogue judges); default: the server's
    # input mapping with the schema inferred from the template.
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Why this judge cannot run (its prompt could not be loaded, ...): every case errors so.
    problem: str | None = None
    # Paths of a mapping written in code that Phoenix would refuse (a usage error at start).
    mapping_problems: list[str] = field(default_factory=list)
    # A judge prompt of prompt management run on its own (``--phoenix-benchmark=prompt:NAME``):
    # its variables are filled as the server fills a prompt's variables over the whole
    # context (``{{input.question}}`` reaches into the input; a whole object renders as the
    # server's formatter renders it), not cast to strings by an input schema.
    whole_context: bool = False
    judges: Judges | None = None
    tracing: Any = None
    kind: str = "LLM"

    def __post_init__(self) -> None:
        self._schema: dict[str, Any] | None = None

    @property
    def model(self) -> str | None:
        if self.prompt is None:
            return None
        return self.judges.model(self.prompt.model_name) if self.judges else self.prompt.model_name

    def input_schema(self) -> dict[str, Any]:
        if self._schema is None:
            assert self.prompt is not None
            self._schema = input_schema(self.prompt.texts(), self.prompt.template_format)
        return self._schema

    def unfilled(self, context: dict[str, Any]) -> list[str]:
        """With ``whole_context``: the template's variables ``context`` cannot fill (none for
        other judges: their inputs are mapped and checked by the input schema)."""
        if not self.whole_context or self.prompt is None:
            return []
        missing: list[str] = []
        for text in self.prompt.texts():
            missing += [name for name in unfilled(text, self.prompt.template_format, context)
                        if name not in missing]
        return missing

    def template_values(self, context: dict[str, Any]) -> dict[str, Any]:
        """What the template is rendered with for ``context``; MappingError, TemplateError or
        ValueError when it cannot be filled."""
        if self.whole_context:
            assert self.prompt is not None
            missing = self.unfilled(context)
            if missing:
                raise TemplateError(f"template variable(s) {', '.join(missing)} cannot be "
                                    f"filled from the context")
            needed: set[str] = set()
            for text in self.prompt.texts():
                needed |= roots(text, self.prompt.template_format)
            return {key: value for key, value in context.items() if key in needed}
        if self.prepare is not None:
            return self.prepare(context)
        return map_inputs(input_schema=self.input_schema(), path_mapping=self.path_mapping,
                          literal_mapping=self.literal_mapping, context=context)

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        start = datetime.now(UTC)
        names = annotation_names(self.output_configs) or [self.name]
        if self.problem is not None or self.prompt is None:
            return [self._error(self.problem or "no prompt", start)]
        if self.tracing is None:
            return await self._run(context, names, start, None)
        with self.tracing.evaluator(self.name, context, example=example,
                                    metadata=self._prompt_metadata()) as trace:
            scores = await self._run(context, names, start, trace)
            errors = [s.error for s in scores if s.error]
            trace.finish([{"name": s.name, "label": s.label, "score": s.score}
                          for s in scores if not s.error],
                         errors[0] if errors and len(errors) == len(scores) else None)
        for score in scores:
            score.trace_id = trace.trace_id
        return scores

    async def _run(self, context: dict[str, Any], names: list[str], start: datetime,
                   trace: Any) -> list[Score]:
        try:
            return await self._evaluate(context, names, start, trace)
        except _Failed as failed:
            return [self._error(failed.message, start, failed.hint, failed.completion)]

    async def _evaluate(self, context: dict[str, Any], names: list[str], start: datetime,
                        trace: Any) -> list[Score]:
        assert self.prompt is not None and self.judges is not None
        try:
            values = self.template_values(context)
            messages = self.prompt.render_messages(values)
        except MappingError as exc:
            raise _Failed(str(exc), exc.hint) from None
        except (TemplateError, ValueError) as exc:
            raise _Failed(str(exc)) from None
        model = self.judges.model(self.prompt.model_name)
        provider = self.prompt.model_provider
        api = self.judges.api(provider, model)
        build = responses_params if api == "responses" else request_params
        params, extra_body = build(model, messages, self.prompt.tools,
                                   self.prompt.invocation_parameters)
        try:
            if trace is None:
                completion = await self.judges.complete(provider, params, extra_body, api)
            else:
                with trace.llm(model, provider, params) as span:  # records a JudgeError
                    completion = await self.judges.complete(provider, params, extra_body, api)
                    span.set_attributes(llm_output_attributes(completion))
        except JudgeError as exc:
            raise _Failed(str(exc)) from None
        return self._scores(completion, names, start)

    def _scores(self, completion: Completion, names: list[str], start: datetime) -> list[Score]:
        if not completion.tool_calls:
            raise _Failed(f"No tool calls received from LLM; the judge answered: "
                          f"{completion.quoted()}", completion=completion)
        by_config = {config.name: (config, name)
                     for config, name in zip(self.output_configs, names)}
        tools = self.tool_configs or {config.name: config.name for config in self.output_configs}
        found: dict[str, Score] = {}
        for call in completion.tool_calls:
            config_name = tools.get(call.name)
            if config_name is None or config_name in found:
                continue
            config, annotation = by_config[config_name]
            try:
                arguments = json.loads(call.arguments)
            except json.JSONDecodeError as exc:
                raise _Failed(f"{exc}; the judge's arguments for {call.name} were "
                              f"{call.arguments[:500]!r}", completion=completion) from None
            label = arguments.get("label") if isinstance(arguments, dict) else None
            if label is None:
                raise _Failed(f"LLM response missing required 'label' field in tool call "
                              f"arguments; the judge answered: {completion.quoted()}",
                              completion=completion)
            scores = dict(config.values)
            if label not in scores:
                raise _Failed(f"the judge answered label {label!r}, which is not one of "
                              f"{config.name}'s labels ({', '.join(scores)}); the judge "
                              f"answered: {completion.quoted()}", completion=completion)
            explanation = arguments.get("explanation")
            found[config_name] = Score(
                # One string a label, whichever case it came from (a long run keeps them).
                name=annotation, evaluator=self.name, annotator_kind="LLM",
                label=sys.intern(str(label)),
                score=scores[label],
                explanation=explanation if isinstance(explanation, str) or explanation is None
                else json.dumps(explanation),
                metadata=self._metadata(completion), config=config,
                start_time=start, end_time=datetime.now(UTC))
        if not found:
            called = ", ".join(sorted({c.name for c in completion.tool_calls}))
            raise _Failed(f"the judge called none of this evaluator's tools "
                          f"({', '.join(tools)}); it called {called}", completion=completion)
        out = []
        for config, annotation in by_config.values():
            out.append(found.get(config.name) or Score(
                name=annotation, evaluator=self.name, annotator_kind="LLM", config=config,
                error=f"the judge did not call the tool for {config.name!r}; it answered: "
                      f"{completion.quoted()}",
                metadata=self._metadata(completion), start_time=start,
                end_time=datetime.now(UTC)))
        return out

    def _metadata(self, completion: Completion | None) -> dict[str, Any]:
        if completion is None:
            return {}
        model = completion.model or self.model
        meta: dict[str, Any] = {"model": sys.intern(model) if model else model,
                                **completion.usage,
                                "judge_attempts": completion.attempts}
        if completion.cached:  # the usage is the original call's; nothing was spent now
            meta["judge_cache"] = "hit"
        elif self.judges is not None and completion.usage:
            cost = self.judges.cost(self.model or completion.model, completion.usage)
            if cost is not None:
                meta["cost_usd"] = round(cost, 8)
        # Which version of which prompt judged, and the tag it was followed by: a tag
        # moved between two runs shows on the annotations each wrote.
        meta.update(self._prompt_metadata())
        return meta

    def _prompt_metadata(self) -> dict[str, Any]:
        if self.prompt is None or not self.prompt.version_id:
            return {}
        meta = {"prompt": self.prompt.prompt_name, "prompt_version_id": self.prompt.version_id}
        if self.prompt.version_tag:
            meta["prompt_tag"] = self.prompt.version_tag
        return meta

    def _error(self, message: str, start: datetime, hint: str | None = None,
               completion: Completion | None = None) -> Score:
        """The one annotation of a judge that failed as a whole. The server names it as it
        names the evaluator (``LLMEvaluator.evaluate``: its single error result takes the
        ``name`` the runner passed, the first output config's), so a multi-output judge's
        error is ``acc``, not ``acc.acc``."""
        config = self.output_configs[0] if len(self.output_configs) == 1 else None
        name = self.output_configs[0].name if self.output_configs else self.name
        return Score(name=name, evaluator=self.name, annotator_kind="LLM", error=message,
                     hint=hint, config=config, metadata=self._metadata(completion),
                     start_time=start, end_time=datetime.now(UTC))


def llm_output_attributes(completion: Completion) -> dict[str, Any]:
    from ..._tracing.spans import llm_attributes

    message: dict[str, Any] = {"role": "assistant", "content": completion.content or ""}
    if completion.tool_calls:
        message["tool_calls"] = [{"id": c.id, "function": {"name": c.name,
                                                           "arguments": c.arguments}}
                                 for c in completion.tool_calls]
    return llm_attributes(output_messages=[message],
                          prompt_tokens=completion.usage.get("prompt_tokens"),
                          completion_tokens=completion.usage.get("completion_tokens"),
                          total_tokens=completion.usage.get("total_tokens"))


class _Failed(Exception):
    def __init__(self, message: str, hint: str | None = None,
                 completion: Completion | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.completion = completion
