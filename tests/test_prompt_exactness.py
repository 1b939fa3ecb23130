"""Where a prompt task's run could still differ from the server's playground run, the same input
goes through the server's own code and through the plugin, and the runs must agree example by
example: the request the model receives, the run's output, and the run's error word for word.

- F-string names that reach into the context (``{input.question}`` over the whole context,
  ``{metadata.lang}``, ``{input.items[0]}``, ``{input.d[x]}``) run; a key the formatter cannot
  find is the run's error, quoted as ``str(KeyError)`` quotes it.
- A Chat Completions tool call with empty arguments holds ``"arguments": null``; an empty
  Responses API answer holds ``"content": ""``.
- Appended messages that are not a list, a message that is not an object, a path an example
  lacks: each an error run with the server's words, the other examples run on. A tool message
  without its call id errors on Chat Completions and is dropped on the Responses API.
- A multi-output LLM judge that fails writes one error annotation named after its first output
  config, as the server's experiment runner does.
- Older OpenAI-family invocation parameters (``azure_openai``) are what the server makes of
  them: ``openai`` parameters, the same request.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from pytest_phoenix_evals._modes.prompt_file import openai_family, read_prompt_file, same_version

from phoenix_admin import PhoenixAdmin
from phoenix_server import LIGHT_IMPORT, ensure_server_venv
from stand_in_judge import StandInJudge

# Each example's question is a word no other example's text holds: a request is told by it.
EXAMPLES = [
    {"input": {"question": "Qfull", "items": ["first"], "d": {"x": "dx"}, "history": [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": [{"type": "text", "text": "noted"}]}]},
     "output": {}, "metadata": {"lang": "en"}},
    # {input.d[x]} finds no x (KeyError 'x'); the history holds a tool message without its id.
    {"input": {"question": "Qkeyerror", "items": ["first"], "d": {"y": 1},
               "history": [{"role": "tool", "content": "orphan result"}]},
     "output": {}, "metadata": {"lang": "fr"}},
    {"input": {"question": "Qnotalist", "items": ["first"], "d": {"x": 1},
               "history": "not a list"}, "output": {}, "metadata": {"lang": "de"}},
    {"input": {"question": "Qnotadict", "items": ["first"], "d": {"x": 1},
               "history": ["not a dict"]}, "output": {}, "metadata": {"lang": "it"}},
    {"input": {"question": "Qnohistory", "items": ["first"], "d": {"x": 1}},
     "output": {}, "metadata": {"lang": "es"}},
    # The stand-in answers this one with an empty text.
    {"input": {"question": "EMPTY", "items": ["first"], "d": {"x": 1}, "history": []},
     "output": {}, "metadata": {"lang": "pt"}},
    # The server's runner records no run for these two (see below).
    {"input": {"question": "Qnolang", "items": ["first"], "d": {"x": 1}, "history": []},
     "output": {}, "metadata": {}},
    {"input": {"question": "Qnoitems", "items": [], "d": {"x": 1}, "history": []},
     "output": {}, "metadata": {"lang": "nl"}},
]
QUESTIONS = [e["input"]["question"] for e in EXAMPLES]
TOOLS = {"type": "tools", "tools": [{"type": "function", "function": {
    "name": "ping", "description": "Ping.", "parameters": {"type": "object", "properties": {}}}}],
    "tool_choice": {"type": "one_or_more"}}


def version(model: str, *, fstring: bool = False, tools: bool = False) -> dict[str, Any]:
    """A REST prompt version: F-string names into the whole context, or a Mustache question."""
    text = ("{input.question} ({metadata.lang}): {input.items[0]} {input.d[x]}" if fstring
            else "Question: {{question}}")
    found: dict[str, Any] = {
        "model_provider": "OPENAI", "model_name": model, "template_type": "CHAT",
        "template_format": "F_STRING" if fstring else "MUSTACHE",
        "template": {"type": "chat", "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": text}]},
        "invocation_parameters": {"type": "openai", "openai": {"temperature": 0.1}}}
    if tools:
        found["tools"] = TOOLS
    return found


PROMPTS = {
    "exact-fstring": version("gpt-4o-mini", fstring=True),
    "exact-chat-tools": version("gpt-4o-mini", tools=True),
    "exact-responses": version("gpt-5"),
    "exact-responses-tools": version("gpt-5", tools=True),
}


@pytest.fixture(scope="module")
def exact(admin: PhoenixAdmin) -> dict[str, Any]:
    dataset_id = admin.create_dataset("prompt-exactness", EXAMPLES)
    for name, body in PROMPTS.items():
        response = admin.http.post("/v1/prompts", json={"prompt": {"name": name},
                                                        "version": body})
        response.raise_for_status()
    return {"id": dataset_id}


def requests_by_question(requests: list[dict[str, Any]]) -> dict[str, str]:
    """Each model request's body as JSON text (key order kept), by the question it holds."""
    found = {}
    for request in requests:
        if request["path"] not in ("/v1/chat/completions", "/v1/responses"):
            continue
        text = json.dumps(request["body"], ensure_ascii=False)
        question = next(q for q in QUESTIONS if q in text)
        assert question not in found, "one request per example"
        found[question] = text
    return found


