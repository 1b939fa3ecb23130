"""Traces of an LLM judge: one trace a judge call, in the judges' project, for a person to
audit and correct the judgment.

A call is two spans, and each thing it exports is sent once:

    Evaluator: <name>   EVALUATOR  input.value: what was judged (input, output, reference);
                                   output.value: each annotation's label and score (or the
                                   error); metadata: the subject it judged (its span and
                                   trace id, session id or example id) and the prompt version
      ChatCompletion    LLM        the judge's messages as sent, its answer (the tool call with
                                   the label and explanation), model, invocation parameters,
                                   the tool offered, token counts

The server traces its own LLM evaluators as Evaluator, Prompt and ChatCompletion spans, with
the context, the template's variables and the rendered messages each stored twice or three
times over (``input.value`` of the request beside ``llm.input_messages``, the explanation on
the root beside the answer). The server stores a span at about the cost of an annotation, and
a judge call's trace was about ten times its annotation's cost: here the Prompt span is left
out (its variables and messages are in the other two), the request is not repeated as
``input.value``, the subject's own attributes are not copied (the metadata links to the
subject instead) and the explanation is read from the answer. ``benchmarks/judge_traces.py``
measures what one call exports.

The root is what ``--phoenix-corrections`` reads (``input.value`` and the labels of
``output.value``), and what a person annotates to correct the judgment; the annotation carries
its trace id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._tracing.spans import SpanHandle, llm_attributes, start_child_span, start_root_span

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from ..._tracing.export import Tracing

#: The keys of a context's metadata that name the subject a judge judged, and how the
#: judge's root span names them (its ``metadata`` attribute).
_SUBJECT_KEYS = {"span_id": "subject_span_id", "trace_id": "subject_trace_id",
                 "session_id": "subject_session_id"}


def llm_request_attributes(model: str, provider: str, params: Mapping[str, Any]
                           ) -> dict[str, Any]:
    """The OpenInference attributes of a model request (a judge's or a prompt task's), from
    the keyword arguments it is sent with."""
    # Chat Completions sends "messages", the Responses API "input" (message items).
    invocation = {k: v for k, v in params.items()
                  if k not in ("messages", "input", "model", "tools")}
    messages = [{k: m[k] for k in ("role", "content", "tool_calls", "tool_call_id") if k in m}
                for m in params.get("messages") or params.get("input") or ()]
    return llm_attributes(model_name=model, provider=provider.lower(), system="openai",
                          input_messages=messages, invocation_parameters=invocation,
                          tools=params.get("tools"))


def judged(context: Any) -> Any:
    """What a judge call's root records as judged: the context's input, output and reference
    (what ``--phoenix-corrections`` makes a golden example of), not its metadata (the subject's
    own, which the root links to, and whatever of it the judge read is in its messages)."""
    if not isinstance(context, Mapping):
        return context
    kept = {key: context[key] for key in ("input", "output") if key in context}
    if context.get("reference") not in (None, ""):
        kept["reference"] = context["reference"]
    return kept


def subject_link(context: Any, example: Any = None) -> dict[str, Any]:
    """The ids of what a judge judged: a production span and its trace, a session, or a
    dataset example."""
    metadata = context.get("metadata") if isinstance(context, Mapping) else None
    link = {name: metadata[key] for key, name in _SUBJECT_KEYS.items()
            if isinstance(metadata, Mapping) and isinstance(metadata.get(key), str)}
    example_id = getattr(example, "id", None)
    if not link and isinstance(example_id, str):
        link["example_id"] = example_id
    return link


class JudgeTrace:
    """Traces the calls of one LLM judge into ``project``."""

    def __init__(self, tracing: Tracing, project: str) -> None:
        self._tracer = tracing.tracer(project)

    @contextlib.contextmanager
    def evaluator(self, name: str, context: Any, *, example: Any = None,
                  metadata: Mapping[str, Any] | None = None) -> Iterator[_EvaluatorSpan]:
        """The root of one judge call; ``metadata`` (the prompt version) joins the link to
        the subject in its ``metadata`` attribute."""
        from openinference.semconv.trace import SpanAttributes

        attributes = {SpanAttributes.METADATA: {**subject_link(context, example),
                                                **(metadata or {})}}
        with start_root_span(self._tracer, f"Evaluator: {name}", "EVALUATOR",
                             judged(context), attributes=attributes) as root:
            yield _EvaluatorSpan(self._tracer, root)


class _EvaluatorSpan:
    def __init__(self, tracer: Tracer, root: SpanHandle) -> None:
        self._tracer = tracer
        self.root = root

    @property
    def trace_id(self) -> str | None:
        return self.root.trace_id_hex

    @contextlib.contextmanager
    def llm(self, model: str, provider: str, params: Mapping[str, Any]) -> Iterator[SpanHandle]:
        """The chat completion span; the caller sets the output with :func:`llm_attributes`.
        The request is recorded once, as its messages, parameters and tools (not again as
        ``input.value``)."""
        with start_child_span(self._tracer, "ChatCompletion", "LLM",
                              attributes=llm_request_attributes(model, provider, params),
                              parent=self.root) as span:
            yield span

    def finish(self, results: Sequence[Mapping[str, Any]], error: str | None) -> None:
        """Each annotation's name, label and score (its explanation is in the judge's
        answer, on the ChatCompletion span)."""
        self.root.set_output({"results": [{k: v for k, v in r.items() if k != "explanation"}
                                          for r in results]})
        if error is not None:
            self.root.record_error(RuntimeError(error))
