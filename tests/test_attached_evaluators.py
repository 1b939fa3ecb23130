"""LLM and code evaluators attached in Phoenix: parity with the server, both places to run them,
prompt tags and opt-in local code; a real Phoenix and the stand-in judge throughout."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin, global_id
from stand_in_judge import StandInJudge

CORRECTNESS = {"name": "correctness", "optimizationDirection": "MAXIMIZE",
               "values": [{"label": "correct", "score": 1.0},
                          {"label": "incorrect", "score": 0.0}]}
HELPFUL = {"name": "helpfulness", "optimizationDirection": "MAXIMIZE",
           "values": [{"label": "helpful", "score": 1.0}, {"label": "unhelpful", "score": 0.0}]}
SYSTEM = "You grade answers to questions against a reference answer."
USER = ("Question: {{question}}\n<answer>{{answer}}</answer>\n"
        "<reference>{{reference}}</reference>")
FSTRING_USER = "Q: {question}\n<answer>{answer}</answer>\n<reference>{reference}</reference>"
MAPPING = {"question": "$.input.question", "answer": "$.output",
           "reference": "$.reference.answer"}
CODE = """
def evaluate(output, reference):
    return {"label": "True" if reference["answer"] in str(output) else "False",
            "explanation": "reference found" if reference["answer"] in str(output) else "missing"}
"""
BOOLEAN = {"name": "mentions_reference", "optimizationDirection": "MAXIMIZE",
           "values": [{"label": "True", "score": 1.0}, {"label": "False", "score": 0.0}]}

@pytest.fixture(scope="module")
def examples(judged_dataset: dict[str, Any]) -> list[dict[str, Any]]:
    """The three QA examples of the 'judged' dataset, reused by the datasets made here."""
    return list(judged_dataset["examples"])


@pytest.fixture(scope="module")
def mixed(admin: PhoenixAdmin, examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Dataset 'mixed': a built-in, two LLM evaluators (one multi-output) and a code one."""
    return make_mixed(admin, examples)


def make_mixed(admin: PhoenixAdmin, examples: list[dict[str, Any]],
               suffix: str = "") -> dict[str, Any]:
    """Dataset 'mixed<suffix>' with prompts 'grader<suffix>' and 'grader-fstring<suffix>': a
    test that changes its prompts makes its own (a suffix), not to change the module's."""
    dataset_id = admin.create_dataset(f"mixed{suffix}", examples)
    admin.attach_builtin(dataset_id, "contains", "mentions", {"text": "$.output",
                                                              "words": "$.reference.answer"})
    judge = admin.create_prompt(f"grader{suffix}", [{"role": "system", "content": SYSTEM},
                                           {"role": "user", "content": USER}],
                                output_configs=[CORRECTNESS],
                                invocation_parameters={"temperature": 0.0, "seed": 7})
    admin.attach_llm_evaluator(dataset_id, "grader", judge["prompt_id"], [CORRECTNESS],
                               MAPPING)
    multi = admin.create_prompt(f"grader-fstring{suffix}",
                                [{"role": "user", "content": FSTRING_USER}],
                                template_format="F_STRING",
                                output_configs=[CORRECTNESS, HELPFUL])
    admin.attach_llm_evaluator(dataset_id, "two_ways", multi["prompt_id"],
                               [CORRECTNESS, HELPFUL], MAPPING)
    admin.attach_code_evaluator(dataset_id, "mentions_reference", CODE, [BOOLEAN], {})
    return {"id": dataset_id, "name": f"mixed{suffix}", "judge_prompt": judge["prompt_id"],
            "multi_prompt": multi["prompt_id"]}


def run_mixed(pytester: pytest.Pytester, *args: str, dataset: str = "mixed"
              ) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-dataset={dataset}", "--phoenix-task=qa_app:answer",
                              *args)


def uploaded(admin: PhoenixAdmin, dataset_id: str, name: str
             ) -> dict[tuple[str, str], dict[str, Any]]:
    """(example id, annotation name) -> annotation, for the experiment of that name (a test's
    own: not "the newest", which is whichever test ran last on the dataset)."""
    experiment = next(e for e in admin.experiments(dataset_id) if e.get("name") == name)
    return {(a["example_id"], a["name"]): a for a in admin.annotations(experiment["id"])}


def essentials(annotation: dict[str, Any]) -> tuple[Any, ...]:
    return (annotation["label"], annotation["score"], annotation["explanation"],
            annotation.get("error"))


