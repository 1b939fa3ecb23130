"""OpenTelemetry traces of tasks and LLM judges, sent to Phoenix over OTLP/HTTP.

Two parts:

* :class:`Tracing` owns one private ``TracerProvider`` per Phoenix project. Spans are batched
  and posted as OTLP protobuf to ``{base_url}/v1/traces``. Nothing here reads or changes the
  process-wide OpenTelemetry state (global tracer provider, ``OTEL_*`` environment variables,
  global meter provider), so an application under test keeps its own tracing untouched, and
  its settings (exporter headers, samplers, ...) never leak into what is sent to Phoenix.
  Sending is best effort: if Phoenix is unreachable the spans are dropped quietly (counted in
  :attr:`Tracing.dropped_spans`), never raised and never printed.
* Helpers that start spans following the OpenInference conventions Phoenix renders:
  :func:`start_root_span`, :func:`start_child_span` (both yield a :class:`SpanHandle`) and
  :func:`llm_attributes` for the attributes of an ``LLM`` span.

Typical shape of the traces::

    Task: <name>                 CHAIN      (root, task project)
    Evaluator: <name>            EVALUATOR  (root, evaluator project)
      Prompt: <prompt name>      PROMPT
        ChatCompletion           LLM

Spans are made current through ``contextvars``, so they may be started from many asyncio tasks
on one event loop at once: each task sees its own current span. A root span always starts a new
trace, whatever span is current where it is started.

Importing this module is cheap: OpenTelemetry and httpx are imported on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from openinference.semconv.resource import ResourceAttributes
from openinference.semconv.trace import (
    MessageAttributes,
    MessageContentAttributes,
    OpenInferenceMimeTypeValues,
    SpanAttributes,
    ToolAttributes,
    ToolCallAttributes,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "SpanHandle",
    "Tracing",
    "llm_attributes",
    "start_child_span",
    "start_root_span",
]

#: Instrumentation scope of every span created here, and the resource's service.name.
_SCOPE = "pytest_phoenix_evals"
#: Budget of one export (all attempts), in seconds.
_EXPORT_TIMEOUT = 10.0
#: Spans wait: the background thread sends them when 4,096 have gathered, after 30 s, or when
#: the session ends (after the runs and evaluations are uploaded). Phoenix answers an OTLP
#: post at once but inserts its spans afterwards, one by one, on the event loop that also
#: serves our run and evaluation posts (about 8 ms of its CPU a span on a 2-core machine, as
#: much as ingesting a run or evaluation: benchmarks/README.md). Sent as the cases finish, the
#: spans of 200 cases doubled the session's wall time; held back, the server inserts them
#: after the results are in.
_SCHEDULE_DELAY_MILLIS = 30_000
_MAX_EXPORT_BATCH_SIZE = 4096
_MAX_QUEUE_SIZE = 4 * _MAX_EXPORT_BATCH_SIZE
#: HTTP statuses worth another attempt (Phoenix answers 503 when it is at capacity).
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_ATTEMPTS = 3

_MISSING: Any = object()


# --------------------------------------------------------------------------------------------
# Quiet OpenTelemetry internals
# --------------------------------------------------------------------------------------------
#
# The SDK's batch processor logs on our code paths (for instance "Queue full, dropping span."
# when Phoenix is slow). With no logging configured, such records reach stderr through
# logging.lastResort. We drop them, but only those emitted by this thread while it runs inside
# one of our processor or exporter methods: records of the application's own exporters, or of
# other threads, pass untouched.

#: Loggers the SDK and the OTLP encoder use on the span processing and export paths.
_SDK_LOGGERS = (
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.exporter.otlp.proto.common._internal",
)
_quiet_state = threading.local()
_filter_lock = threading.Lock()
_filter_installed = False


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet_state, "depth", 0)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    _quiet_state.depth = getattr(_quiet_state, "depth", 0) + 1
    try:
        yield
    finally:
        _quiet_state.depth -= 1


def _install_quiet_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if _filter_installed:
            return
        quiet_filter = _QuietFilter()
        for name in _SDK_LOGGERS:
            logging.getLogger(name).addFilter(quiet_filter)
        _filter_installed = True


# --------------------------------------------------------------------------------------------
# Tracing: providers, processors, exporters
# --------------------------------------------------------------------------------------------


class Tracing:
    """Tracers whose spans are sent to a Phoenix server, one private provider per project.

    ``base_url`` is the server's root URL (``http://127.0.0.1:6006``); spans are posted to
    ``{base_url}/v1/traces``. ``headers`` (for instance ``Authorization: Bearer ...``) are sent
    with every export and never logged, printed or shown in ``repr``.

    Thread-safe. Call :meth:`shutdown` when done: it sends what is still buffered.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        self._endpoint = f"{base_url.rstrip('/')}/v1/traces"
        # Phoenix routes a request to the project named by its ``x-project-name`` header before
        # looking at the resource, so such a header would send every project's spans to one.
        self._headers = {
            str(key): str(value)
            for key, value in (headers or {}).items()
            if str(key).lower() != "x-project-name"
        }
        self._lock = threading.Lock()
        self._providers: dict[str, TracerProvider] = {}
        self._tracers: dict[str, Tracer] = {}
        self._exporters: list[_PhoenixSpanExporter] = []
        self._closed = False
        self._dropped = 0
        self._dropped_at_last_flush = 0

    def __repr__(self) -> str:
        return f"Tracing(endpoint={self._endpoint!r}, projects={sorted(self._providers)!r})"

    @property
    def dropped_spans(self) -> int:
        """How many spans could not be delivered to Phoenix so far (failed exports)."""
        with self._lock:
            return self._dropped

    def tracer(self, project_name: str) -> Tracer:
        """A tracer whose spans land in the Phoenix project ``project_name``.

        The project is created by Phoenix on its first span. After :meth:`shutdown` this
        returns a no-op tracer.
        """
        with self._lock:
            if self._closed:
                from opentelemetry.trace import NoOpTracer

                return NoOpTracer()
            tracer = self._tracers.get(project_name)
            if tracer is None:
                provider = self._new_provider(project_name)
                self._providers[project_name] = provider
                tracer = self._tracers[project_name] = provider.get_tracer(_SCOPE)
            return tracer

    def flush(self, timeout_seconds: float = 10) -> bool:
        """Send every span ended so far, waiting at most ``timeout_seconds``.

        Returns True when they all reached Phoenix: the flush finished in time and no export
        failed since the previous call to ``flush``. Never raises.
        """
        with self._lock:
            providers = list(self._providers.values())
        finished = _run_bounded([provider.force_flush for provider in providers], timeout_seconds)
        with self._lock:
            delivered = finished and self._dropped == self._dropped_at_last_flush
            self._dropped_at_last_flush = self._dropped
        return delivered

    def shutdown(self, timeout_seconds: float = 10) -> None:
        """Send what is still buffered (waiting at most ``timeout_seconds``), then stop.

        Spans still unsent when the time is up are dropped. Idempotent; never raises.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            providers = list(self._providers.values())
            exporters = list(self._exporters)
        if not _run_bounded([provider.shutdown for provider in providers], timeout_seconds):
            for exporter in exporters:
                exporter.abort()

    def _count_dropped(self, count: int) -> None:
        with self._lock:
            self._dropped += count

    def _new_provider(self, project_name: str) -> TracerProvider:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        _install_quiet_filter()
        exporter_class = _sdk_class(
            _PhoenixSpanExporter, "opentelemetry.sdk.trace.export", "SpanExporter"
        )
        exporter = exporter_class(self._endpoint, self._headers, self._count_dropped)
        self._exporters.append(exporter)
        # Every setting is explicit so that the application's OTEL_* variables (sampler, span
        # limits, batch sizes, resource) do not apply; only OTEL_SDK_DISABLED, which the SDK
        # always reads, still turns our tracers into no-ops. A no-op meter provider keeps the
        # SDK from resolving (and perhaps installing) the global one.
        provider = TracerProvider(
            **_supported_kwargs(
                TracerProvider,
                # Resource(...), not Resource.create(...): the latter reads
                # OTEL_RESOURCE_ATTRIBUTES and runs the resource detectors it names.
                resource=Resource(
                    {ResourceAttributes.PROJECT_NAME: project_name, SERVICE_NAME: _SCOPE}
                ),
                sampler=ALWAYS_ON,
                span_limits=SpanLimits(
                    max_attributes=1024,
                    max_events=128,
                    max_links=128,
                    max_span_attributes=1024,
                    max_event_attributes=128,
                    max_link_attributes=128,
                    max_attribute_length=SpanLimits.UNSET,
                    max_span_attribute_length=SpanLimits.UNSET,
                ),
                shutdown_on_exit=False,
                meter_provider=_no_op_meter_provider(),
            )
        )
        processor = BatchSpanProcessor(
            exporter,
            **_supported_kwargs(
                BatchSpanProcessor,
                max_queue_size=_MAX_QUEUE_SIZE,
                schedule_delay_millis=_SCHEDULE_DELAY_MILLIS,
                max_export_batch_size=_MAX_EXPORT_BATCH_SIZE,
                export_timeout_millis=_EXPORT_TIMEOUT * 1000,
                meter_provider=_no_op_meter_provider(),
            ),
        )
        processor_class = _sdk_class(
            _QuietSpanProcessor, "opentelemetry.sdk.trace", "SpanProcessor"
        )
        provider.add_span_processor(processor_class(processor))
        return provider


def _no_op_meter_provider() -> Any:
    from opentelemetry.metrics import NoOpMeterProvider

    return NoOpMeterProvider()


def _supported_kwargs(cls: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``cls`` accepts (older SDKs lack some, e.g. ``meter_provider``)."""
    import inspect

    parameters = inspect.signature(cls).parameters
    return {key: value for key, value in kwargs.items() if key in parameters}


