"""A prompt as the task is run exactly as Phoenix's playground runs it over a dataset: the same
prompt version goes through the server's own ``chatCompletionOverDataset`` (its experiment
runner calling the stand-in model) and through the plugin, and per example the model receives
the same request (the same JSON, key order included), the runs hold the same output, and the
dataset's attached evaluator annotates them alike.

The prompt exercises what the playground does to a template: text parts joined by newlines,
an assistant tool call and a tool result kept as such, a Mustache section, invocation
parameters, and messages appended from each example's input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge

HISTORY = [{"role": "user", "content": "Hello"},
           {"role": "assistant", "content": [{"type": "text", "text": "Hi."},
                                             {"type": "text", "text": "Ask away."}]}]
EXAMPLES = [
    {"input": {"question": "What is the capital of France?", "hint": "Seine",
               "history": HISTORY}, "output": {"answer": "Paris"}, "metadata": {}},
    {"input": {"question": "Who wrote Hamlet?", "hint": "", "history": []},
     "output": {"answer": "Shakespeare"}, "metadata": {}},
    {"input": {"question": "What is the capital of Spain?", "hint": "",
               "history": HISTORY[:1]}, "output": {"answer": "Madrid"}, "metadata": {}},
]
ANSWERS = [["capital of France", "Paris, on the Seine."],
           ["Hamlet", "William Shakespeare wrote it."],
           ["capital of Spain", "Barcelona."]]
# A REST prompt version, as a prompt file would hold it written out.
TEXT_VERSION: dict[str, Any] = {
    "model_provider": "OPENAI", "model_name": "gpt-4o-mini", "template_type": "CHAT",
    "template_format": "MUSTACHE",
    "template": {"type": "chat", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You answer trivia."},
                                       {"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Warm-up: look something up."},
        {"role": "assistant", "content": [{"type": "tool_call", "tool_call_id": "call_1",
                                           "tool_call": {"type": "function", "name": "lookup",
                                                         "arguments": '{"topic": "warm-up, é"}'}}]},
        {"role": "tool", "content": [{"type": "tool_result", "tool_call_id": "call_1",
                                      "tool_result": {"found": True, "note": "é"}}]},
        {"role": "user", "content": "Question: {{question}}{{#hint}} (hint: {{hint}}){{/hint}}"},
    ]},
    "invocation_parameters": {"type": "openai", "openai": {
        "temperature": 0.2, "max_tokens": 50, "seed": 7, "stop": ["END"], "top_p": 1}},
}
TOOL_VERSION: dict[str, Any] = {
    **TEXT_VERSION,
    "tools": {"type": "tools", "tools": [{"type": "function", "function": {
        "name": "answer", "description": "Give the answer.",
        "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                       "required": ["answer"]}}}],
        "tool_choice": {"type": "zero_or_more"}},
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "reply", "schema": {"type": "object",
                                    "properties": {"text": {"type": "string"}}}}},
}


# A model the server sends to the Responses API: the template's tool call and tool result
# become function_call and function_call_output items there.
RESPONSES_VERSION: dict[str, Any] = {**TOOL_VERSION, "model_name": "gpt-5"}


@pytest.fixture(scope="module")
def parity(admin: PhoenixAdmin) -> dict[str, Any]:
    dataset_id = admin.create_dataset("playground-parity", EXAMPLES)
    evaluator = admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                                     {"text": "$.output.messages[0].content",
                                      "words": "$.reference.answer"})
    versions = {}
    for name, version in (("parity-text", TEXT_VERSION), ("parity-tools", TOOL_VERSION),
                          ("parity-responses", RESPONSES_VERSION)):
        response = admin.http.post("/v1/prompts", json={"prompt": {"name": name},
                                                        "version": version})
        response.raise_for_status()
        versions[name] = response.json()["data"]["id"]
    return {"id": dataset_id, "evaluator": evaluator, "versions": versions}


def by_question(requests: list[dict[str, Any]]) -> dict[str, str]:
    """Each model request's body as JSON text (key order kept), by its question."""
    found = {}
    for request in requests:
        if request["path"] not in ("/v1/chat/completions", "/v1/responses"):
            continue
        text = json.dumps(request["body"], ensure_ascii=False)
        question = next(e["input"]["question"] for e in EXAMPLES
                        if e["input"]["question"] in text)
        assert question not in found, "one request per example"
        found[question] = text
    return found


def outputs_and_annotations(admin: PhoenixAdmin, experiment_id: str
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
    examples = {r["dataset_example_id"]: r for r in admin.runs(experiment_id)}
    outputs = {run_id: run["output"] for run_id, run in examples.items()}
    # (Not the explanation: the built-ins word theirs in our own words; see
    # tests/test_builtin_parity.py.)
    annotations = {a["example_id"]: (a["name"], a["label"], a["score"], a["error"])
                   for a in admin.annotations(experiment_id)}
    return outputs, annotations


@pytest.mark.parametrize("prompt", ["parity-text", "parity-tools", "parity-responses"])
def test_the_plugin_runs_a_prompt_as_the_playground_does(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        parity: dict[str, Any], prompt: str) -> None:
    judge.configure(answers=ANSWERS)
    version = admin.prompt_version_input(prompt)
    assert version["id"] == parity["versions"][prompt]
    server_experiment = admin.run_server_experiment(
        parity["id"], [parity["evaluator"]], [], prompt_version=version["input"],
        appended_messages_path="history")
    server_requests = by_question(judge.requests)
    judge.reset()
    judge.configure(answers=ANSWERS)
    result = pytester.runpytest("--phoenix-dataset=playground-parity", "-p",
                                "no:cacheprovider", f"--phoenix-task=prompt:{prompt}",
                                "--phoenix-prompt-messages=history")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), \
        result.stdout.str()
    ours = by_question(judge.requests)
    assert len(server_requests) == len(ours) == 3
    for question, body in server_requests.items():
        assert ours[question] == body, question
    # The same outputs and annotations, example by example.
    experiments = [e for e in admin.experiments(parity["id"]) if e["id"] != server_experiment]
    mine = max(experiments, key=lambda e: e["created_at"])["id"]
    server_outputs, server_annotations = outputs_and_annotations(admin, server_experiment)
    our_outputs, our_annotations = outputs_and_annotations(admin, mine)
    for example_id, output in server_outputs.items():
        assert json.dumps(our_outputs[example_id], sort_keys=True) == \
            json.dumps(output, sort_keys=True), example_id
    assert len(server_annotations) == 3
    if prompt == "parity-responses":  # the tools the answer echoed, as Phoenix records them
        assert all(o["available_tools"][0]["strict"] is True for o in our_outputs.values())
    if prompt == "parity-text":  # (with tools the model answers by a call, not a text)
        assert our_annotations == server_annotations
        assert sorted(a[2] for a in our_annotations.values()) == [0.0, 1.0, 1.0]
