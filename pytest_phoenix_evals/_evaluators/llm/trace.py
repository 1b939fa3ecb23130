"""Traces of an LLM judge, shaped as the server traces its own LLM evaluators.

The server (``LLMEvaluator.evaluate`` in ``phoenix/server/api/evaluators.py``) makes the
evaluator span the root of a new trace in the dataset evaluator's project, with the prompt
and the chat completion as its children; the annotation carries that trace's id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._tracing.spans import SpanHandle, llm_attributes, start_child_span, start_root_span

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from ..._tracing.export import Tracing


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
        with start_child_span(self._tracer, "ChatCompletion", "LLM", dict(params),
                              attributes=llm_request_attributes(model, provider, params),
                              parent=self.root) as span:
            yield span

    def finish(self, results: Sequence[Mapping[str, Any]], error: str | None) -> None:
        self.root.set_output({"results": list(results)})
        if error is not None:
            self.root.record_error(RuntimeError(error))
