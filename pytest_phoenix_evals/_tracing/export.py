"""OpenTelemetry traces of tasks and LLM judges, sent to Phoenix over OTLP/HTTP.

:class:`Tracing` owns one private ``TracerProvider`` per Phoenix project. Spans are batched
and posted as OTLP protobuf to ``{base_url}/v1/traces``. Nothing here reads or changes the
process-wide OpenTelemetry state (global tracer provider, ``OTEL_*`` environment variables,
global meter provider), so an application under test keeps its own tracing untouched, and
its settings (exporter headers, samplers, ...) never leak into what is sent to Phoenix.
Sending is lossless where it can be: a span is never dropped for want of room (the thread
that ends a span encodes a full batch into the spool itself, so a run that makes spans faster
than they are spooled waits instead), and a post the server is too busy to take (503 at
capacity, 429, 5xx, a timeout) is repeated, waiting longer each time, for as long as
:meth:`Tracing.shutdown` is given. What still cannot be delivered (a server that refuses
connections or the post, or that takes nothing for that long) is counted in
:attr:`Tracing.lost_spans`, never raised and never printed. The spans themselves are
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
#: Seconds one attempt of a post may take (a large post to a busy server included).
_POST_TIMEOUT = 30.0
#: How long the posts of one export keep trying while Phoenix answers that it is busy (503
#: at capacity, 429, 5xx) or times out: its span queue (20,000 spans by default) drains at
#: the rate it stores spans, about 8 ms each on a 2-core machine, so a full queue takes
#: minutes to empty. A refused connection is not retried (nobody is listening).
_POST_PATIENCE = 600.0
#: Waits between the attempts of one post, within its patience: bounded, about 120 attempts.
_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, *(5.0,) * 120)
#: Spans wait: the thread that ends a span encodes every 512 into the spool (a temporary
#: file) as one OTLP batch, and the spool is sent when the session ends (after the runs,
#: evaluations and annotations are uploaded), so what waits is not held in memory and no
#: span is dropped for want of room. Phoenix answers an OTLP post at once but inserts its
#: spans afterwards, one by one, on the event loop that also serves our run, evaluation and
#: annotation posts (about 8 ms of its CPU a span on a 2-core machine, as much as ingesting a
#: run or evaluation: benchmarks/README.md). Sent as the cases finish, the spans of 200 cases
#: doubled the session's wall time (and those of 10,000 cases, sent every 30 s, doubled it
#: again once back-pressure made the cases keep pace with the uploads); held back, the server
#: inserts them after the results are in.
_SPOOL_BATCH = 512
#: The spool is sent in posts of at most this many spans (whole batches, concatenated: two
#: encoded OTLP requests one after the other are one request holding both, as protobuf
#: concatenates repeated fields), and at most this many bytes. Not more: a server whose
#: queue is full takes a post again only once it has stored as many spans as the last post
#: took it over its limit, and on a loaded machine it stores a few dozen a second.
_POST_SPANS = 2048
_POST_BYTES = 8 << 20


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
        self._processors: list[_SpoolingProcessor] = []
        self._closed = False
        self._dropped = 0
        self._dropped_at_last_flush = 0
        self._ended = 0  # spans ended on our providers
        self._delivered = 0  # spans Phoenix accepted

    def __repr__(self) -> str:
        return f"Tracing(endpoint={self._endpoint!r}, projects={sorted(self._providers)!r})"

    @property
    def lost_spans(self) -> tuple[int, int]:
        """(spans that did not reach Phoenix, spans ended): posts Phoenix refused, or kept
        answering busy to for longer than they could wait, and spans still unsent when
        :meth:`shutdown` gave up. Exact once :meth:`shutdown` has returned."""
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

    def waiting(self) -> int:
        """Spans ended and not yet sent (spooled, or still to be spooled)."""
        with self._lock:
            exporters = list(self._exporters)
            processors = list(self._processors)
        return sum(e.waiting() for e in exporters) + sum(p.pending() for p in processors)

    def flush(self, timeout_seconds: float = 10) -> bool:
        """Send every span ended so far, waiting at most ``timeout_seconds``.

        Returns True when they all reached Phoenix: the flush finished in time and no export
        failed since the previous call to ``flush``. Never raises.
        """
        with self._lock:
            processors = list(self._processors)
            exporters = list(self._exporters)
        finished = _run_bounded([p.force_flush for p in processors], timeout_seconds)
        finished = _run_bounded([e.release for e in exporters], timeout_seconds) and finished
        with self._lock:
            delivered = finished and self._dropped == self._dropped_at_last_flush
            self._dropped_at_last_flush = self._dropped
        return delivered

    def shutdown(self, timeout_seconds: float = 10) -> None:
        """Send what is still buffered, then stop: Phoenix taking posts slowly (a busy server
        storing a large run's spans) is waited for as long as it takes more of them; it gives
        up once ``timeout_seconds`` pass with none taken. Spans still unsent then are counted
        lost. Idempotent; never raises.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            providers = list(self._providers.values())
            processors = list(self._processors)
            exporters = list(self._exporters)
        # The batches still in memory go to the spool first, then the spool to Phoenix.
        flushed = _run_bounded([p.force_flush for p in processors], timeout_seconds) and \
            _run_while_progressing([e.release for e in exporters], timeout_seconds,
                                   lambda: max(e.progress_at for e in exporters))
        if not flushed:
            for exporter in exporters:
                exporter.abort()
        _run_bounded([provider.shutdown for provider in providers], 1.0)
        for exporter in exporters:
            exporter.shutdown()

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
        processor_class = _sdk_class(
            _SpoolingProcessor, "opentelemetry.sdk.trace", "SpanProcessor"
        )
        processor = processor_class(exporter, self._count_ended)
        self._processors.append(processor)
        provider.add_span_processor(processor)
        return provider


def _no_op_meter_provider() -> Any:
    from opentelemetry.metrics import NoOpMeterProvider

    return NoOpMeterProvider()


def _supported_kwargs(cls: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``cls`` accepts (older SDKs lack some, e.g. ``meter_provider``)."""
    import inspect

    parameters = inspect.signature(cls).parameters
    return {key: value for key, value in kwargs.items() if key in parameters}


def _started(calls: Sequence[Callable[[], object]]) -> list[threading.Thread]:
    """Each call started in a daemon thread of its own."""
    threads = []
    for call in calls:
        thread = threading.Thread(
            target=_swallow, args=(call,), name="pytest-phoenix-evals-tracing", daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads


def _run_bounded(calls: Sequence[Callable[[], object]], timeout_seconds: float) -> bool:
    """Run each call in its own daemon thread; True if all finished within the timeout."""
    threads = _started(calls)
    deadline = time.monotonic() + max(timeout_seconds, 0.0)
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return not any(thread.is_alive() for thread in threads)


def _run_while_progressing(calls: Sequence[Callable[[], object]], patience: float,
                           progress_at: Callable[[], float]) -> bool:
    """Run each call in its own daemon thread; True if all finished. Waits as long as they
    make progress: gives up once ``patience`` seconds pass after the latest ``progress_at()``
    (a ``time.monotonic()``), or since the start if later."""
    threads = _started(calls)
    started = time.monotonic()
    for thread in threads:
        while thread.is_alive():
            deadline = max(started, progress_at()) + max(patience, 0.0)
            if time.monotonic() >= deadline:
                return False
            thread.join(min(0.5, max(deadline - time.monotonic(), 0.0)))
    return True


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        call()


class _SpoolingProcessor:
    """Hands ended spans to the exporter in batches of :data:`_SPOOL_BATCH`, never dropping
    one; the SDK's log records on these paths are dropped (see :func:`_quiet`).

    Written here rather than the SDK's ``BatchSpanProcessor``: that one drops spans once its
    queue is full (a run making judge spans faster than its thread encodes them lost them
    by the thousand), and has no way to wait instead. Here the thread that ends the span
    that fills a batch exports the batch itself (encoding it into the spool, a local file,
    while the session runs), so a producer faster than the spool waits for it, and at most
    one batch is held in memory.
    """

    def __init__(self, exporter: Any, on_end: Callable[[], None]) -> None:
        self._exporter = exporter
        self._ended = on_end  # counts every span, sent or not (see Tracing.lost_spans)
        self._lock = threading.Lock()
        self._export_lock = threading.Lock()  # batches reach the exporter one at a time
        self._batch: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self._ended()
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            self._batch.append(span)
            if len(self._batch) < _SPOOL_BATCH:
                return
            batch, self._batch = self._batch, []
        self._export(batch)

    def pending(self) -> int:
        with self._lock:
            return len(self._batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        with _quiet(), self._export_lock, contextlib.suppress(Exception):
            self._exporter.export(batch)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            batch, self._batch = self._batch, []
        if batch:
            self._export(batch)
        return True

    def shutdown(self) -> None:
        self.force_flush()


class _PhoenixSpanExporter:
    """OTLP/HTTP protobuf span exporter that never raises, logs, or reads the environment.

    The SDK's ``OTLPSpanExporter`` merges ``OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`` into the
    headers it sends (which could hand the application's credentials for another backend to
    Phoenix), logs every failure, and retries an unreachable server for its whole timeout.
    This one posts the same payload with exactly our headers, fails fast when the server
    refuses connections, waits for a busy server (:data:`_POST_PATIENCE`), and reports
    delivered and dropped spans by callback.
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
        self._unsent = 0  # spans spooled or being sent, not yet delivered or dropped
        self._released = False
        self._hand_over = hand_over
        #: When a post was last taken (or the sending began): shutdown waits while it moves.
        self.progress_at = time.monotonic()
        self._client = httpx.Client(
            headers={**headers, "Content-Type": "application/x-protobuf"},
            timeout=httpx.Timeout(_POST_TIMEOUT, connect=5.0),
        )

    def waiting(self) -> int:
        """Spans spooled or being sent."""
        with self._spool_lock:
            return self._unsent

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace.export import SpanExportResult

        with _quiet():
            try:
                body = redact_request(encode_spans(spans)).SerializeToString()
                if self._spooled(body, len(spans)):
                    return SpanExportResult.SUCCESS
                delivered = self._send([body])
            except Exception:
                delivered = False
        self._settled(len(spans), delivered)
        return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE

    def _settled(self, count: int, delivered: bool, *, spooled: bool = False) -> None:
        if spooled:
            with self._spool_lock:
                self._unsent -= count
        if delivered:
            self.progress_at = time.monotonic()
            self._on_deliver(count)
        else:
            self._on_drop(count)

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
            self._unsent += count
            return True

    def release(self) -> None:
        """Send what the spool holds, in large posts; exports from now on are sent at once."""
        with self._spool_lock:
            self._released = True
            spool, batches, self._spool, self._batches = self._spool, self._batches, None, []
        if spool is None:
            return
        self.progress_at = time.monotonic()
        if self._hand_over is not None:
            self._hand_spool_over(spool, batches)
            return
        with _quiet(), spool:
            spool.seek(0)
            self._send_batches(spool, batches, spooled=True)

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
            self._settled(count, False, spooled=True)
            return
        self._settled(count, True, spooled=True)

    def send_spool(self, path: Path, batches: Sequence[Sequence[int]]) -> None:
        """Send a spool file that another process wrote, in large posts."""
        try:
            spool = path.open("rb")
        except OSError:
            self._on_drop(sum(count for _, count in batches))
            return
        self.progress_at = time.monotonic()
        with _quiet(), spool:
            self._send_batches(spool, batches)

    def _send_batches(self, spool: Any, batches: Sequence[Sequence[int]], *,
                      spooled: bool = False) -> None:
        """Consecutive batches are posted together, up to :data:`_POST_SPANS` spans and
        :data:`_POST_BYTES` bytes a post: fewer, larger posts for the server to take."""
        post: list[bytes] = []
        spans = 0
        for size, count in [*batches, (0, 0)]:
            full = spans + count > _POST_SPANS or sum(map(len, post)) + size > _POST_BYTES
            if post and (count == 0 or full):
                try:
                    delivered = self._send(post)
                except Exception:
                    delivered = False
                self._settled(spans, delivered, spooled=spooled)
                post, spans = [], 0
            if count:
                post.append(spool.read(size))
                spans += count

    def _send(self, parts: Sequence[bytes]) -> bool:
        """Post the concatenation of ``parts`` (encoded batches: one protobuf message)."""
        import httpx

        from .._phoenix.http import with_retries

        if self._aborted.is_set():
            return False
        deadline = time.monotonic() + _POST_PATIENCE
        length = str(sum(map(len, parts)))

        def post() -> None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the export's patience is spent")
            # The body goes as an iterator over the parts, with its length (so not chunked):
            # httpx keeps each response in a reference cycle with its request, which only the
            # cyclic garbage collector frees, and a request made of bytes would keep those
            # megabytes alive with it. An exhausted iterator keeps nothing: sending a large
            # run's spool (40,000 spans: 56 MB) held all of it until the end without this.
            self._client.post(self._endpoint, content=iter(parts),
                              headers={"Content-Length": length},
                              timeout=min(remaining, _POST_TIMEOUT)).raise_for_status()

        try:
            # Nobody listening (a refused connection) fails at once: retrying would only
            # delay the caller. A busy server (503 at capacity, 429, 5xx, a timeout) is
            # waited for; the waiting stops early when the exporter is aborted.
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