@pytest.mark.usefixtures("qa_app")
def test_llm_evaluators_send_the_judge_what_the_server_sends_and_agree_with_it(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin,
        mixed: dict[str, Any], examples: list[dict[str, Any]]) -> None:
    result = run_mixed(pytester, "--phoenix-experiment-name=mixed-attached")
    result.assert_outcomes(passed=2, failed=1)
    ours = [r["body"] for r in judge.requests]
    annotations = uploaded(admin, mixed["id"], "mixed-attached")

    judge.reset()
    contexts = [{"input": e["input"], "reference": e["output"], "output": answer,
                 "metadata": {}} for e, answer in zip(examples, QA_ANSWERS)]
    previews = []
    for prompt, name, configs in ((mixed["judge_prompt"], "grader", [CORRECTNESS]),
                                  (mixed["multi_prompt"], "two_ways", [CORRECTNESS, HELPFUL])):
        version = admin.prompt_version_input(prompt)["input"]
        for context in contexts:
            previews.append({"evaluator": {"inlineLlmEvaluator": {
                "name": name, "promptVersion": version,
                "outputConfigs": [{"categorical": c} for c in configs]}},
                "context": context, "path": MAPPING})
    server_results = admin.preview(previews)
    theirs = [r["body"] for r in judge.requests]

    # The same requests: messages, tools, tool choice, model and parameters, byte for byte.
    assert sorted(map(canonical, ours)) == sorted(map(canonical, theirs))
    assert len(ours) == 6
    # The same annotations (the server names preview results after the evaluator).
    server = {}
    for result_ in server_results:
        name = result_["evaluatorName"].replace("grader", "correctness").replace(
            "two_ways", "correctness")
        server.setdefault(name, []).append(essentials(result_["annotation"]))
    ours_by_name: dict[str, list[tuple[Any, ...]]] = {}
    for (_, name), annotation in sorted(annotations.items()):
        ours_by_name.setdefault(name, []).append(essentials(annotation))
    for name in ("correctness", "correctness.correctness", "correctness.helpfulness"):
        assert sorted(ours_by_name[name], key=repr) == sorted(server[name], key=repr), name


QA_ANSWERS = ["Paris", "William Shakespeare", "Barcelona"]


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True)


@pytest.mark.usefixtures("qa_app")
def test_local_and_server_evaluation_give_equal_annotations(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin,
        mixed: dict[str, Any]) -> None:
    local = run_mixed(pytester, "--phoenix-allow-code-evaluators",
                      "--phoenix-experiment-name=mixed-local")
    local.assert_outcomes(passed=2, failed=1)
    local_annotations = uploaded(admin, mixed["id"], "mixed-local")
    local_calls = len(judge.requests)

    server = run_mixed(pytester, "--phoenix-evaluate-on=server",
                       "--phoenix-experiment-name=mixed-on-server")
    server.assert_outcomes(passed=2, failed=1)
    server_annotations = uploaded(admin, mixed["id"], "mixed-on-server")
    assert len(judge.requests) == 2 * local_calls  # the server called the judge itself

    assert set(local_annotations) == set(server_annotations)
    assert len({name for _, name in local_annotations}) == 5
    for key, annotation in local_annotations.items():
        theirs = server_annotations[key]
        if key[1] == "contains":  # built-ins explain in our own words; the rest is the server's
            annotation, theirs = {**annotation, "explanation": ""}, {**theirs, "explanation": ""}
        assert essentials(annotation) == essentials(theirs), key
    assert local.stdout.lines[-1].split(" in ")[0] == server.stdout.lines[-1].split(" in ")[0]


@pytest.mark.usefixtures("qa_app")
def test_prompt_tag_runs_the_tagged_version_and_notes_prompts_without_it(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin,
        examples: list[dict[str, Any]]) -> None:
    # Dataset and prompts of its own: a new version of the module's 'grader' would change
    # what the other tests of this module compare with the server.
    suffix = f"-tagged-{uuid.uuid4().hex[:8]}"
    mixed = make_mixed(admin, examples, suffix)
    version = admin.add_prompt_version(
        mixed["judge_prompt"], [{"role": "system", "content": "Production grader."},
                                {"role": "user", "content": USER}],
        output_configs=[CORRECTNESS])
    admin.tag_prompt_version(version, "production")
    result = run_mixed(pytester, "--phoenix-prompt-tag=production", "--phoenix-no-upload",
                       "-k", "france", dataset=mixed["name"])
    result.assert_outcomes(passed=1, deselected=2)
    systems = [r["body"]["messages"][0]["content"] for r in judge.requests]
    assert "Production grader." in systems and SYSTEM not in systems
    result.stdout.fnmatch_lines([f"LLM evaluator 'two_ways' (dataset '{mixed['name']}'): "
                                 f"prompt 'grader-fstring{suffix}' has no version tagged "
                                 "'production'; it runs the version the server would run"])
    judge.reset()
    result = run_mixed(pytester, "--phoenix-no-upload", "-k", "france", dataset=mixed["name"])
    assert SYSTEM in [r["body"]["messages"][0]["content"] for r in judge.requests]


CODE_CASES = {
    "sleepy": ("import time\ndef evaluate(output):\n    time.sleep(5)\n    return True\n",
               "*code evaluator 'sleepy' timed out after 0.5 s (--phoenix-code-timeout)*"),
    "raises": ("def evaluate(output):\n    raise ValueError('boom')\n", "*ValueError: boom*"),
    "bad_label": ("def evaluate(output):\n    return 'maybe'\n",
                  "*Label 'maybe' not in categorical output config values ?'True', 'False'?.*"),
    "bad_param": ("def evaluate(answer):\n    return True\n",
                  "*unsupported parameter names: answer*"),
}


