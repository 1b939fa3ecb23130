"""A prompt version as the task under test, run over a dataset as Phoenix's playground runs it.

The server's path is the ``chatCompletionOverDataset`` subscription, whose experiment runner
(``TaskWorkItem`` in ``phoenix/server/daemons/experiment_runner.py``) does, per example:

1. The template's messages become playground messages
   (``prompt_chat_template_to_playground_messages`` in ``helpers/message_helpers.py``): the text
   parts of a message are joined by newlines, a ``tool_call`` part becomes a tool call of the
   message (its arguments parsed as JSON), a ``tool_result`` part becomes text with the
   message's ``tool_call_id``. Roles: ``assistant``/``model``/``ai`` are the AI, ``developer``
   is the system, anything unknown is the user.
2. The template variables are ``{"input", "reference", "metadata"}`` of the example, taken at the
   dot path ``template_variables_path`` (default ``input``: ``{{question}}`` is
   ``input.question``; empty: the whole context), and every message's text is rendered with
   them (``formatted_messages``, the same formatters as LLM evaluators). A name needs only its
   root (``{input.question}`` needs ``input``, ``{items[0]}`` needs ``items``); past the root the
   formatter resolves it or fails.
3. With ``appended_messages_path``, the OpenAI-style messages found at that dot path of the
   example's input are appended.

An example whose messages cannot be built (a name the formatter cannot resolve, appended
messages that are not a list of objects, a tool message without its call id on Chat
Completions) is a run whose error is the server's ``str(error)``, word for word (a
``KeyError`` quoted, as ``str`` quotes it), and the other examples run on
(``TaskWorkItem.execute``). Two differences remain: a template variable whose root an example
lacks refuses the run before anything is called (the server records an error run per
example), and a dotted or indexed name that fails with ``AttributeError`` or ``IndexError``
(``{meta.lang}`` without ``lang``, ``{items[0]}`` of an empty list) is an error run here, while
the server's runner lets those two escape its ``except`` and records no run at all for the
example.
4. The request is built as for an LLM judge (one code path: ``request_params`` /
   ``responses_params`` in ``_evaluators/llm/client.py``), with the version's provider, model,
   invocation parameters, tools, tool choice and response format.
5. The run's output is what the server reads back off its LLM span
   (``get_experiment_example_output`` in ``helpers/dataset_helpers.py``):
   ``{"messages": [{"role": "assistant", "content"?, "tool_calls"?}], "available_tools": [...]}``,
   each tool call as ``{"function": {"name", "arguments"}}`` with the arguments decoded from
   JSON when they are JSON. The dataset's attached evaluators read it through their mappings
   exactly as they read a playground run's output.

The server streams the model's answer when the playground's streaming is on; this task does not
(a test run has nobody to show the tokens to), so its request lacks ``stream`` and
``stream_options`` and is otherwise the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._core.errors import RunError
from .._core.types import Example
from .._evaluators.llm.client import (
    ROLES,
    Completion,
    Judges,
    request_params,
    responses_params,
)
from .._evaluators.templates import TemplateError, render, roots
from .engine import CASE_TRACER

if TYPE_CHECKING:
    from .._evaluators.llm.judge import PromptSpec

class PromptTaskError(RunError):
    """The example cannot be run through the prompt (a variable or appended message missing);
    the message is the run's error, worded like the server's (its ``str(error)``)."""


def playground_messages(template_messages: Sequence[Mapping[str, Any]]
                        ) -> list[dict[str, Any]]:
    """The template's messages as the server's playground messages (step 1 above)."""
    out = []
    for message in template_messages:
        role = _role(message)
        content = message.get("content")
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        tool_call_id = None
        if isinstance(content, str):
            texts.append(content)
        else:
            for part in content or ():
                kind = part.get("type")
                if kind == "text":
                    texts.append(part.get("text") or "")
                elif kind == "tool_call":
                    call = part.get("tool_call") or {}
                    try:
                        arguments = json.loads(call.get("arguments"))  # type: ignore[arg-type]
                    except (TypeError, ValueError):
                        arguments = {}
                    tool_calls.append({"id": part.get("tool_call_id"),
                                       "function": {"name": call.get("name"),
                                                    "arguments": arguments}})
                elif kind == "tool_result":
                    tool_call_id = part.get("tool_call_id")
                    result = part.get("tool_result")
                    if isinstance(result, str):
                        texts.append(result)
                    elif result is not None:  # (ASCII here, unlike the tool call's arguments)
                        texts.append(json.dumps(result))
        found: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if tool_call_id is not None:
            found["tool_call_id"] = tool_call_id
        if tool_calls:
            found["tool_calls"] = tool_calls
        out.append(found)
    return out


def _role(message: Mapping[str, Any]) -> str:
    """A message's role as the server maps it; an unknown one is the user's there."""
    return ROLES.get(str(message.get("role", "user")).lower(), "user")


def value_at(data: Any, path: str) -> Any:
    """The value at a dot path (the server's ``extract_value_from_path``: keys only, no
    indexes); KeyError or TypeError worded as the server words them."""
    if not path:
        raise KeyError("Empty path provided")
    current = data
    for key in path.split("."):
        if not isinstance(current, dict):
            raise TypeError(f"Cannot traverse path '{path}': intermediate value is not a dict")
        if key not in current:
            raise KeyError(f"Key '{key}' not found in path '{path}'")
        current = current[key]
    return current


def template_variables(example: Example, path: str | None) -> Any:
    """What the template is rendered with: the example's context at ``path`` (step 2)."""
    context = {"input": example.input, "reference": example.reference,
               "metadata": example.metadata}
    return value_at(context, path) if path else context