def _run_bounded(calls: Sequence[Callable[[], object]], timeout_seconds: float) -> bool:
    """Run each call in its own daemon thread; True if all finished within the timeout."""
    threads = []
    for call in calls:
        thread = threading.Thread(
            target=_swallow, args=(call,), name="pytest-phoenix-evals-tracing", daemon=True
        )
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + max(timeout_seconds, 0.0)
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return not any(thread.is_alive() for thread in threads)


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        call()


class _QuietSpanProcessor:
    """Delegates to a span processor with the SDK's log records on those paths dropped."""

    def __init__(self, processor: Any) -> None:
        self._processor = processor

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        with _quiet():
            self._processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        with _quiet():
            on_ending = getattr(self._processor, "_on_ending", None)
            if on_ending is not None:
                on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        with _quiet():
            self._processor.on_end(span)

    def shutdown(self) -> None:
        with _quiet():
            self._processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with _quiet():
            return bool(self._processor.force_flush(timeout_millis))


class _PhoenixSpanExporter:
    """OTLP/HTTP protobuf span exporter that never raises, logs, or reads the environment.

    The SDK's ``OTLPSpanExporter`` merges ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`` into the
    headers it sends (which could hand the application's credentials for another backend to
    Phoenix), logs every failure, and retries an unreachable server for its whole timeout.
    This one posts the same payload with exactly our headers, fails fast when the server
    refuses connections, retries briefly on overload, and reports dropped spans by callback.
    """

    def __init__(
        self, endpoint: str, headers: Mapping[str, str], on_drop: Callable[[int], None]
    ) -> None:
        import httpx

        self._endpoint = endpoint
        self._on_drop = on_drop
        self._aborted = threading.Event()
        self._client = httpx.Client(
            headers={**headers, "Content-Type": "application/x-protobuf"},
            timeout=httpx.Timeout(_EXPORT_TIMEOUT, connect=min(_EXPORT_TIMEOUT, 5.0)),
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        with _quiet():
            try:
                delivered = self._send(spans)
            except Exception:
                delivered = False
        if delivered:
            return SpanExportResult.SUCCESS
        self._on_drop(len(spans))
        return SpanExportResult.FAILURE

    def _send(self, spans: Sequence[ReadableSpan]) -> bool:
        import httpx
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        if self._aborted.is_set():
            return False
        body = encode_spans(spans).SerializeToString()
        deadline = time.monotonic() + _EXPORT_TIMEOUT
        for attempt in range(_MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                response = self._client.post(self._endpoint, content=body, timeout=remaining)
            except httpx.ConnectError:
                return False  # Nobody listening: retrying would only delay the caller.
            except httpx.TransportError:
                retry = True  # Timeouts, connections dropped mid-request.
            else:
                if response.is_success:
                    return True
                retry = response.status_code in _RETRY_STATUSES
            backoff = 0.5 * 2**attempt
            if not retry or attempt + 1 == _MAX_ATTEMPTS:
                return False
            if time.monotonic() + backoff >= deadline or self._aborted.wait(backoff):
                return False
        return False

    def abort(self) -> None:
        """Stop retrying; exports from now on fail at once."""
        self._aborted.set()

    def shutdown(self) -> None:
        self._aborted.set()
        with contextlib.suppress(Exception):
            self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@functools.cache
def _sdk_class(mixin: type, module: str, base: str) -> type:
    """``mixin`` subclassing the SDK interface ``module.base`` (imported on first use).

    Subclassing the interface gives default implementations of hooks later SDKs may add.
    """
    import importlib

    sdk_base = getattr(importlib.import_module(module), base)
    return type(mixin.__name__, (mixin, sdk_base), {"__module__": __name__})


# --------------------------------------------------------------------------------------------
# Spans following the OpenInference conventions
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Traces of an LLM judge, shaped as the server traces its own LLM evaluators
# --------------------------------------------------------------------------------------------
#
# The server (``LLMEvaluator.evaluate`` in ``phoenix/server/api/evaluators.py``) makes the
# evaluator span the root of a new trace in the dataset evaluator's project, with the prompt
# and the chat completion as its children; the annotation carries that trace's id.


class JudgeTrace:
    """Traces the calls of one LLM judge into ``project``."""

    def __init__(self, tracing: Tracing, project: str) -> None:
        self._tracer = tracing.tracer(project)

    @contextlib.contextmanager
    def evaluator(self, name: str, context: Any) -> Iterator[_EvaluatorSpan]:
        with start_root_span(self._tracer, f"Evaluator: {name}", "EVALUATOR", context) as root:
            yield _EvaluatorSpan(self._tracer, root)


class _EvaluatorSpan:
    def __init__(self, tracer: Tracer, root: SpanHandle) -> None:
        self._tracer = tracer
        self.root = root

    @property
    def trace_id(self) -> str | None:
        return self.root.trace_id_hex

    def prompt(self, prompt_name: str, values: Any, messages: Sequence[Mapping[str, Any]]
               ) -> None:
        with start_child_span(self._tracer, f"Prompt: {prompt_name}", "PROMPT", values,
                              parent=self.root) as span:
            span.set_output({"messages": list(messages)})

    @contextlib.contextmanager
    def llm(self, model: str, provider: str, params: Mapping[str, Any]) -> Iterator[SpanHandle]:
        """The chat completion span; the caller sets the output with :func:`llm_attributes`."""
        # Chat Completions sends "messages", the Responses API "input" (message items).
        invocation = {k: v for k, v in params.items()
                      if k not in ("messages", "input", "model", "tools")}
        messages = [{"role": m.get("role"), "content": m.get("content")}
                    for m in params.get("messages") or params.get("input") or ()]
        attributes = llm_attributes(
            model_name=model, provider=provider.lower(), system="openai",
            input_messages=messages, invocation_parameters=invocation,
            tools=params.get("tools"))
        with start_child_span(self._tracer, "ChatCompletion", "LLM", dict(params),
                              attributes=attributes, parent=self.root) as span:
            yield span

    def finish(self, results: Sequence[Mapping[str, Any]], error: str | None) -> None:
        self.root.set_output({"results": list(results)})
        if error is not None:
            self.root.record_error(RuntimeError(error))
