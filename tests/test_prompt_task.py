"""A prompt as the task under test (--phoenix-task=prompt:NAME[@TAG] and prompt-file:PATH),
against a real Phoenix and the stand-in model: the prompt is rendered with each example, sent
through the openai client, its answer is the run's output in the server's shape for a playground
run, the dataset's attached evaluators judge it, and the version is pushed and promoted only
when it earned it."""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge
from usage import assert_usage_errors

EXAMPLES = [
    {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"},
     "metadata": {"topic": "geography"}},
    {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"},
     "metadata": {"topic": "books"}},
    {"input": {"question": "What is the capital of Spain?"}, "output": {"answer": "Madrid"},
     "metadata": {"topic": "geography"}},
]
# What the stand-in model answers (the Spain answer is wrong on purpose: one case fails).
ANSWERS = [["capital of France", "The capital is Paris."],
           ["Hamlet", "Hamlet was written by William Shakespeare."],
           ["capital of Spain", "It is Barcelona."]]
MESSAGES = [{"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Question: {{question}}"}]
PARAMETERS = {"temperature": 0.0, "max_tokens": 64}


@pytest.fixture(scope="module")
def prompted(admin: PhoenixAdmin) -> dict[str, Any]:
    """Dataset 'prompted' whose attached built-in reads the playground-shaped output, and a
    prompt 'qa-answer' with a 'production' and a 'candidate' version."""
    dataset_id = admin.create_dataset("prompted", EXAMPLES)
    admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                         {"text": "$.output.messages[0].content",
                          "words": "$.reference.answer"})
    production = admin.create_prompt(
        "qa-answer", [{"role": "user", "content": "{{question}}"}], tags=["production"],
        invocation_parameters=PARAMETERS)
    candidate = admin.add_prompt_version("qa-answer", MESSAGES, tags=["candidate"],
                                         invocation_parameters=PARAMETERS)
    return {"id": dataset_id, "production": production["version_id"], "candidate": candidate}


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--phoenix-dataset=prompted", "-p", "no:cacheprovider", *args)


def latest_experiment(admin: PhoenixAdmin, dataset_id: str) -> dict[str, Any]:
    return max(admin.experiments(dataset_id), key=lambda e: e["created_at"])


def test_a_phoenix_prompt_version_is_the_task(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        prompted: dict[str, Any]) -> None:
    judge.configure(answers=ANSWERS)
    result = run(pytester, "--phoenix-task=prompt:qa-answer@candidate", "-v")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    assert "mentions_answer" in out and "It is Barcelona." in out  # the failure says why
    # $.output.messages[0].content indexes a list every prompt run holds: both jsonpath-ng
    # versions read it alike, so no warning about them.
    assert "read differently" not in out
    # The model was sent the candidate version, rendered with each example, as the server
    # would send it.
    bodies = [r["body"] for r in judge.requests if r["path"] == "/v1/chat/completions"]
    assert len(bodies) == 3
    france = next(b for b in bodies if "France" in json.dumps(b))
    assert france["messages"] == [
        {"content": "Answer in one sentence.", "role": "system"},
        {"content": "Question: What is the capital of France?", "role": "user"}]
    assert france["model"] == "gpt-4o-mini" and france["temperature"] == 0.0
    assert france["max_completion_tokens"] == 64 and france["stream"] is False
    # The runs hold the playground's output shape; the experiment names the prompt version.
    experiment = latest_experiment(admin, prompted["id"])
    task = experiment["metadata"]["task"]
    assert task == {"kind": "prompt", "prompt": "qa-answer",
                    "prompt_version_id": prompted["candidate"], "ref": "candidate",
                    "model_provider": "OPENAI", "model_name": "gpt-4o-mini",
                    "template_variables_path": "input"}
    assert experiment["metadata"]["runner"] == "prompt:qa-answer@candidate"
    # Its name says what ran: the prompt, its tag and version, on the dataset's version.
    from pytest_phoenix_evals._core.naming import row_id

    assert experiment["name"].startswith(
        f"prompt:qa-answer@candidate v{row_id(prompted['candidate'])} on prompted "
        f"v{row_id(experiment['dataset_version_id'])} "), experiment["name"]
    outputs = sorted(json.dumps(r["output"]) for r in admin.runs(experiment["id"]))
    assert json.dumps({"messages": [{"role": "assistant",
                                     "content": "The capital is Paris."}],
                       "available_tools": []}) in outputs
    scores = sorted((a["name"], a["score"]) for a in admin.annotations(experiment["id"]))
    assert scores == [("contains", 0.0), ("contains", 1.0), ("contains", 1.0)]
    # The task's LLM call is traced under the run's task span, with its token counts.
    deadline = time.monotonic() + 60  # spans are stored a while after they are sent
    while True:
        llm = admin.spans(experiment["project_name"], span_kind=["LLM"])
        if len(llm) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [s["name"] for s in llm] == ["ChatCompletion"] * 3
    assert all(s["attributes"].get("llm.token_count.prompt") for s in llm), llm[0]
    assert all(s["parent_id"] for s in llm)
    # Phoenix prices each run from its LLM span: tokens and cost on the run.
    summary = admin.graphql(
        "query($id: ID!) { node(id: $id) { ... on Experiment { runs(first: 10) { edges {"
        " node { costSummary { total { cost tokens } } } } } } } }",
        id=experiment["id"])["node"]["runs"]["edges"]
    totals = [edge["node"]["costSummary"]["total"] for edge in summary]
    assert len(totals) == 3 and all(t["tokens"] and t["cost"] for t in totals), totals


