"""--phoenix-add-failures-to: failing production spans copied into a regression dataset keep
the promises of every other upload: journaled first, added span by span, finished later when
Phoenix refused them (the run does not exit 0 meanwhile), redacted, and only the spans an
evaluator judged and failed.

Against a real Phoenix with spans sent over OTLP (``span_app.emit``), the stand-in judge over
real HTTP, and the fault proxy in front of the real server where a fault is involved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from fault_proxy import FaultProxy, Rule
from span_app import emit, unique
from stand_in_judge import StandInJudge

CONVERSATIONS = [
    {"question": "What is the capital of France?", "answer": "Paris",
     "documents": ["Paris is the capital of France."]},
    {"question": "What is the capital of Spain?", "answer": "Barcelona",
     "documents": ["Madrid is the capital of Spain."]},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare",
     "documents": ["Hamlet is a tragedy by William Shakespeare."]},
    {"question": "What is the capital of Italy?", "answer": "Milan",
     "documents": ["Rome is the capital of Italy."]},
]
RULES = [["Barcelona", "incorrect"], ["Milan", "incorrect"], ["<answer>", "correct"]]

# A code evaluator failing the answers that name a wrong city; it raises for the spans the
# file ``raise-for`` (in the test directory) names.
CONFTEST = """
import pathlib
from pytest_phoenix_evals import evaluator

@evaluator(name="known_wrong")
def known_wrong(output, metadata):
    flaky = pathlib.Path(__file__).with_name("raise-for")
    if flaky.exists() and metadata["span_id"] in flaky.read_text().split():
        raise RuntimeError("the checker is down")
    return not any(city in str(output) for city in ("Barcelona", "Milan"))

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [known_wrong]
"""

UPLOAD = r"^POST /v1/datasets/upload"


@pytest.fixture
def spans_env(pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
              monkeypatch: pytest.MonkeyPatch) -> str:
    judge.configure(rules=RULES)
    pytester.makeconftest(CONFTEST)
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.05, 0.1))
    return phoenix_env


def run(pytester: pytest.Pytester, project: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                              "-p", "no:cacheprovider", *args)


def dataset_examples(url: str, name: str) -> list[dict[str, Any]]:
    """The examples of the dataset's latest version ([] when there is no such dataset)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        datasets = client.get("/v1/datasets", params={"name": name}).json()["data"]
        datasets = [d for d in datasets if d["name"] == name]
        if not datasets:
            return []
        answer = client.get(f"/v1/datasets/{datasets[0]['id']}/examples").json()
        examples: list[dict[str, Any]] = answer["data"]["examples"]
        return examples


def linked_spans(url: str, dataset: str) -> list[str | None]:
    """The span ids the dataset's examples are linked to, as the server records them."""
    query = """query($name: String!) { datasets(filter: {col: name, value: $name}) { edges {
      node { name examples { edges { example: node { span { context { spanId } } } } } } } } }"""
    with httpx.Client(base_url=url, timeout=10) as client:
        body = client.post("/graphql", json={"query": query,
                                             "variables": {"name": dataset}}).json()
    assert "errors" not in body, body
    return sorted((e["example"]["span"] or {}).get("context", {}).get("spanId")
                  for d in body["data"]["datasets"]["edges"] if d["node"]["name"] == dataset
                  for e in d["node"]["examples"]["edges"])


def journal_files(pytester: pytest.Pytester, pattern: str = "failures-*.jsonl") -> list[Path]:
    return sorted((pytester.path / ".phoenix-evals" / "journal").glob(pattern))


# --- item 3: nothing lost -----------------------------------------------------------------