def runs_by_question(admin: PhoenixAdmin, experiment_id: str,
                     dataset_id: str) -> dict[str, tuple[Any, str | None]]:
    """question -> (output, error) of each run (the output only when the run did not fail)."""
    examples = {e["id"]: e["input"]["question"] for e in admin.http.get(
        f"/v1/datasets/{dataset_id}/examples").json()["data"]["examples"]}
    return {examples[r["dataset_example_id"]]: (None if r["error"] else r["output"], r["error"])
            for r in admin.runs(experiment_id)}


def our_experiment(admin: PhoenixAdmin, dataset_id: str, name: str) -> str:
    return next(e["id"] for e in admin.experiments(dataset_id) if e.get("name") == name)


@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_a_prompt_run_is_exactly_the_playground_run(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        exact: dict[str, Any], prompt: str) -> None:
    fstring = prompt == "exact-fstring"
    switches = {"answers": [["EMPTY", ""]], "malformed": "empty_arguments"}
    judge.configure(**switches)
    server_experiment = admin.run_server_experiment(
        exact["id"], [], [], prompt_version=admin.prompt_version_input(prompt)["input"],
        appended_messages_path="history", template_variables_path="" if fstring else None)
    server_requests = requests_by_question(judge.requests)
    server_runs = runs_by_question(admin, server_experiment, exact["id"])
    judge.reset()
    judge.configure(**switches)
    name = f"{prompt}-{uuid.uuid4().hex[:8]}"
    args = ["--phoenix-dataset=prompt-exactness", "-p", "no:cacheprovider",
            f"--phoenix-task=prompt:{prompt}", "--phoenix-prompt-messages=history",
            f"--phoenix-experiment-name={name}"]
    result = pytester.runpytest(*args, *(["--phoenix-prompt-variables=."] if fstring else []))
    # The runs that error fail their cases; nothing is refused before the run.
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    ours = runs_by_question(admin, our_experiment(admin, exact["id"], name), exact["id"])
    our_requests = requests_by_question(judge.requests)

    assert our_requests == server_requests
    # Every run the server recorded, the same: the output, or the error word for word.
    for question, run in server_runs.items():
        assert ours[question] == run, question
    errors = {q: error for q, (_, error) in server_runs.items() if error}
    appended = {"Qnotalist": "Value at path 'history' is not a list (got str)",
                "Qnotadict": "Message at index 0 is not a dict (got str)",
                "Qnohistory": "\"Key 'history' not found in path 'history'\""}
    if fstring:
        assert errors == {"Qkeyerror": "'x'", **appended}
        assert server_runs["Qfull"][0]["messages"][0]["content"] == "stand-in judge"
        assert "Qfull (en): first dx" in server_requests["Qfull"]
        # The server's runner lets the formatter's AttributeError and IndexError escape and
        # records no run for the example; here it is an error run with the formatter's words.
        assert set(ours) - set(server_runs) == {"Qnolang", "Qnoitems"}
        assert ours["Qnolang"] == (None, "No attribute 'lang'")
        assert ours["Qnoitems"] == (None, "list index out of range")
        return
    assert set(ours) == set(server_runs) == set(QUESTIONS)
    if prompt == "exact-chat-tools":
        assert errors == {"Qkeyerror": "tool_call_id is required for tool messages", **appended}
        calls = server_runs["Qfull"][0]["messages"][0]["tool_calls"]
        assert calls == [{"function": {"name": "ping", "arguments": None}}]
    else:  # the tool message without its id is dropped, and the example runs
        assert errors == appended
        assert "orphan result" not in server_requests["Qkeyerror"]
    if prompt == "exact-responses":
        assert server_runs["EMPTY"][0]["messages"] == [{"role": "assistant", "content": ""}]
    if prompt == "exact-responses-tools":
        calls = server_runs["Qfull"][0]["messages"][0]["tool_calls"]
        assert calls == [{"function": {"name": "ping", "arguments": ""}}]


ACC = {"name": "acc", "optimizationDirection": "MAXIMIZE",
       "values": [{"label": "correct", "score": 1.0}, {"label": "incorrect", "score": 0.0}]}
TONE = {"name": "tone", "optimizationDirection": "MAXIMIZE",
        "values": [{"label": "polite", "score": 1.0}, {"label": "rude", "score": 0.0}]}


