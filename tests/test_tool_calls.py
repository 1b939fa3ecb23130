"""The tool-use evaluator (``tool_calls``): the calls an agent made against those expected.

The comparison rules are checked on plain values first (no server). Then against a real
Phoenix: a dataset run whose task answers with OpenAI-shaped tool calls (and the prompt task's
``{"messages": [...]}`` shape), and production judging of real OTLP spans: a trace's
OpenInference TOOL spans in order, and an LLM span's output tool calls, each against the
expected calls its app logged in the span's metadata (``--phoenix-reference``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pytest_phoenix_evals import tool_calls
from pytest_phoenix_evals._evaluators.tools import ToolCall, compare, find_calls, from_spec

from phoenix_admin import PhoenixAdmin
from span_app import span_annotations, unique, wait_for
from usage import assert_usage_errors

SEARCH = ToolCall("search", {"query": "weather Paris", "limit": 3})
WEATHER = ToolCall("get_weather", {"city": "Paris", "unit": "C"})


# --- the comparison ---------------------------------------------------------------------------


def test_every_call_expected_and_made_passes_with_score_one() -> None:
    found = compare([SEARCH, WEATHER], [SEARCH, WEATHER])
    assert found.passed and found.score == 1.0
    assert not (found.missing or found.extra or found.wrong or found.out_of_order)


def test_arguments_are_a_json_subset_by_default_or_exact_when_asked() -> None:
    expected = [ToolCall("get_weather", {"city": "Paris"})]
    made = [ToolCall("get_weather", {"city": "Paris", "unit": "C"})]
    assert compare(expected, made).passed
    exact = compare(expected, made, arguments="exact")
    assert not exact.passed and exact.score == 0.0
    assert [(e.name, a.arguments) for e, a in exact.wrong] == [("get_weather", WEATHER.arguments)]
    assert "wrong arguments: get_weather expected" in exact.explanation()
    # Nested objects are subsets key by key; lists item by item; a boolean is never a number.
    nested = [ToolCall("book", {"trip": {"to": "Rome"}, "seats": [1, 2]})]
    assert compare(nested, [ToolCall("book", {"trip": {"to": "Rome", "by": "rail"},
                                              "seats": [1, 2]})]).passed
    assert not compare(nested, [ToolCall("book", {"trip": {"to": "Rome"},
                                                  "seats": [1, 2, 3]})]).passed
    assert not compare([ToolCall("f", {"x": True})], [ToolCall("f", {"x": 1})]).passed
    # A call expected without arguments asks only for its name.
    assert compare([ToolCall("search")], [SEARCH], arguments="exact").passed


def test_order_is_strict_by_default_or_ignored_when_asked() -> None:
    swapped = [WEATHER, SEARCH]
    strict = compare([SEARCH, WEATHER], swapped)
    assert not strict.passed and strict.score == 0.5
    assert [c.name for c in strict.out_of_order] == ["search"]
    assert "out of order: search(" in strict.explanation()
    assert compare([SEARCH, WEATHER], swapped, order="any").passed


def test_missing_extra_and_wrong_calls_are_named_and_scored() -> None:
    made = [ToolCall("search", {"query": "weather Rome"}), ToolCall("send_email", {"to": "x"})]
    found = compare([SEARCH, WEATHER], made, order="any")
    assert found.score == 0.0 and not found.passed
    assert [c.name for c in found.missing] == ["get_weather"]
    assert [c.name for c in found.extra] == ["send_email"]
    assert [e.name for e, _ in found.wrong] == ["search"]
    text = found.explanation()
    assert text.startswith("0 of 2 expected call(s) made as expected; 2 call(s) made")
    assert 'missing: get_weather({"city": "Paris", "unit": "C"})' in text
    assert 'extra: send_email({"to": "x"})' in text
    # score = matched / max(expected, made): one of two expected made, and one extra.
    one = compare([SEARCH, WEATHER], [SEARCH, ToolCall("noop", {}), ToolCall("noop", {})])
    assert one.score == pytest.approx(1 / 3)
    # Nothing expected and nothing made is a pass; anything made then is extra.
    assert compare([], []).passed and compare([], []).score == 1.0
    assert not compare([], [SEARCH]).passed


def test_any_order_finds_the_best_pairing_not_the_first() -> None:
    # The first made call fits both expected ones (subset); pairing it with the first expected
    # would leave the second unmatched.
    expected = [ToolCall("f", {}), ToolCall("f", {"a": 1})]
    made = [ToolCall("f", {"a": 1}), ToolCall("f", {"b": 2})]
    assert compare(expected, made, order="any").passed


def test_tool_calls_are_read_in_the_shapes_apps_write() -> None:
    openai = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "search", "arguments": json.dumps(SEARCH.arguments)}}]}
    assert find_calls(openai) == [SEARCH]
    # The prompt task's output: the playground's messages, arguments decoded.
    assert find_calls({"messages": [{"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": WEATHER.arguments}}]}],
        "available_tools": []}) == [WEATHER]
    assert find_calls([openai, {"role": "tool", "content": "sunny"}]) == [SEARCH]
    assert find_calls(json.dumps([SEARCH.to_json()])) == [SEARCH]
    assert find_calls("It is sunny in Paris.") is None  # text: no call shape at all
    assert find_calls({"answer": "sunny"}) is None
    assert find_calls({"role": "assistant", "content": "hi", "tool_calls": None}) == []


def test_the_evaluator_scores_a_context_and_errors_on_a_reference_without_calls() -> None:
    evaluator = tool_calls(order="any")
    context = {"input": "q", "output": {"tool_calls": [WEATHER.to_json()]},
               "reference": [SEARCH.to_json(), WEATHER.to_json()], "metadata": {}}
    [score] = asyncio.run(evaluator.evaluate(context))
    assert (score.name, score.label, score.score) == ("tool_calls", "fail", 0.5)
    assert score.metadata["tool_calls"]["missing"] == [SEARCH.to_json()]
    assert score.annotator_kind == "CODE" and score.config is not None
    # A trace's TOOL spans (metadata.tool_calls) are read when the output holds no calls.
    traced = {**context, "output": "It is sunny.",
              "metadata": {"tool_calls": [SEARCH.to_json(), WEATHER.to_json()]}}
    [passed] = asyncio.run(evaluator.evaluate(traced))
    assert passed.label == "pass" and passed.score == 1.0
    [error] = asyncio.run(evaluator.evaluate({**context, "reference": "sunny"}))
    assert error.error is not None and "the reference holds no tool calls" in error.error
    [empty] = asyncio.run(evaluator.evaluate({**context, "reference": ""}))
    assert empty.error is not None and "--phoenix-reference" in empty.error
    # Other places, by JSONPath into the context.
    placed = tool_calls(expected="$.reference.plan", made="$.output.steps")
    [moved] = asyncio.run(placed.evaluate({
        **context, "reference": {"plan": [SEARCH.to_json()]},
        "output": {"steps": [SEARCH.to_json()]}}))
    assert (moved.label, moved.score) == ("pass", 1.0)
    [nowhere] = asyncio.run(placed.evaluate(context))
    assert nowhere.error is not None and "path '$.reference.plan' finds nothing" in nowhere.error


def test_the_command_line_names_its_rules() -> None:
    chosen = from_spec("tool_calls:exact:any-order")
    assert (chosen.arguments, chosen.order) == ("exact", "any")
    assert (from_spec("tool_calls").arguments, from_spec("tool_calls").order) == \
        ("subset", "strict")
    with pytest.raises(ValueError, match="'sideways' is not a rule of tool_calls"):
        from_spec("tool_calls:sideways")
    with pytest.raises(ValueError, match="write 'exact' or 'subset'"):
        tool_calls(arguments="fuzzy")  # type: ignore[arg-type]


# --- a dataset run --------------------------------------------------------------------------

AGENT = '''
import json
from pytest_phoenix_evals import tool_calls

CALLS = {
    "weather in Paris": [("search", {"query": "weather Paris", "limit": 3}),
                         ("get_weather", {"city": "Paris", "unit": "C"})],
    "weather in Rome": [("get_weather", {"city": "Rome"})],
    "book a table": [("book", {"seats": 2})],
}

def agent(input):
    calls = CALLS[input["question"]]
    if input["question"] == "book a table":  # the prompt task's output shape
        return {"messages": [{"role": "assistant", "tool_calls": [
            {"function": {"name": n, "arguments": a}} for n, a in calls]}],
            "available_tools": []}
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call-{i}", "type": "function",
         "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in enumerate(calls)]}

def pytest_phoenix_evals_task(config, dataset):
    return agent

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [tool_calls()]
'''


def test_a_dataset_run_checks_the_agents_tool_calls_against_the_reference(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    admin.create_dataset(name, [
        {"input": {"question": "weather in Paris"},
         "output": {"tool_calls": [{"name": "search", "arguments": {"query": "weather Paris"}},
                                   {"name": "get_weather", "arguments": {"city": "Paris"}}]}},
        {"input": {"question": "weather in Rome"},
         "output": {"tool_calls": [{"name": "search"},
                                   {"name": "get_weather", "arguments": {"city": "Rome"}}]}},
        {"input": {"question": "book a table"},
         "output": {"tool_calls": [{"name": "book", "arguments": {"seats": 2}}]}},
    ])
    pytester.makeconftest(AGENT)
    result = pytester.runpytest(f"--phoenix-dataset={name}", "-p", "no:cacheprovider")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    assert "missing: search(...)" in out, out
    assert "1 of 2 expected call(s) made as expected; 1 call(s) made" in out


# --- production judging of real OTLP spans --------------------------------------------------


def emit_agent(url: str, project: str, runs: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One trace per run: a root CHAIN span ``agent`` (its metadata the expected calls), an LLM
    span whose output message calls the tools, then one OpenInference TOOL span per call made,
    in order (``tool.name``, the arguments as the span's JSON input)."""
    from openinference.semconv.trace import SpanAttributes as A
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import format_span_id, format_trace_id

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("agent_app")
    sent = []
    try:
        for run in runs:
            with tracer.start_as_current_span("agent", attributes={
                    A.OPENINFERENCE_SPAN_KIND: "CHAIN", A.INPUT_VALUE: run["question"],
                    A.OUTPUT_VALUE: "done",
                    A.METADATA: json.dumps({"expected": run["expected"]})}) as root:
                message = "llm.output_messages.0.message"
                llm_attributes: dict[str, Any] = {
                    A.OPENINFERENCE_SPAN_KIND: "LLM", A.LLM_MODEL_NAME: "gpt-4o-mini",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": run["question"],
                    f"{message}.role": "assistant",
                    A.METADATA: json.dumps({"expected": run["expected"]})}
                for i, (name, arguments) in enumerate(run["made"]):
                    call = f"{message}.tool_calls.{i}.tool_call"
                    llm_attributes[f"{call}.function.name"] = name
                    llm_attributes[f"{call}.function.arguments"] = json.dumps(arguments)
                with tracer.start_as_current_span("ChatCompletion",
                                                  attributes=llm_attributes) as llm:
                    pass
                for name, arguments in run["made"]:
                    with tracer.start_as_current_span(name, attributes={
                            A.OPENINFERENCE_SPAN_KIND: "TOOL", "tool.name": name,
                            A.INPUT_VALUE: json.dumps(arguments),
                            A.INPUT_MIME_TYPE: "application/json"}):
                        pass
            sent.append({"trace_id": format_trace_id(root.get_span_context().trace_id),
                         "llm_id": format_span_id(llm.get_span_context().span_id),
                         "root_id": format_span_id(root.get_span_context().span_id)})
    finally:
        provider.shutdown()
    wait_for(url, project, [s["llm_id"] for s in sent] + [s["root_id"] for s in sent])
    return sent