def test_a_failing_span_deleted_meanwhile_costs_the_others_nothing(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project, dataset = unique("gone"), unique("regressions")
    sent = emit(spans_env, project, CONVERSATIONS)
    doomed, kept = sent[1].llm_id, sent[3].llm_id  # both fail; one is deleted while judged
    pytester.makeconftest(CONFTEST + f"""
import httpx

@evaluator(name="deletes")
def deletes(metadata):
    if metadata["span_id"] == {doomed!r}:
        httpx.delete({spans_env!r} + "/v1/spans/" + metadata["span_id"]).raise_for_status()
    return True

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [known_wrong, deletes]
""")
    result = run(pytester, project, f"--phoenix-add-failures-to={dataset}")
    result.assert_outcomes(passed=2, failed=2)
    text = result.stdout.str()
    assert f"added 1 failing span(s) to dataset {dataset!r}" in text, text
    assert "1 failing span(s) were deleted from Phoenix before they could be added" in text
    assert linked_spans(spans_env, dataset) == [kept]
    assert not journal_files(pytester)  # the deleted span is dropped, not kept pending


def test_failing_spans_phoenix_refused_are_kept_and_the_next_run_adds_them(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project, dataset = unique("refused"), unique("regressions")
    sent = emit(spans_env, project, CONVERSATIONS)
    failing = sorted([sent[1].llm_id, sent[3].llm_id])
    # The gate passes (2 of 4 right): only the failing spans left out can fail the run.
    gate = "--phoenix-fail-under=known_wrong=0.5"
    with FaultProxy(spans_env, [Rule(UPLOAD, "before", share=1.0)], seed=1) as proxy:
        refused = run(pytester, project, f"--phoenix-url={proxy.url}", gate,
                      f"--phoenix-add-failures-to={dataset}:triage")
    assert proxy.counts["before"] >= 1
    text = refused.stdout.str()
    assert refused.ret == 1, text
    assert f"2 failing span(s) not yet added to dataset {dataset!r}" in text, text
    assert "pytest --phoenix-upload-pending" in text
    assert "exit status 1" in text
    assert dataset_examples(spans_env, dataset) == []
    kept = journal_files(pytester)
    assert len(kept) == 1
    assert sorted(json.loads(line)["span_id"] for line in kept[0].read_text().splitlines()
                  if json.loads(line)["type"] == "failure") == failing

    # The spans are annotated now (the next run judges none of them), and it adds them.
    later = run(pytester, project, f"--phoenix-add-failures-to={dataset}:triage")
    text = later.stdout.str()
    assert later.ret == 0, text
    assert "0 span(s) to judge" in text
    assert f"added 2 failing span(s) to dataset {dataset!r} (split triage)" in text, text
    assert linked_spans(spans_env, dataset) == failing
    assert not journal_files(pytester)


def test_failing_spans_phoenix_refused_are_added_by_upload_pending_once(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project, dataset = unique("pending"), unique("regressions")
    sent = emit(spans_env, project, CONVERSATIONS)
    with FaultProxy(spans_env, [Rule(UPLOAD, "after", share=1.0)], seed=1) as proxy:
        refused = run(pytester, project, f"--phoenix-url={proxy.url}",
                      f"--phoenix-add-failures-to={dataset}")
    assert refused.ret == 1
    assert "pytest --phoenix-upload-pending" in refused.stdout.str()
    assert len(journal_files(pytester)) == 1

    done = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    text = done.stdout.str()
    assert done.ret == 0, text
    assert f"dataset {dataset!r}" in text
    assert not journal_files(pytester)
    # The 503 came after the server stored them: the same examples, never twice.
    assert linked_spans(spans_env, dataset) == sorted([sent[1].llm_id, sent[3].llm_id])
    again = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    assert "nothing pending" in again.stdout.str()
    assert len(dataset_examples(spans_env, dataset)) == 2


# --- item 4: no secret copied ---------------------------------------------------------------

SECRET = "tok-planted-8642fdb9-secret"


def test_a_secret_in_a_failing_span_is_masked_in_the_dataset(
        pytester: pytest.Pytester, spans_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORT_BOT_API_TOKEN", SECRET)
    project, dataset = unique("secret"), unique("regressions")
    emit(spans_env, project, [{
        "question": f"My token is {SECRET}. What is the capital of Spain?",
        "answer": f"Barcelona (your token {SECRET} is noted)",
        "documents": ["Madrid is the capital of Spain."],
        "metadata": {"user": "u1", "pasted": SECRET}}])
    result = run(pytester, project, f"--phoenix-add-failures-to={dataset}")
    result.assert_outcomes(failed=1)
    assert f"added 1 failing span(s) to dataset {dataset!r}" in result.stdout.str()
    [example] = dataset_examples(spans_env, dataset)
    for part in ("input", "output", "metadata"):
        text = json.dumps(example[part])
        assert SECRET not in text, (part, text)
    assert "***" in json.dumps(example["input"]) and "***" in json.dumps(example["output"])
    assert "Barcelona" in json.dumps(example["output"])
    assert SECRET not in result.stdout.str()


# --- item 12: only spans judged and failed ------------------------------------------------


def test_only_spans_an_evaluator_judged_and_failed_are_added(
        pytester: pytest.Pytester, spans_env: str, judge: StandInJudge) -> None:
    project, dataset = unique("judged"), unique("regressions")
    sent = emit(spans_env, project, [*CONVERSATIONS[:3],
                                     {"question": "Who painted the Mona Lisa?",
                                      "answer": "Leonardo", "documents": ["Leonardo did."]}])
    # The code evaluator errors on the last span; the budget stops every judge call but the
    # first: only the Spain span (known_wrong failed it) is a failure.
    (pytester.path / "raise-for").write_text(sent[3].llm_id)
    result = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                 "--phoenix-reference=$.metadata.documents",
                 "--phoenix-judge-price=gpt-4o-mini=1000/1000", "--phoenix-budget-usd=0.01",
                 "--phoenix-concurrency=1", f"--phoenix-add-failures-to={dataset}")
    text = result.stdout.str()
    assert len(judge.requests) == 1, text
    assert "stopped by --phoenix-budget-usd" in text
    assert f"added 1 failing span(s) to dataset {dataset!r}" in text, text
    assert linked_spans(spans_env, dataset) == [sent[1].llm_id]
    [example] = dataset_examples(spans_env, dataset)
    failed = example["metadata"]["failed_evaluations"]
    assert [f["name"] for f in failed if f["name"] == "known_wrong"] == ["known_wrong"]
    # Each entry is a verdict an evaluator gave, never an error or a call not made.
    assert all(f["label"] is not None or f["score"] is not None for f in failed), failed
    assert all(f["label"] == "incorrect" for f in failed if f["name"] == "qa_correctness")