def appended_messages(example: Example, path: str) -> list[dict[str, Any]]:
    """The OpenAI-style messages at ``path`` of the example's input, as playground messages
    (the server's ``extract_and_convert_example_messages``; step 3)."""
    found = value_at(example.input, path)
    if not isinstance(found, list):
        raise TypeError(f"Value at path '{path}' is not a list (got {type(found).__name__})")
    out = []
    for index, message in enumerate(found):
        if not isinstance(message, dict):
            raise ValueError(f"Message at index {index} is not a dict (got "
                             f"{type(message).__name__})")
        content = message.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):  # the text parts (multimodal content), by newlines
            content = "\n".join(str(part.get("text", "")) if isinstance(part, dict) else part
                                for part in content
                                if isinstance(part, str) or (isinstance(part, dict)
                                                             and part.get("type") == "text"))
        elif not isinstance(content, str):
            content = str(content)
        converted: dict[str, Any] = {
            "role": _role(message),
            "content": content}
        if message.get("tool_call_id") is not None:
            converted["tool_call_id"] = message["tool_call_id"]
        if message.get("tool_calls") is not None:
            converted["tool_calls"] = message["tool_calls"]
        out.append(converted)
    return out


def chat_message(message: Mapping[str, Any], api: str = "chat") -> dict[str, Any]:
    """A playground message as the Chat Completions message the server sends (its key order:
    the request bodies are compared byte for byte). A tool message without its call id is an
    error on Chat Completions; on the Responses API it is kept here without one, and
    :func:`~.._evaluators.llm.client.responses_input` drops it, as the server does."""
    role, content = message["role"], message["content"]
    if role == "assistant" and message.get("tool_calls") is not None:
        return {"content": content, "role": "assistant", "tool_calls": [
            {"type": "function", "id": call.get("id"),
             "function": {"name": call["function"]["name"],
                          "arguments": json.dumps(call["function"].get("arguments"),
                                                  ensure_ascii=False)}}
            for call in message["tool_calls"]]}
    if role == "tool":
        if message.get("tool_call_id") is None:
            if api == "responses":
                return {"content": content, "role": "tool"}
            raise ValueError("tool_call_id is required for tool messages")
        return {"content": content, "role": "tool", "tool_call_id": message["tool_call_id"]}
    return {"content": content, "role": role}


def run_output(completion: Completion, params: Mapping[str, Any], api: str = "chat"
               ) -> dict[str, Any]:
    """The run's output as the server reads it off a playground run's LLM span (step 5).

    On Chat Completions the server writes the span's output messages itself
    (``_llm_output_messages``): an empty text and empty arguments are not written, so the
    output has no ``content`` and ``"arguments": null`` for them (and a call with neither a
    name nor arguments is left out). For the Responses API they are written by OpenInference's
    instrumentation, which keeps an empty answer (``"content": ""``) and empty arguments
    (``""``) but leaves out arguments that are exactly ``{}``."""
    message: dict[str, Any] = {"role": "assistant"}
    if completion.content or (api == "responses" and completion.content is not None):
        message["content"] = completion.content
    calls = [{"function": {"name": call.name, "arguments": _arguments(call.arguments, api)}}
             for call in completion.tool_calls
             if api == "responses" or call.name or call.arguments]
    if calls:
        message["tool_calls"] = calls
    # The tools offered, as the span records them (JSON, so None becomes null and back); on the
    # Responses API those the answer echoes take the place of the request's, index by index.
    tools = json.loads(json.dumps(list(params.get("tools") or ()), ensure_ascii=False))
    echoed = completion.echoed_tools or []
    tools = echoed + tools[len(echoed):]
    return {"messages": [message], "available_tools": tools}


# The lists a prompt's run output always holds: a non-negative index into one reads the same on
# every jsonpath-ng version (they differ on strings, objects and negative indexes).
_OUTPUT_LISTS = re.compile(r"^(\$\.output\.(?:messages|available_tools))\[\d+\]"
                           r"(?:(\.tool_calls)\[\d+\])?")


