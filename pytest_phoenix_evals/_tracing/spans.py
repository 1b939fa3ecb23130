"""Spans following the OpenInference conventions Phoenix renders.

:func:`start_root_span` and :func:`start_child_span` (both yield a :class:`SpanHandle`) start
spans on a tracer (one of :class:`~.export.Tracing`'s, or any OpenTelemetry tracer);
:func:`llm_attributes` gives the attributes of an ``LLM`` span.

Spans are made current through ``contextvars``, so they may be started from many asyncio tasks
on one event loop at once: each task sees its own current span. A root span always starts a new
trace, whatever span is current where it is started.

Importing this module is cheap: OpenTelemetry and the OpenInference conventions are imported
on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "SpanHandle",
    "llm_attributes",
    "start_child_span",
    "start_root_span",
]

_MISSING: Any = object()


class SpanHandle:
    """A started span, as yielded by :func:`start_root_span` and :func:`start_child_span`.

    When the ``with`` block ends normally the span's status is OK unless :meth:`record_error`
    was called; an exception escaping the block is recorded (status ERROR) and re-raised.
    """

    def __init__(self, span: Span) -> None:
        #: The underlying OpenTelemetry span.
        self.span = span
        self._failed = False

    @property
    def trace_id_hex(self) -> str | None:
        """The trace id as Phoenix shows it (32 lowercase hex digits); None if not recorded."""
        from opentelemetry.trace import format_trace_id

        context = self.span.get_span_context()
        return format_trace_id(context.trace_id) if context.is_valid else None

    @property
    def span_id_hex(self) -> str | None:
        """The span id (16 lowercase hex digits); None if the span is not recorded."""
        from opentelemetry.trace import format_span_id

        context = self.span.get_span_context()
        return format_span_id(context.span_id) if context.is_valid else None

    def set_output(self, value: Any) -> None:
        """Set ``output.value`` (JSON unless a string) and ``output.mime_type``."""
        from openinference.semconv.trace import SpanAttributes

        self.set_attributes(
            _value_attributes(SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE, value)
        )

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes; None values are skipped, non-primitive ones stored as JSON."""
        self.span.set_attributes(_clean_attributes(attributes))

    def record_error(self, error: BaseException) -> None:
        """Record ``error`` as an exception event and set the status to ERROR."""
        from opentelemetry.trace import Status, StatusCode

        self._failed = True
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


