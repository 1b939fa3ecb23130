"""A small support bot traced into Phoenix as a production app is: the real ``openai`` client,
instrumented by ``openinference-instrumentation-openai``, exporting its spans over OTLP.

    python example_suite/traced_app.py --project support-bot --phoenix-url URL \\
        [--model-url URL] [--model NAME] [--session ID] [QUESTION ...]

Each question is one trace: a root ``support-bot`` CHAIN span, a ``retrieve`` RETRIEVER span
(the documents looked up for the question) and the ``ChatCompletion`` LLM span that the
instrumentation records for the model call, which gets the documents in its prompt. The
model is OpenAI's unless ``--model-url`` (or OPENAI_BASE_URL) points at another
OpenAI-compatible server, such as the stand-in model the example suite starts. The script waits
until Phoenix can query the spans it sent, so that a judging run right after finds them.

With ``--session ID`` the questions are the turns of one conversation: every span of each
trace carries OpenInference's ``session.id`` (``using_session``), and the model sees the
conversation so far, so that ``--phoenix-target=session`` can judge it as a whole.
"""

from __future__ import annotations

import argparse
import os
import time

import httpx

QUESTIONS = ("What is the capital of France?", "What is the capital of Spain?")
SYSTEM = "You answer customer questions in one word, from these documents only:\n"
# The app's knowledge base: a document per keyword.
DOCUMENTS = {
    "france": "Paris is the capital of France.",
    "spain": "Madrid is the capital of Spain.",
    "hamlet": "Hamlet is a tragedy by William Shakespeare.",
}


def retrieve(question: str) -> list[str]:
    return [text for key, text in DOCUMENTS.items() if key in question.lower()]


def llm_span_count(url: str, project: str) -> int:
    response = httpx.get(f"{url}/v1/projects/{project}/spans", params={"limit": 1000},
                         timeout=10)
    if response.status_code == 404:  # no span yet: the project is made by the first
        return 0
    response.raise_for_status()
    return sum(s.get("span_kind") == "LLM" for s in response.json()["data"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="support-bot")
    parser.add_argument("--phoenix-url", required=True)
    parser.add_argument("--model-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--session", default=None,
                        help="one conversation: every question is a turn of this session id")
    parser.add_argument("questions", nargs="*", default=list(QUESTIONS))
    args = parser.parse_args(argv)

    from contextlib import nullcontext

    from openai import OpenAI
    from openinference.instrumentation import using_session
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    url = args.phoenix_url.rstrip("/")
    before = llm_span_count(url, args.project)
    provider = TracerProvider(resource=Resource({"openinference.project.name": args.project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("support-bot")
    client = OpenAI(base_url=args.model_url,
                    api_key=os.environ.get("OPENAI_API_KEY") or "no-key-needed")
    history: list[dict[str, str]] = []  # the conversation so far (with --session)
    for question in args.questions:
        session = using_session(args.session) if args.session else nullcontext()
        with session, tracer.start_as_current_span("support-bot", attributes={
                "openinference.span.kind": "CHAIN", "input.value": question,
                **({"session.id": args.session} if args.session else {})}) as root:
            with tracer.start_as_current_span("retrieve", attributes={
                    "openinference.span.kind": "RETRIEVER", "input.value": question}) as span:
                documents = retrieve(question)
                for i, text in enumerate(documents):
                    span.set_attribute(f"retrieval.documents.{i}.document.content", text)
            answer = client.chat.completions.create(model=args.model, messages=[
                {"role": "system", "content": SYSTEM + "\n".join(documents)}, *history,
                {"role": "user", "content": question}])
            text = answer.choices[0].message.content or ""
            root.set_attribute("output.value", text)
            if args.session:
                history += [{"role": "user", "content": question},
                            {"role": "assistant", "content": text}]
        print(f"{question} -> {text}")
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()
    deadline = time.monotonic() + 60
    while llm_span_count(url, args.project) < before + len(args.questions):
        if time.monotonic() > deadline:
            raise SystemExit(f"Phoenix at {url} did not show the spans within a minute")
        time.sleep(0.2)
    print(f"{len(args.questions)} ChatCompletion span(s) in project {args.project!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
