"""What a person sees of a run beside its pass rates, against a real Phoenix and the stand-in
model: the task's latency and the cost Phoenix computes for its LLM spans, gated
(--phoenix-fail-under='p95(latency)<=2.5', 'sum(cost)<=0.50'); a prompt run on several models
side by side (--phoenix-model); and the markdown summary's charts of each gated annotation
over the dataset's recent experiments."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge

EXAMPLES = [
    {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"}},
    {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"}},
    {"input": {"question": "What is the capital of Spain?"}, "output": {"answer": "Madrid"}},
]
# What the stand-in model answers (Spain wrong on purpose: one case fails).
ANSWERS = [["capital of France", "The capital is Paris."],
           ["Hamlet", "Hamlet was written by William Shakespeare."],
           ["capital of Spain", "It is Barcelona."]]
PROMPT = """
model: gpt-4o-mini
invocation_parameters: {temperature: 0.0}
messages:
  - role: user
    content: "Question: {{question}}"
"""


@pytest.fixture
def measured(pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
             admin: PhoenixAdmin) -> dict[str, Any]:
    """A dataset of its own whose attached built-in reads the prompt's answer, and the prompt
    file (gpt-4o-mini, which Phoenix prices out of the box)."""
    name = f"measured-{uuid.uuid4().hex[:8]}"
    dataset_id = admin.create_dataset(name, EXAMPLES)
    admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                         {"text": "$.output.messages[0].content",
                          "words": "$.reference.answer"})
    judge.configure(answers=ANSWERS)
    pytester.makefile(".yaml", qa=PROMPT)
    return {"id": dataset_id, "name": name}


def run(pytester: pytest.Pytester, measured: dict[str, Any], *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-dataset={measured['name']}",
                              "--phoenix-task=prompt-file:qa.yaml", "-p", "no:cacheprovider",
                              *args)


def test_latency_and_cost_are_gated_with_their_intervals(
        pytester: pytest.Pytester, measured: dict[str, Any], admin: PhoenixAdmin) -> None:
    result = run(pytester, measured, "--phoenix-fail-under=p95(latency)<=600",
                 "--phoenix-fail-under=mean(latency)<=600",
                 "--phoenix-fail-under=sum(cost)<=0.50",
                 "--phoenix-fail-under=sum(cost)<0.0000001",
                 "--phoenix-summary-md=summary.md")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    # Phoenix priced each run's LLM span (gpt-4o-mini's built-in price): a tiny, known cost.
    rows = {line.split()[0]: line for line in out.splitlines()
            if re.match(r"^(p95|mean|sum)\(", line)}
    assert "pass" in rows["p95(latency)<=600"] and " s " in rows["p95(latency)<=600"]
    assert "n=3, 95% CI [" in rows["p95(latency)<=600"]
    assert "72 cases bound a p95 from above" in rows["p95(latency)<=600"]
    assert "(order statistics)" in rows["p95(latency)<=600"]
    assert "(bootstrap)" in rows["mean(latency)<=600"]
    assert "the run's own total: no interval" in rows["sum(cost)<=0.50"]
    cost = re.search(r"\$(\d+\.\d+)", rows["sum(cost)<=0.50"])
    assert cost is not None and 0 < float(cost.group(1)) < 0.01, rows["sum(cost)<=0.50"]
    assert "pass" in rows["sum(cost)<=0.50"] and "FAIL" in rows["sum(cost)<0.0000001"]
    # The same figure as Phoenix's own: the experiment's runs summed.
    experiment = max(admin.experiments(measured["id"]), key=lambda e: e["created_at"])
    runs = admin.graphql(
        "query($id: ID!) { node(id: $id) { ... on Experiment { runs(first: 10) { edges {"
        " node { costSummary { total { cost } } } } } } } }",
        id=experiment["id"])["node"]["runs"]["edges"]
    total = sum(edge["node"]["costSummary"]["total"]["cost"] for edge in runs)
    assert float(cost.group(1)) == pytest.approx(total, rel=0.05)
    # The markdown summary's gate table carries the same values.
    md = Path(pytester.path, "summary.md").read_text()
    assert f"| `sum(cost)<=0.50` | {measured['name']} | 3 | ${cost.group(1)} |" in md


def test_a_cost_gate_without_uploads_fails_and_says_why(
        pytester: pytest.Pytester, measured: dict[str, Any]) -> None:
    result = run(pytester, measured, "--phoenix-no-upload", "--phoenix-fail-under=sum(cost)<=1",
                 "--phoenix-fail-under=max(latency)<=600")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*sum(cost)<=1*3*-*FAIL*Phoenix computes the cost from the runs' traces, and nothing "
        "was uploaded*",
        "*max(latency)<=600*3*s*pass*n=3; the run's own largest: no interval"])