RUNS = [
    {"question": "weather in Paris",
     "expected": [{"name": "search", "arguments": {"query": "weather Paris"}},
                  {"name": "get_weather", "arguments": {"city": "Paris"}}],
     "made": [("search", {"query": "weather Paris", "limit": 3}),
              ("get_weather", {"city": "Paris", "unit": "C"})]},
    {"question": "weather in Rome",
     "expected": [{"name": "search", "arguments": {"query": "weather Rome"}},
                  {"name": "get_weather", "arguments": {"city": "Rome"}}],
     "made": [("get_weather", {"city": "Milan"}), ("send_email", {"to": "boss"})]},
]


def ours(url: str, project: str, ids: list[str], target: str) -> dict[str, dict[str, Any]]:
    rows = [r for r in span_annotations(url, project, ids, target)
            if r["identifier"] == "pytest-phoenix-evals" and r["name"] == "tool_calls"]
    return {r[f"{target}_id"]: r for r in rows}


def test_a_traces_tool_spans_in_order_are_judged_against_the_reference(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    project = unique("agent-traces")
    sent = emit_agent(phoenix_env, project, RUNS)
    result = pytester.runpytest(
        f"--phoenix-project={project}", "--phoenix-settle=0s", "-p", "no:cacheprovider",
        "--phoenix-target=trace", "--phoenix-spans=span_kind == 'CHAIN'",
        "--phoenix-evaluators=tool_calls", "--phoenix-reference=$.metadata.expected")
    out = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1, out
    written = ours(phoenix_env, project, [s["trace_id"] for s in sent], "trace")
    right, wrong = written[sent[0]["trace_id"]], written[sent[1]["trace_id"]]
    assert (right["result"]["label"], right["result"]["score"]) == ("pass", 1.0)
    assert (wrong["result"]["label"], wrong["result"]["score"]) == ("fail", 0.0)
    explanation = wrong["result"]["explanation"]
    assert 'missing: search({"query": "weather Rome"})' in explanation
    assert 'extra: send_email({"to": "boss"})' in explanation
    assert "wrong arguments: get_weather expected" in explanation
    assert wrong["metadata"]["tool_calls"]["extra"] == [{"name": "send_email",
                                                         "arguments": {"to": "boss"}}]
    assert wrong["annotator_kind"] == "CODE"


def test_an_llm_spans_output_tool_calls_are_judged_with_exact_arguments(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    project = unique("agent-spans")
    sent = emit_agent(phoenix_env, project, RUNS[:1])
    result = pytester.runpytest(
        f"--phoenix-project={project}", "--phoenix-settle=0s", "-p", "no:cacheprovider",
        "--phoenix-evaluators=tool_calls:exact", "--phoenix-reference=$.metadata.expected")
    result.assert_outcomes(failed=1)
    [row] = ours(phoenix_env, project, [sent[0]["llm_id"]], "span").values()
    # The calls were made, in order, but with more arguments than expected: exact fails them.
    assert (row["result"]["label"], row["result"]["score"]) == ("fail", 0.0)
    assert [w["name"] for w in row["metadata"]["tool_calls"]["wrong"]] == ["search",
                                                                           "get_weather"]
    assert row["metadata"]["tool_calls"]["arguments"] == "exact"


def test_a_tool_calls_rule_that_is_none_is_a_usage_error(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    project = unique("agent-bad")
    emit_agent(phoenix_env, project, RUNS[:1])
    assert_usage_errors(pytester, [
        ([f"--phoenix-project={project}", "--phoenix-evaluators=tool_calls:sideways"],
         "'sideways' is not a rule of tool_calls: write "
         "tool_calls[:exact|subset][:strict|any-order]"),
    ])