@pytest.fixture(scope="module")
def faulty_code(admin: PhoenixAdmin, examples: list[dict[str, Any]]) -> str:
    dataset_id = admin.create_dataset("faulty-code", examples[:1])
    for name, (source, _) in CODE_CASES.items():
        config = {**BOOLEAN, "name": name}
        if name == "bad_param":  # the server refuses such code; store a valid one, then the
            continue             # local check is exercised by the unit test below
        admin.attach_code_evaluator(dataset_id, name, source, [config], {})
    return dataset_id


@pytest.mark.usefixtures("qa_app")
def test_local_code_evaluators_fail_well(pytester: pytest.Pytester, faulty_code: str) -> None:
    result = pytester.runpytest("--phoenix-dataset=faulty-code", "--phoenix-task=qa_app:answer",
                                "--phoenix-allow-code-evaluators", "--phoenix-code-timeout=0.5",
                                "--phoenix-no-upload")
    result.assert_outcomes(failed=1)
    for name, (_, expected) in CODE_CASES.items():
        if name != "bad_param":
            result.stdout.fnmatch_lines([f"{name} error: {expected.lstrip('*')}"])


def test_unsupported_evaluate_parameters_are_named() -> None:
    from pytest_phoenix_evals._evaluators.sandbox import input_schema

    with pytest.raises(ValueError, match="unsupported parameter names: answer"):
        input_schema(CODE_CASES["bad_param"][0])
    assert input_schema("def evaluate(output, metadata=None): ...") == {
        "type": "object", "properties": {"output": {}, "metadata": {}}, "required": ["output"]}


_MONTY = global_id("SandboxProvider", "MONTY")
SET_MONTY = ('mutation($on: Boolean!) { updateSandboxProvider(input: '
             f'{{id: "{_MONTY}", enabled: $on}}) {{ __typename }} }}')


@pytest.mark.usefixtures("qa_app")
def test_code_the_server_cannot_run_is_reported_as_not_run(
        pytester: pytest.Pytester, admin: PhoenixAdmin, examples: list[dict[str, Any]]) -> None:
    dataset_id = admin.create_dataset("server-code", examples[:1])
    admin.attach_code_evaluator(dataset_id, "server_check", CODE,
                                [{**BOOLEAN, "name": "server_check"}], {})
    admin.graphql(SET_MONTY, on=False)  # the server's only Python sandbox, switched off
    try:
        result = pytester.runpytest("--phoenix-dataset=server-code",
                                    "--phoenix-task=qa_app:answer", "--phoenix-no-upload")
    finally:
        admin.graphql(SET_MONTY, on=True)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "server_check error: not run: the Phoenix server could not run code evaluator "
        "'server_check' (run it locally with --phoenix-allow-code-evaluators): *disabled*"])
    result.stdout.fnmatch_lines(["server_check was not run on 1 case: the Phoenix server could "
                                 "not run code evaluator 'server_check'*"])


@pytest.mark.usefixtures("qa_app")
def test_models_the_server_sends_to_the_responses_api_go_there_from_here_too(
        pytester: pytest.Pytester, judge: StandInJudge, admin: PhoenixAdmin,
        examples: list[dict[str, Any]]) -> None:
    dataset_id = admin.create_dataset("responses-judged", examples[:2])
    prompt = admin.create_prompt("grader-responses", [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": USER}],
                                 model_name="gpt-5-mini", output_configs=[CORRECTNESS],
                                 invocation_parameters={"temperature": 0.0, "seed": 3,
                                                        "max_completion_tokens": 50})
    admin.attach_llm_evaluator(dataset_id, "grader5", prompt["prompt_id"], [CORRECTNESS],
                               MAPPING)
    result = pytester.runpytest("--phoenix-dataset=responses-judged",
                                "--phoenix-task=qa_app:answer", "--phoenix-no-upload")
    result.assert_outcomes(passed=2)
    ours = judge.requests
    assert {r["path"] for r in ours} == {"/v1/responses"}

    judge.reset()
    version = admin.prompt_version_input(prompt["prompt_id"])["input"]
    server = admin.preview([{"evaluator": {"inlineLlmEvaluator": {
        "name": "grader5", "promptVersion": version,
        "outputConfigs": [{"categorical": CORRECTNESS}]}},
        "context": {"input": e["input"], "reference": e["output"], "output": answer,
                    "metadata": {}}, "path": MAPPING}
        for e, answer in zip(examples[:2], QA_ANSWERS)])
    theirs = judge.requests
    assert sorted(canonical(r["body"]) for r in ours) == sorted(
        canonical(r["body"]) for r in theirs)
    assert {r["annotation"]["label"] for r in server} == {"correct"}

    judge.reset()
    result = pytester.runpytest("--phoenix-dataset=responses-judged",
                                "--phoenix-task=qa_app:answer", "--phoenix-no-upload",
                                "--phoenix-judge-api=chat")
    result.assert_outcomes(passed=2)
    assert {r["path"] for r in judge.requests} == {"/v1/chat/completions"}
