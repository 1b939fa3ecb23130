"""Production-like spans for the production-traces tests, sent to a real Phoenix over OTLP.

Each conversation is one trace shaped as an OpenInference-instrumented RAG app makes it: a root
CHAIN span ``qa`` (input and output values), a RETRIEVER span (the documents it found) and an LLM
span ``ChatCompletion`` (input messages, output messages, model). The spans go through the
OpenTelemetry SDK and the real OTLP/HTTP exporter on a private tracer provider, and the helper
waits until Phoenix can query them (it answers an OTLP post before storing the spans).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Sent:
    """The ids (hex, as Phoenix shows them) of one conversation's spans."""

    trace_id: str
    root_id: str
    llm_id: str
    question: str
    answer: str


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def emit(url: str, project: str, conversations: Sequence[Mapping[str, Any]], *,
         wait: bool = True) -> list[Sent]:
    """Send one trace per conversation (``question``, ``answer``, optional ``documents``,
    ``metadata``, ``model``, ``name``) into ``project``; the ids of what was sent."""
    from openinference.semconv.trace import SpanAttributes as A
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import format_span_id, format_trace_id

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("span_app")
    sent = []
    try:
        for conversation in conversations:
            question, answer = conversation["question"], conversation["answer"]
            with tracer.start_as_current_span("qa", attributes={
                    A.OPENINFERENCE_SPAN_KIND: "CHAIN", A.INPUT_VALUE: question,
                    A.OUTPUT_VALUE: answer}) as root:
                documents = conversation.get("documents") or ()
                if documents:
                    with tracer.start_as_current_span("retrieve", attributes={
                            A.OPENINFERENCE_SPAN_KIND: "RETRIEVER", A.INPUT_VALUE: question,
                            **{f"retrieval.documents.{i}.document.content": text
                               for i, text in enumerate(documents)}}):
                        pass
                attributes: dict[str, Any] = {
                    A.OPENINFERENCE_SPAN_KIND: "LLM",
                    A.LLM_MODEL_NAME: conversation.get("model", "gpt-4o-mini"),
                    "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": "Answer in a word.",
                    "llm.input_messages.1.message.role": "user",
                    "llm.input_messages.1.message.content": question,
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": answer,
                    A.INPUT_VALUE: question, A.OUTPUT_VALUE: answer}
                if conversation.get("metadata"):
                    import json

                    attributes[A.METADATA] = json.dumps(conversation["metadata"])
                with tracer.start_as_current_span(conversation.get("name", "ChatCompletion"),
                                                  attributes=attributes) as llm:
                    pass
            sent.append(Sent(format_trace_id(root.get_span_context().trace_id),
                             format_span_id(root.get_span_context().span_id),
                             format_span_id(llm.get_span_context().span_id), question, answer))
    finally:
        provider.shutdown()
    if wait:
        wait_for(url, project, [s.llm_id for s in sent])
    return sent


def wait_for(url: str, project: str, span_ids: Sequence[str], timeout: float = 60) -> None:
    """Until Phoenix lists every one of these spans in ``project``."""
    deadline = time.monotonic() + timeout
    wanted = set(span_ids)
    seen: set[str] = set()
    with httpx.Client(base_url=url, timeout=10) as client:
        while True:
            response = client.get(f"/v1/projects/{project}/spans", params={"limit": 1000})
            if response.status_code == 200:
                seen = {s["context"]["span_id"] for s in response.json()["data"]}
                if wanted <= seen:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(wanted & seen)} of {len(wanted)} spans arrived in "
                                     f"{project!r}")
            time.sleep(0.2)


def span_annotations(url: str, project: str, span_ids: Sequence[str],
                     target: str = "span") -> list[dict[str, Any]]:
    """Every annotation of these spans (or traces), as Phoenix returns them."""
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.get(f"/v1/projects/{project}/{target}_annotations",
                              params={f"{target}_ids": list(span_ids), "limit": 1000})
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows


def annotate(url: str, span_id: str, name: str, label: str, *, identifier: str = "",
             kind: str = "HUMAN") -> None:
    """An annotation written by someone else (a human, by default)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/v1/span_annotations", params={"sync": "true"}, json={
            "data": [{"span_id": span_id, "name": name, "annotator_kind": kind,
                      "result": {"label": label}, "identifier": identifier}]})
        response.raise_for_status()