def without_list_indexes(path: str) -> str:
    """``path`` without its indexes into the output's own lists (``$.output.messages[0].content``
    is ``$.output.messages.content`` here), for the jsonpath-ng version check."""
    return _OUTPUT_LISTS.sub(lambda m: m.group(1) + (m.group(2) or ""), path.strip())


def _arguments(arguments: str, api: str) -> Any:
    """A tool call's arguments as the run's output holds them (see :func:`run_output`)."""
    if api == "responses":
        return None if arguments == "{}" else _decoded(arguments)
    return _decoded(arguments) if arguments else None


def _decoded(arguments: str) -> Any:
    try:
        decoded = json.loads(arguments)
    except (TypeError, ValueError):
        return arguments
    return arguments if decoded is None else decoded


@dataclass
class PromptTask:
    """The task: one prompt version, called through the task's own model clients."""

    label: str  # how the run names it: prompt:NAME@TAG or prompt-file:PATH
    prompt: PromptSpec
    models: Judges  # the task's own: its cap, retries and cache apart from the judges'
    variables_path: str | None = "input"
    messages_path: str | None = None

    def __post_init__(self) -> None:
        self.__name__ = self.label  # the task span is "Task: <label>"
        self._messages = playground_messages(self.prompt.messages)
        self._names: list[str] | None = None

    @property
    def model(self) -> str:
        return self.prompt.model_name or "gpt-4o-mini"

    def template_names(self) -> list[str]:
        """The root names of the template's variables (what an example must provide: the
        server's formatters check only that each name's root is given, ``input`` for
        ``{input.question}``, ``items`` for ``{items[0]}``); TemplateError when the template
        does not parse."""
        if self._names is None:
            found: set[str] = set()
            for message in self._messages:
                found |= roots(message["content"], self.prompt.template_format)
            self._names = sorted(found)
        return self._names

    def problem(self, example: Example) -> str | None:
        """Why ``example`` cannot fill the template (None when it can): checked for every
        example before anything runs. What the server records as an error run past the
        template's roots (a name that does not resolve, appended messages that cannot be
        read) is left to the run, which errors as the server's does."""
        try:
            values = template_variables(example, self.variables_path)
            missing = [n for n in self.template_names()
                       if not isinstance(values, Mapping) or n not in values]
        except (KeyError, TypeError, ValueError) as exc:  # (TemplateError is a ValueError)
            return str(exc)
        if not missing:
            return None
        where = f"its {self.variables_path!r}" if self.variables_path else "its context"
        keys = ", ".join(map(str, values)) if isinstance(values, Mapping) else \
            f"none (it is a {type(values).__name__})"
        return (f"template variable(s) {', '.join(missing)} cannot be filled from {where}; "
                f"its keys: {keys or 'none'}")

    def messages(self, example: Example, api: str = "chat") -> list[dict[str, Any]]:
        """The messages sent for ``example``, as Chat Completions messages; PromptTaskError
        holding the server's words when they cannot be built."""
        try:
            values = template_variables(example, self.variables_path)
            if not isinstance(values, Mapping):
                raise TypeError(f"the template variables at {self.variables_path!r} are a "
                                f"{type(values).__name__}, not a mapping")
            rendered = [{**m, "content": render(m["content"], self.prompt.template_format,
                                                dict(values))} for m in self._messages]
            if self.messages_path:
                rendered += appended_messages(example, self.messages_path)
            return [chat_message(m, api) for m in rendered]
        except (TemplateError, LookupError, AttributeError, TypeError, ValueError) as exc:
            # (LookupError: the KeyError and IndexError of a name that does not resolve)
            raise PromptTaskError(str(exc)) from None

    def request(self, example: Example) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """(API, request keyword arguments, extra_body) for ``example``."""
        api = self.models.api(self.prompt.model_provider, self.model)
        build = responses_params if api == "responses" else request_params
        params, extra_body = build(self.model, self.messages(example, api), self.prompt.tools,
                                   self.prompt.invocation_parameters,
                                   self.prompt.response_format)
        return api, params, extra_body

    async def __call__(self, example: Example) -> dict[str, Any]:
        api, params, extra_body = self.request(example)
        tracer = CASE_TRACER.get()
        if tracer is None:
            completion = await self.models.complete(self.prompt.model_provider, params,
                                                    extra_body, api)
            return run_output(completion, params, api)
        from .._evaluators.llm.judge import llm_output_attributes
        from .._evaluators.llm.trace import llm_request_attributes
        from .._tracing.spans import start_child_span

        attributes = llm_request_attributes(self.model, self.prompt.model_provider, params)
        with start_child_span(tracer, "ChatCompletion", "LLM", dict(params),
                              attributes=attributes) as span:
            completion = await self.models.complete(self.prompt.model_provider, params,
                                                    extra_body, api)
            span.set_attributes(llm_output_attributes(completion))
            output = run_output(completion, params, api)
            span.set_output(output)
        return output