def test_a_prompt_file_is_tested_gated_pushed_and_promoted(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        prompted: dict[str, Any]) -> None:
    judge.configure(answers=ANSWERS)
    pytester.makefile(".yaml", **{"qa-file": """
        # A prompt version kept in the repository.
        model: gpt-4o-mini
        invocation_parameters: {temperature: 0.0}
        messages:
          - role: system
            content: You answer trivia questions from a file.
          - role: user
            content: "Question: {{question}} ({{topic}})"
        """})
    # The variables come from the whole context here: {{question}} is not at the top.
    failing = run(pytester, "--phoenix-task=prompt-file:qa-file.yaml",
                  "--phoenix-fail-under=contains=0.9", "--phoenix-push-prompt=qa-file",
                  "--phoenix-promote-tag=production")
    assert failing.ret == pytest.ExitCode.USAGE_ERROR
    err = failing.stderr.str()
    assert "template variable(s) topic cannot be filled from its 'input'" in err
    assert "its keys: question" in err
    assert not judge.requests  # said before anything ran
    pytester.makefile(".yaml", **{"qa-file": """
        model: gpt-4o-mini
        invocation_parameters: {temperature: 0.0}
        messages:
          - role: system
            content: You answer trivia questions from a file.
          - role: user
            content: "Question: {{input.question}} ({{metadata.topic}})"
        """})
    # A gate fails (2 of 3): nothing is pushed or promoted, and the summary says why.
    result = run(pytester, "--phoenix-task=prompt-file:qa-file.yaml",
                 "--phoenix-prompt-variables=.", "--phoenix-fail-under=contains=0.9",
                 "--phoenix-push-prompt=qa-file", "--phoenix-promote-tag=production")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert ("--phoenix-push-prompt=qa-file and --phoenix-promote-tag=production: nothing "
            "done: a gate failed") in out
    assert "(geography)" in json.dumps([r["body"] for r in judge.requests])
    with pytest.raises(Exception):  # noqa: B017 - no prompt was made
        admin.prompt_version_input("qa-file")
    # The gate passes: the file becomes a version of a new prompt, tagged production.
    result = run(pytester, "--phoenix-task=prompt-file:qa-file.yaml",
                 "--phoenix-prompt-variables=.", "--phoenix-fail-under=contains=0.6",
                 "--phoenix-push-prompt=qa-file", "--phoenix-promote-tag=production")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    pushed = admin.prompt_version_input("qa-file", tag="production")
    assert f"pushed: qa-file.yaml is now version {pushed['id']} of prompt 'qa-file'" in out
    assert (f"promoted: prompt 'qa-file' version {pushed['id']} now carries tag "
            f"'production'") in out
    version = admin.prompt_version(pushed["id"])
    assert version["model_name"] == "gpt-4o-mini"
    assert version["invocation_parameters"]["openai"]["temperature"] == 0.0
    experiment = latest_experiment(admin, prompted["id"])
    assert experiment["metadata"]["task"]["file"] == "qa-file.yaml"
    # Again, unchanged: no second version, the tag already there.
    result = run(pytester, "--phoenix-task=prompt-file:qa-file.yaml",
                 "--phoenix-prompt-variables=.", "--phoenix-fail-under=contains=0.6",
                 "--phoenix-push-prompt=qa-file", "--phoenix-promote-tag=production")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert f"its latest version {pushed['id']} is already qa-file.yaml; no version pushed" in out
    assert f"version {pushed['id']} already carries tag 'production'" in out