@contextlib.contextmanager
def start_root_span(
    tracer: Tracer,
    name: str,
    kind: str | Enum,
    input_value: Any = _MISSING,
    *,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[SpanHandle]:
    """Start a span that begins a new trace, and make it current inside the ``with`` block.

    ``kind`` is an OpenInference span kind (``OpenInferenceSpanKindValues.CHAIN`` or its
    value ``"CHAIN"``). ``input_value``, when given, is stored as ``input.value``: as is for a
    string (mime type text), JSON-serialised otherwise (mime type JSON).
    """
    from opentelemetry.context import Context

    with _start_span(tracer, name, kind, input_value, attributes, Context()) as handle:
        yield handle


@contextlib.contextmanager
def start_child_span(
    tracer: Tracer,
    name: str,
    kind: str | Enum,
    input_value: Any = _MISSING,
    *,
    attributes: Mapping[str, Any] | None = None,
    parent: SpanHandle | None = None,
) -> Iterator[SpanHandle]:
    """Start a span under ``parent`` (default: the current span), current inside the block.

    Same arguments as :func:`start_root_span`. For an ``LLM`` span pass
    ``attributes=llm_attributes(...)``, and add the output side later with
    ``handle.set_attributes(llm_attributes(output_messages=..., ...))``.
    """
    context = None
    if parent is not None:
        from opentelemetry.trace import set_span_in_context

        context = set_span_in_context(parent.span)
    with _start_span(tracer, name, kind, input_value, attributes, context) as handle:
        yield handle


@contextlib.contextmanager
def _start_span(
    tracer: Tracer,
    name: str,
    kind: str | Enum,
    input_value: Any,
    attributes: Mapping[str, Any] | None,
    context: Context | None,
) -> Iterator[SpanHandle]:
    from openinference.semconv.trace import SpanAttributes
    from opentelemetry.trace import Status, StatusCode

    initial: dict[str, Any] = {SpanAttributes.OPENINFERENCE_SPAN_KIND: _enum_value(kind).upper()}
    if input_value is not _MISSING:
        initial.update(
            _value_attributes(
                SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE, input_value
            )
        )
    initial.update(attributes or {})
    with tracer.start_as_current_span(
        name,
        context=context,
        attributes=_clean_attributes(initial),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        handle = SpanHandle(span)
        try:
            yield handle
        except GeneratorExit:
            raise
        except BaseException as error:
            handle.record_error(error)
            raise
        if not handle._failed:
            span.set_status(Status(StatusCode.OK))


def llm_attributes(
    *,
    model_name: str | None = None,
    provider: str | Enum | None = None,
    system: str | Enum | None = None,
    input_messages: Sequence[Mapping[str, Any]] | None = None,
    output_messages: Sequence[Mapping[str, Any]] | None = None,
    invocation_parameters: Mapping[str, Any] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    total_tokens: int | None = None,
) -> dict[str, Any]:
    """Flattened OpenInference attributes of an ``LLM`` span; arguments left None are omitted.

    Messages are OpenAI-style mappings: ``role``, ``content`` (a string, or a list of parts
    whose ``{"type": "text", "text": ...}`` entries are kept), optionally ``name``,
    ``tool_call_id`` and ``tool_calls`` (``[{"id", "function": {"name", "arguments"}}]``,
    arguments a JSON string or a mapping). ``tools`` are the JSON schemas offered to the
    model (OpenAI tool format). ``provider`` / ``system`` take ``OpenInferenceLLMProviderValues``
    / ``OpenInferenceLLMSystemValues`` members or their values. ``total_tokens`` defaults to
    the sum of the other two counts when both are given.
    """
    from openinference.semconv.trace import SpanAttributes, ToolAttributes

    attributes: dict[str, Any] = {
        SpanAttributes.LLM_MODEL_NAME: model_name,
        SpanAttributes.LLM_PROVIDER: _enum_value(provider),
        SpanAttributes.LLM_SYSTEM: _enum_value(system),
    }
    for prefix, messages in (
        (SpanAttributes.LLM_INPUT_MESSAGES, input_messages),
        (SpanAttributes.LLM_OUTPUT_MESSAGES, output_messages),
    ):
        for index, message in enumerate(messages or ()):
            attributes.update(_message_attributes(f"{prefix}.{index}.", message))
    if invocation_parameters is not None:
        attributes[SpanAttributes.LLM_INVOCATION_PARAMETERS] = _to_json(invocation_parameters)
    for index, tool in enumerate(tools or ()):
        key = f"{SpanAttributes.LLM_TOOLS}.{index}.{ToolAttributes.TOOL_JSON_SCHEMA}"
        attributes[key] = _to_json(tool)
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    attributes[SpanAttributes.LLM_TOKEN_COUNT_PROMPT] = prompt_tokens
    attributes[SpanAttributes.LLM_TOKEN_COUNT_COMPLETION] = completion_tokens
    attributes[SpanAttributes.LLM_TOKEN_COUNT_TOTAL] = total_tokens
    return {key: value for key, value in attributes.items() if value is not None}


def _message_attributes(prefix: str, message: Mapping[str, Any]) -> dict[str, Any]:
    from openinference.semconv.trace import (
        MessageAttributes,
        MessageContentAttributes,
        ToolCallAttributes,
    )

    attributes: dict[str, Any] = {
        prefix + MessageAttributes.MESSAGE_ROLE: message.get("role"),
        prefix + MessageAttributes.MESSAGE_NAME: message.get("name"),
        prefix + MessageAttributes.MESSAGE_TOOL_CALL_ID: message.get("tool_call_id"),
    }
    content = message.get("content")
    if isinstance(content, str):
        attributes[prefix + MessageAttributes.MESSAGE_CONTENT] = content
    elif isinstance(content, Sequence):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
        for index, text in enumerate(texts):
            part_prefix = f"{prefix}{MessageAttributes.MESSAGE_CONTENTS}.{index}."
            attributes[part_prefix + MessageContentAttributes.MESSAGE_CONTENT_TYPE] = "text"
            attributes[part_prefix + MessageContentAttributes.MESSAGE_CONTENT_TEXT] = text
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        call_prefix = f"{prefix}{MessageAttributes.MESSAGE_TOOL_CALLS}.{index}."
        attributes[call_prefix + ToolCallAttributes.TOOL_CALL_ID] = call.get("id")
        attributes[call_prefix + ToolCallAttributes.TOOL_CALL_FUNCTION_NAME] = function.get("name")
        attributes[call_prefix + ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = (
            arguments if isinstance(arguments, str) or arguments is None else _to_json(arguments)
        )
    return attributes


# --------------------------------------------------------------------------------------------
# Attribute values
# --------------------------------------------------------------------------------------------


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _value_attributes(value_key: str, mime_key: str, value: Any) -> dict[str, str]:
    from openinference.semconv.trace import OpenInferenceMimeTypeValues

    if isinstance(value, str):
        return {value_key: value, mime_key: OpenInferenceMimeTypeValues.TEXT.value}
    return {value_key: _to_json(value), mime_key: OpenInferenceMimeTypeValues.JSON.value}


def _to_json(value: Any) -> str:
    """JSON text of ``value``; anything JSON cannot represent is stored as its ``str``."""
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    except Exception:
        return json.dumps(_safe_str(value), ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        with contextlib.suppress(Exception):
            return model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return _safe_str(value)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


_PRIMITIVES = (str, bool, int, float)


def _clean_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts as they are: None dropped, the rest made primitive."""
    cleaned: dict[str, Any] = {}
    for key, value in attributes.items():
        value = _enum_value(value)
        if value is None:
            continue
        if isinstance(value, _PRIMITIVES):
            cleaned[key] = value
        elif (
            isinstance(value, Sequence)
            and value
            and all(isinstance(item, str) for item in value)
        ):
            cleaned[key] = list(value)
        else:
            cleaned[key] = _to_json(value)
    return cleaned