@pytest.fixture(scope="module")
def two_outputs(admin: PhoenixAdmin) -> dict[str, Any]:
    """Dataset 'judged-twice': a multi-output LLM judge (acc, tone) over a prompt task."""
    dataset_id = admin.create_dataset("judged-twice", EXAMPLES[:2])
    judge_prompt = admin.create_prompt(
        "two-output-judge", [{"role": "user", "content": "Grade: {{answer}}"}],
        output_configs=[ACC, TONE])
    evaluator = admin.attach_llm_evaluator(dataset_id, "acc_and_tone", judge_prompt["prompt_id"],
                                           [ACC, TONE],
                                           {"answer": "$.output.messages[0].content"})
    response = admin.http.post("/v1/prompts", json={"prompt": {"name": "judged-task"},
                                                    "version": version("gpt-4o-mini")})
    response.raise_for_status()
    return {"id": dataset_id, "evaluator": evaluator}


@pytest.mark.parametrize("where", ["local", "server"])
def test_a_failing_multi_output_judge_is_named_as_the_server_names_it(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        two_outputs: dict[str, Any], where: str) -> None:
    judge.configure(malformed="no_tool_call")  # the judge answers with text, not its tools
    server_experiment = admin.run_server_experiment(
        two_outputs["id"], [two_outputs["evaluator"]], [],
        prompt_version=admin.prompt_version_input("judged-task")["input"])
    name = f"judged-twice-{where}-{uuid.uuid4().hex[:8]}"
    result = pytester.runpytest("--phoenix-dataset=judged-twice", "-p", "no:cacheprovider",
                                "--phoenix-task=prompt:judged-task",
                                f"--phoenix-evaluate-on={where}",
                                f"--phoenix-experiment-name={name}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()

    def names(experiment_id: str) -> dict[str, list[tuple[str, bool]]]:
        found: dict[str, list[tuple[str, bool]]] = {}
        for annotation in admin.annotations(experiment_id):
            found.setdefault(annotation["example_id"], []).append(
                (annotation["name"], annotation["error"] is not None))
        return found

    theirs = names(server_experiment)
    assert list(theirs.values()) == [[("acc", True)]] * 2
    assert names(our_experiment(admin, two_outputs["id"], name)) == theirs


SERVER_NORMALIZE = LIGHT_IMPORT + r"""
import json, sys
from phoenix.db.types.prompts import (PromptInvocationParametersRootModel,
                                      normalize_invocation_parameters_for_write)
out = []
for given in json.load(sys.stdin):
    parsed = PromptInvocationParametersRootModel.model_validate(given).root
    out.append(normalize_invocation_parameters_for_write(parsed).model_dump(mode="json"))
json.dump(out, sys.stdout)
"""
LEGACY = [{"type": "azure_openai", "azure_openai": {"temperature": 0.3, "max_tokens": 20}},
          {"type": "deepseek", "deepseek": {"top_p": 0.5, "seed": 3}},
          {"type": "openai", "openai": {"temperature": 1.0}},
          {"type": "anthropic", "anthropic": {"max_tokens": 5}}]


def test_older_openai_family_parameters_are_read_as_the_server_keeps_them() -> None:
    python = ensure_server_venv().parent / "python"
    done = subprocess.run([str(python), "-c", SERVER_NORMALIZE], input=json.dumps(LEGACY),
                          capture_output=True, text=True, timeout=300, check=True)
    assert [openai_family(given) for given in LEGACY] == json.loads(done.stdout)


def test_a_prompt_file_with_azure_openai_parameters_runs_as_the_playground_runs_it(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin, exact: dict[str, Any]) -> None:
    """Pushed, the file is stored with ``openai`` parameters and is then the same version; the
    playground runs that version with the same request as the plugin runs the file."""
    legacy = {**version("gpt-4o-mini"), "invocation_parameters": LEGACY[0]}
    path = Path(pytester.path, "legacy.json")
    path.write_text(json.dumps(legacy))
    response = admin.http.post("/v1/prompts", json={"prompt": {"name": "legacy-azure"},
                                                    "version": legacy})
    response.raise_for_status()
    stored = response.json()["data"]
    assert stored["invocation_parameters"]["type"] == "openai"
    assert same_version(read_prompt_file(path), stored)

    admin.run_server_experiment(exact["id"], [], [],
                                prompt_version=admin.prompt_version_input("legacy-azure")["input"])
    server_requests = requests_by_question(judge.requests)
    judge.reset()
    result = pytester.runpytest("--phoenix-dataset=prompt-exactness", "-p", "no:cacheprovider",
                                "--phoenix-task=prompt-file:legacy.json")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    ours = requests_by_question(judge.requests)
    assert ours == server_requests
    assert len(ours) == len(EXAMPLES)
    assert all('"max_completion_tokens": 20' in body and '"temperature": 0.3' in body
               for body in ours.values())