def test_bad_prompt_tasks_say_what_to_fix(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        prompted: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makefile(".yaml", typo="model: gpt-4o-mini\nmesages: []\n",
                      nomodel="messages: [{role: user, content: hi}]\n",
                      badrole="model: m\nmessages: [{role: robot, content: hi}]\n",
                      claude="model: claude\nprovider: anthropic\n"
                             "messages: [{role: user, content: hi}]\n",
                      unclosed="model: m\nmessages: [{role: user, content: '{{#open}} x'}]\n")
    pytester.makefile(".json", broken="{")
    dataset = "--phoenix-dataset=prompted"
    assert_usage_errors(pytester, [
        ([dataset, "--phoenix-task=prompt:qa-answr"],
         "there is no prompt 'qa-answr' in Phoenix"),
        ([dataset, "--phoenix-task=prompt:qa-answr"], "Closest prompts: qa-answer"),
        ([dataset, "--phoenix-task=prompt:qa-answer@candidat"],
         "prompt 'qa-answer' has no tag or version 'candidat'. Closest tags: candidate"),
        ([dataset, "--phoenix-task=prompt:"], "names no prompt"),
        ([dataset, "--phoenix-task=prompt-file:missing.yaml"], "cannot read"),
        ([dataset, "--phoenix-task=prompt-file:typo.yaml"], "unknown key(s) mesages"),
        ([dataset, "--phoenix-task=prompt-file:nomodel.yaml"], "needs 'model'"),
        ([dataset, "--phoenix-task=prompt-file:badrole.yaml"],
         "message 1: role 'robot' is not one of"),
        ([dataset, "--phoenix-task=prompt-file:broken.json"], "not JSON"),
        ([dataset, "--phoenix-task=prompt-file:claude.yaml"],
         "the prompt's model provider is ANTHROPIC"),
        ([dataset, "--phoenix-task=prompt-file:unclosed.yaml"],
         "the template does not parse as MUSTACHE"),
        ([dataset, "--phoenix-task=qa_app:answer", "--phoenix-push-prompt=x"],
         "--phoenix-push-prompt: only with --phoenix-task=prompt-file:PATH"),
        ([dataset, "--phoenix-task=qa_app:answer", "--phoenix-prompt-variables=."],
         "only with a prompt as the task"),
        ([dataset, "--phoenix-task=prompt:qa-answer", "--phoenix-prompt-variables=a..b"],
         "is not a dot path"),
        ([dataset, "--phoenix-task=prompt:qa-answer@production",
          "--phoenix-prompt-messages=history"],
         "Key 'history' not found in path 'history'"),
    ])
    assert not judge.requests
    # No credentials for the model: said once, before anything runs, with the ways out.
    monkeypatch.delenv("OPENAI_BASE_URL")
    result = run(pytester, "--phoenix-task=prompt:qa-answer@production")
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert err.count("OPENAI_API_KEY is not set") == 1, err
    assert "the prompt's model cannot be called" in err


def test_cache_repetitions_and_offline_runs_of_a_prompt(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        prompted: dict[str, Any]) -> None:
    judge.configure(answers=ANSWERS)
    task = "--phoenix-task=prompt:qa-answer@candidate"

    def model_calls() -> int:
        return sum(r["path"] == "/v1/chat/completions" for r in judge.requests)

    result = run(pytester, task, "--phoenix-cache")
    result.assert_outcomes(passed=2, failed=1)
    assert model_calls() == 3
    # Unchanged requests: answered from the cache, not by the model.
    result = run(pytester, task, "--phoenix-cache")
    result.assert_outcomes(passed=2, failed=1)
    assert model_calls() == 3
    # Repetitions call the model each time (they never come from the cache).
    result = run(pytester, task, "--phoenix-repetitions=2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert model_calls() == 3 + 6, result.stdout.str()
    # Offline: the prompt version comes from the snapshot; the model is still called.
    result = run(pytester, task, "--phoenix-offline", "--phoenix-no-upload")
    result.assert_outcomes(passed=2, failed=1)
    assert model_calls() == 3 + 6 + 3


def test_the_task_model_is_retried_and_its_secrets_stay_out_of_traces(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        prompted: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tok-prompt-secret-5f2c9a"
    monkeypatch.setenv("SUPPORT_DESK_TOKEN", secret)
    pytester.makefile(".yaml", secretive=f"""
        model: gpt-4o-mini
        messages:
          - role: system
            content: "Use desk token {secret} when you look things up."
          - role: user
            content: "{{{{question}}}}"
        """)
    judge.configure(answers=ANSWERS, fail_429=2, retry_after="0")
    result = run(pytester, "--phoenix-task=prompt-file:secretive.yaml")
    result.assert_outcomes(passed=2, failed=1)  # the two 429s were retried, not failures
    outcomes = [r["outcome"] for r in judge.requests if r["path"] == "/v1/chat/completions"]
    assert sorted(outcomes) == ["429", "429", "ok", "ok", "ok"]
    assert secret in json.dumps([r["body"] for r in judge.requests])  # the model needs it
    experiment = latest_experiment(admin, prompted["id"])
    deadline = time.monotonic() + 60
    while True:
        spans = admin.spans(experiment["project_name"])
        if len(spans) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(spans) == 6  # a task span and its LLM span per example
    assert secret not in json.dumps(spans)
    assert "Use desk token *** when" in json.dumps(spans)


def test_a_candidate_is_compared_with_the_version_in_production(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        prompted: dict[str, Any]) -> None:
    candidate = ["--phoenix-task=prompt:qa-answer@candidate",
                 "--phoenix-baseline=prompt:production", "--phoenix-max-regression=0"]
    # No run of the production version yet: the error says how to record one.
    result = run(pytester, *candidate)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert (f"no experiment on dataset 'prompted' ran prompt version {prompted['production']} "
            f"(prompt 'qa-answer', tagged 'production')") in err
    printed = re.search(r"record one first: (pytest .*)$", err, flags=re.M)
    assert printed and printed[1] == ("pytest --phoenix-dataset=prompted "
                                      "--phoenix-task=prompt:qa-answer@production"), err
    assert not judge.requests
    # The version in production answers all three; the candidate gets Spain wrong. The
    # printed command records it, run as printed.
    judge.configure(answers=[["capital of Spain", "Madrid."], *ANSWERS])
    pytester.runpytest(*shlex.split(printed[1])[1:]).assert_outcomes(passed=3)
    judge.configure(answers=ANSWERS)
    result = run(pytester, *candidate)
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    assert "compared with baseline" in out
    assert re.search(r"regressed on contains: ex\d+-what-is-the-capital-of-spain\n", out), out
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert run(pytester, "--phoenix-task=qa_app:answer",
               "--phoenix-baseline=prompt:production").ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.parametrize(("model", "route"), [("my-deployment", "/openai/v1/chat/completions"),
                                              ("o4-mini", "/openai/v1/responses")])
def test_an_azure_prompt_calls_azure_as_the_server_routes_it(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        prompted: dict[str, Any], monkeypatch: pytest.MonkeyPatch, model: str,
        route: str) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", judge.url.removesuffix("/v1"))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-for-tests")
    pytester.makefile(".yaml", azure=f"model: {model}\nprovider: azure_openai\n"
                                     "messages: [{role: user, content: '{{question}}'}]\n")
    judge.configure(answers=ANSWERS)
    result = run(pytester, "--phoenix-task=prompt-file:azure.yaml", "--phoenix-no-upload")
    result.assert_outcomes(passed=2, failed=1)
    assert {r["path"] for r in judge.requests} == {route}
    assert all(r["authorization"] for r in judge.requests)


def test_a_prompt_runs_under_xdist_into_one_experiment(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        prompted: dict[str, Any]) -> None:
    judge.configure(answers=ANSWERS)
    result = run(pytester, "--phoenix-task=prompt:qa-answer@candidate", "-n", "2",
                 "--phoenix-experiment-name=prompt under xdist")
    result.assert_outcomes(passed=2, failed=1)
    assert sum(r["path"] == "/v1/chat/completions" for r in judge.requests) == 3
    experiment = next(e for e in admin.experiments(prompted["id"])
                      if e["name"] == "prompt under xdist")
    assert len(admin.runs(experiment["id"])) == 3
    assert experiment["metadata"]["task"]["prompt_version_id"] == prompted["candidate"]


def test_a_push_whose_answer_is_lost_makes_one_version(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        prompted: dict[str, Any]) -> None:
    from fault_proxy import FaultProxy, Rule

    judge.configure(answers=ANSWERS)
    pytester.makefile(".yaml", lossy="model: gpt-4o-mini\n"
                                     "messages: [{role: user, content: 'Q: {{question}}'}]\n")
    # The server makes the version, then the connection drops before its answer arrives.
    with FaultProxy(phoenix_env, [Rule(r"^POST /v1/prompts$", "reset-after", limit=1)]) \
            as proxy:
        result = run(pytester, "--phoenix-task=prompt-file:lossy.yaml",
                     f"--phoenix-url={proxy.url}", "--phoenix-fail-under=contains=0.6",
                     "--phoenix-push-prompt=lossy", "--phoenix-promote-tag=production")
        assert proxy.counts["reset-after"] == 1
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    versions = admin.http.get("/v1/prompts/lossy/versions").json()["data"]
    assert len(versions) == 1, versions  # not a second one made by a retry
    assert f"pushed: lossy.yaml is now version {versions[0]['id']} of prompt 'lossy'" in out
    assert admin.prompt_version_input("lossy", tag="production")["id"] == versions[0]["id"]
