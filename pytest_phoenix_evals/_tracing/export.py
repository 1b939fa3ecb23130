"""OpenTelemetry traces of tasks and LLM judges, sent to Phoenix over OTLP/HTTP.

:class:`Tracing` owns one private ``TracerProvider`` per Phoenix project. Spans are batched
and posted as OTLP protobuf to ``{base_url}/v1/traces``. Nothing here reads or changes the
process-wide OpenTelemetry state (global tracer provider, ``OTEL_*`` environment variables,
global meter provider), so an application under test keeps its own tracing untouched, and
its settings (exporter headers, samplers, ...) never leak into what is sent to Phoenix.
Sending is best effort: if Phoenix is unreachable the spans are dropped quietly (counted in
:attr:`Tracing.dropped_spans`), never raised and never printed. The spans themselves are
started with the OpenInference helpers of :mod:`.spans`. Every text of every span passes the
secret filter right before it is sent (:func:`redact_request`), whichever code set it.

Typical shape of the traces::

    Task: <name>                 CHAIN      (root, task project)
    Evaluator: <name>            EVALUATOR  (root, evaluator project)
      Prompt: <prompt name>      PROMPT
        ChatCompletion           LLM

Importing this module is cheap: OpenTelemetry, the OpenInference conventions and httpx are
imported on first use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.trace import Tracer

__all__ = ["Tracing", "redact_request"]

#: Instrumentation scope of every span created here, and the resource's service.name.
_SCOPE = "pytest_phoenix_evals"
#: Budget of one export (all attempts), in seconds.
_EXPORT_TIMEOUT = 10.0
#: Spans wait: the background thread encodes them into a temporary file (the exporter's
#: spool) when 4,096 have gathered or after 30 s, and the spool is sent when the session ends
#: (after the runs and evaluations are uploaded), so what waits is not held in memory. Phoenix
#: answers an OTLP post at once but inserts its spans afterwards, one by one, on the event
#: loop that also serves our run and evaluation posts (about 8 ms of its CPU a span on a
#: 2-core machine, as much as ingesting a run or evaluation: benchmarks/README.md). Sent as
#: the cases finish, the spans of 200 cases doubled the session's wall time (and those of
#: 10,000 cases, sent every 30 s, doubled it again once back-pressure made the cases keep pace
#: with the uploads); held back, the server inserts them after the results are in.
_SCHEDULE_DELAY_MILLIS = 30_000
_MAX_EXPORT_BATCH_SIZE = 4096
_MAX_QUEUE_SIZE = 4 * _MAX_EXPORT_BATCH_SIZE
#: Waits between the attempts of one export (three attempts), within its budget. Which
#: failures are retried (connection errors but a refused one, 5xx, 429 with Retry-After) is
#: the one policy of ``_phoenix.http``.
_RETRY_DELAYS = (0.5, 1.0)


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

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None, *,
                 hand_over: Path | None = None) -> None:
        self._endpoint = f"{base_url.rstrip('/')}/v1/traces"
        # A pytest-xdist worker leaves its spans in this folder instead of sending them; the
        # controller sends every worker's once all have finished (send_handed_over): sent by
        # the first worker to finish, they slowed the uploads of the others.
        self._hand_over = hand_over
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
        self._ended = 0  # spans ended on our providers
        self._delivered = 0  # spans Phoenix accepted

    def __repr__(self) -> str:
        return f"Tracing(endpoint={self._endpoint!r}, projects={sorted(self._providers)!r})"

    @property
    def lost_spans(self) -> tuple[int, int]:
        """(spans that did not reach Phoenix, spans ended): failed exports, spans the export
        queue had no room for (Phoenix slower to take them than the run to make them), and
        spans still unsent at shutdown. Exact once :meth:`shutdown` has returned."""
        with self._lock:
            return max(0, self._ended - self._delivered), self._ended

    def _count_ended(self) -> None:
        with self._lock:
            self._ended += 1

    def _count_delivered(self, count: int) -> None:
        with self._lock:
            self._delivered += count

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
            exporters = list(self._exporters)
        finished = _run_bounded([provider.force_flush for provider in providers], timeout_seconds)
        finished = _run_bounded([e.release for e in exporters], timeout_seconds) and finished
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
        started = time.monotonic()
        # The batches still in memory go to the spool first, then the spool to Phoenix.
        flushed = _run_bounded([provider.force_flush for provider in providers],
                               timeout_seconds) and \
            _run_bounded([e.release for e in exporters],
                         max(0.1, timeout_seconds - (time.monotonic() - started)))
        if not flushed or not _run_bounded(
                [provider.shutdown for provider in providers],
                max(0.1, timeout_seconds - (time.monotonic() - started))):
            for exporter in exporters:
                exporter.abort()

    def _count_dropped(self, count: int) -> None:
        with self._lock:
            self._dropped += count

    def send_handed_over(self, folder: Path) -> None:
        """On pytest-xdist's controller, once every worker has finished: send the spans the
        workers left in ``folder`` (see ``hand_over``), counted in :attr:`lost_spans`. A
        worker that died before handing its spool over leaves no index: nothing is sent."""
        indices = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not indices:
            return
        exporter = _PhoenixSpanExporter(self._endpoint, self._headers, self._count_dropped,
                                        self._count_delivered)
        try:
            for index in indices:
                try:
                    batches = json.loads(index.read_text())["batches"]
                except (OSError, ValueError, KeyError):
                    continue
                with self._lock:
                    self._ended += sum(count for _, count in batches)
                exporter.send_spool(index.with_suffix(".otlp"), batches)
        finally:
            exporter.shutdown()

    def _new_provider(self, project_name: str) -> TracerProvider:
        from openinference.semconv.resource import ResourceAttributes
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import SpanLimits, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        _install_quiet_filter()
        exporter_class = _sdk_class(
            _PhoenixSpanExporter, "opentelemetry.sdk.trace.export", "SpanExporter"
        )
        exporter = exporter_class(self._endpoint, self._headers, self._count_dropped,
                                  self._count_delivered, hand_over=self._hand_over)
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
        provider.add_span_processor(processor_class(processor, self._count_ended))
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

    def __init__(self, processor: Any, on_end: Callable[[], None]) -> None:
        self._processor = processor
        self._ended = on_end  # counts every span, sent or not (see Tracing.lost_spans)

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        with _quiet():
            self._processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        with _quiet():
            on_ending = getattr(self._processor, "_on_ending", None)
            if on_ending is not None:
                on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        self._ended()
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
        self, endpoint: str, headers: Mapping[str, str], on_drop: Callable[[int], None],
        on_deliver: Callable[[int], None] = lambda count: None, *,
        hand_over: Path | None = None,
    ) -> None:
        import httpx

        self._endpoint = endpoint
        self._on_drop = on_drop
        self._on_deliver = on_deliver
        self._aborted = threading.Event()
        # Encoded batches wait in a temporary file until release() (the end of the session):
        # the server inserts spans on the loop that serves uploads, and in memory they would
        # grow with the run.
        self._spool_lock = threading.Lock()
        self._spool: Any = None
        self._batches: list[tuple[int, int]] = []  # (bytes, spans) of each spooled batch
        self._released = False
        self._hand_over = hand_over
        self._client = httpx.Client(
            headers={**headers, "Content-Type": "application/x-protobuf"},
            timeout=httpx.Timeout(_EXPORT_TIMEOUT, connect=min(_EXPORT_TIMEOUT, 5.0)),
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace.export import SpanExportResult

        with _quiet():
            try:
                body = redact_request(encode_spans(spans)).SerializeToString()
                if self._spooled(body, len(spans)):
                    return SpanExportResult.SUCCESS
                delivered = self._send(body)
            except Exception:
                delivered = False
        if delivered:
            self._on_deliver(len(spans))
            return SpanExportResult.SUCCESS
        self._on_drop(len(spans))
        return SpanExportResult.FAILURE

    def _spooled(self, body: bytes, count: int) -> bool:
        """While held (the default): the encoded batch is kept in the spool file, to be sent by
        :meth:`release`; False once released (send it now)."""
        with self._spool_lock:
            if self._released:
                return False
            if self._spool is None and self._hand_over is not None:
                self._hand_over.mkdir(parents=True, exist_ok=True)
                self._spool = (self._hand_over / f"{uuid.uuid4().hex}.otlp").open("wb")
            elif self._spool is None:
                self._spool = tempfile.TemporaryFile()  # noqa: SIM115  (closed by release)
            self._spool.write(body)
            self._batches.append((len(body), count))
            return True

    def release(self) -> None:
        """Send what the spool holds, batch by batch; exports from now on are sent at once."""
        with self._spool_lock:
            self._released = True
            spool, batches, self._spool, self._batches = self._spool, self._batches, None, []
            if spool is None:
                return
            if self._hand_over is not None:
                self._hand_spool_over(spool, batches)
                return
            with _quiet(), spool:
                spool.seek(0)
                self._send_batches(spool, batches)

    def _hand_spool_over(self, spool: Any, batches: list[tuple[int, int]]) -> None:
        """A worker's spool stays in the hand-over folder, with an index written last (so
        the controller sends only complete spools); its spans count as delivered here."""
        count = sum(n for _, n in batches)
        try:
            spool.close()
            path = Path(spool.name)
            index = path.with_suffix(".json")
            part = path.with_suffix(".part")
            part.write_text(json.dumps({"batches": batches}))
            part.replace(index)
        except OSError:
            self._on_drop(count)
            return
        self._on_deliver(count)

    def send_spool(self, path: Path, batches: Sequence[Sequence[int]]) -> None:
        """Send a spool file that another process wrote, batch by batch."""
        try:
            spool = path.open("rb")
        except OSError:
            self._on_drop(sum(count for _, count in batches))
            return
        with _quiet(), spool:
            self._send_batches(spool, batches)

    def _send_batches(self, spool: Any, batches: Sequence[Sequence[int]]) -> None:
        for size, count in batches:
            try:
                delivered = self._send(spool.read(size))
            except Exception:
                delivered = False
            (self._on_deliver if delivered else self._on_drop)(count)

    def _send(self, body: bytes) -> bool:
        import httpx

        from .._phoenix.http import with_retries

        if self._aborted.is_set():
            return False
        deadline = time.monotonic() + _EXPORT_TIMEOUT

        def post() -> None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the export's budget is spent")
            self._client.post(self._endpoint, content=body, timeout=remaining).raise_for_status()

        try:
            # Nobody listening (a refused connection) fails at once: retrying would only
            # delay the caller. Waiting stops early when the exporter is aborted.
            with_retries(post, delays=_RETRY_DELAYS, retry_connect=False, deadline=deadline,
                         wait=self._aborted.wait)
        except (httpx.HTTPError, TimeoutError):
            return False
        return True

    def abort(self) -> None:
        """Stop retrying; exports from now on fail at once."""
        self._aborted.set()

    def shutdown(self) -> None:
        self._aborted.set()
        with contextlib.suppress(Exception):
            self._client.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --------------------------------------------------------------------------------------------
# The secret filter, applied to every span at the one place they all pass: the OTLP payload
# --------------------------------------------------------------------------------------------


def redact_request(request: Any) -> Any:
    """``request`` (an OTLP ``ExportTraceServiceRequest``) with every secret masked, in place.

    Every text of every span passes :func:`~pytest_phoenix_evals._core.secrets.redact`: its
    name, the values of its attributes (strings, and the strings inside arrays and key-value
    lists; ``input.value`` and ``output.value`` JSON included), its events' names and
    attribute values (``exception.message``, ``exception.stacktrace``), its links' attribute
    values and its status message. Attribute keys, ids and the resource (which names the
    project the spans are routed to) are ours, and are left alone. Doing it here, on the
    encoded payload, leaves no way around it: whatever set a text on a span, the span is
    exported through this.
    """
    from .._core.secrets import redactor

    scrub = redactor()
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.name = scrub(span.name)
                _redact_attributes(span.attributes, scrub)
                for event in span.events:
                    event.name = scrub(event.name)
                    _redact_attributes(event.attributes, scrub)
                for link in span.links:
                    _redact_attributes(link.attributes, scrub)
                if span.HasField("status") and span.status.message:
                    span.status.message = scrub(span.status.message)
    return request


def _redact_attributes(attributes: Any, scrub: Callable[[str], str]) -> None:
    for attribute in attributes:
        _redact_any_value(attribute.value, scrub)


def _redact_any_value(value: Any, scrub: Callable[[str], str]) -> None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        value.string_value = scrub(value.string_value)
    elif kind == "array_value":
        for item in value.array_value.values:
            _redact_any_value(item, scrub)
    elif kind == "kvlist_value":
        for item in value.kvlist_value.values:
            _redact_any_value(item.value, scrub)


@functools.cache
def _sdk_class(mixin: type, module: str, base: str) -> type:
    """``mixin`` subclassing the SDK interface ``module.base`` (imported on first use).

    Subclassing the interface gives default implementations of hooks later SDKs may add.
    """
    import importlib

    sdk_base = getattr(importlib.import_module(module), base)
    return type(mixin.__name__, (mixin, sdk_base), {"__module__": __name__})
