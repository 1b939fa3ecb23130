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

from fault_proxy import FaultProxy, Rule
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


def test_a_prompt_runs_on_several_models_side_by_side(
        pytester: pytest.Pytester, measured: dict[str, Any], judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    result = run(pytester, measured, "--phoenix-model=gpt-4o-mini,gpt-4.1",
                 "--phoenix-fail-under=contains=0.5", "--phoenix-summary-md=summary.md",
                 "--phoenix-experiment-name=compare")
    out = result.stdout.str()
    result.assert_outcomes(passed=4, failed=2)  # each model: France and Hamlet right
    assert result.ret == pytest.ExitCode.OK, out  # the gates (66.7% >= 50%) decide
    # Each model was sent the same prompt, and each has an experiment named by it.
    models = sorted(r["body"]["model"] for r in judge.requests
                    if r["path"] == "/v1/chat/completions")
    assert models == ["gpt-4.1"] * 3 + ["gpt-4o-mini"] * 3
    experiments = {e["name"]: e for e in admin.experiments(measured["id"])}
    assert set(experiments) == {"compare (gpt-4o-mini)", "compare (gpt-4.1)"}
    assert experiments["compare (gpt-4.1)"]["metadata"]["task"]["model_name"] == "gpt-4.1"
    # Each model gated on its own; side by side with intervals, cost and latency.
    name = measured["name"]
    result.stdout.fnmatch_lines([
        f"*contains=0.5*{name} (gpt-4o-mini)*3*66.7%*pass*",
        f"*contains=0.5*{name} (gpt-4.1)*3*66.7%*pass*",
    ])
    table = out[out.index("models side by side (2):"):].splitlines()
    assert re.match(r"model\s+cases\s+contains pass rate \[95% CI\]\s+cost\s+latency p50\s+"
                    r"latency p95", table[1]), table
    costs = {}
    for line in table[3:5]:
        model, cases, rate, low, high, cost, *_ = line.split()
        assert (cases, rate, low, high) == ("3", "66.7%", "[21,", "94]"), line
        costs[model] = float(cost.removeprefix("$"))
    # Phoenix's built-in prices: gpt-4.1 costs more than gpt-4o-mini for the same tokens.
    assert 0 < costs["gpt-4o-mini"] < costs["gpt-4.1"], costs
    md = Path(pytester.path, "summary.md").read_text()
    assert "### Models side by side" in md
    assert re.search(r"\| gpt-4\.1 \| 3 \| 66\.7% \[21, 94\] \| \$0\.\d+ \| \d+\.\d\d s \| "
                     r"\d+\.\d\d s \|", md), md


def mermaid(markdown: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", markdown, re.DOTALL)


def test_the_markdown_summary_charts_each_gated_pass_rate_over_recent_experiments(
        pytester: pytest.Pytester, measured: dict[str, Any], judge: StandInJudge) -> None:
    gate = "--phoenix-fail-under=contains=0.5"
    first = run(pytester, measured, gate, "--phoenix-set-baseline",
                "--phoenix-summary-md=first.md")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    [chart] = mermaid(Path(pytester.path, "first.md").read_text())
    assert 'x-axis ["this run"]' in chart and "line [0.667]" in chart
    # The model now gets Spain right too; a third run, without the gate, charts nothing.
    judge.configure(answers=[*ANSWERS[:2], ["capital of Spain", "Madrid, of course."]])
    second = run(pytester, measured, gate, "--phoenix-summary-md=second.md")
    assert second.ret == pytest.ExitCode.OK
    md = Path(pytester.path, "second.md").read_text()
    [chart] = mermaid(md)
    assert chart.splitlines() == [
        "xychart-beta",
        '    title "contains: pass rate, recent experiments"',
        '    x-axis ["baseline", "this run"]',
        '    y-axis "pass rate" 0 --> 1',
        "    line [0.667, 1.000]"]
    assert f"#### Pass rate of contains on {measured['name']}" in md
    assert "| baseline |" in md and "| 66.7% |" in md and "| this run | this run | 100.0% |" in md
    third = run(pytester, measured, "--phoenix-summary-md=third.md")
    assert third.ret == pytest.ExitCode.OK and not mermaid(
        Path(pytester.path, "third.md").read_text())


def test_a_chart_that_cannot_be_read_says_so_and_changes_nothing(
        pytester: pytest.Pytester, measured: dict[str, Any], phoenix_env: str) -> None:
    # Only the chart lists the dataset's experiments here; that listing meets an ingress 404.
    with FaultProxy(phoenix_env, [Rule(r"^GET /v1/datasets/[^/]+/experiments",
                                       "not-found")]) as proxy:
        result = run(pytester, measured, f"--phoenix-url={proxy.url}",
                     "--phoenix-fail-under=contains=0.5", "--phoenix-summary-md=summary.md")
        assert proxy.counts["not-found"] >= 1
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    md = Path(pytester.path, "summary.md").read_text()
    assert not mermaid(md)
    assert re.search(r"#### Pass rate of contains on measured-\w+\n\nno chart: the recent "
                     r"experiments could not be read \(`[^\n`]*404[^\n`]*`\); this run's "
                     r"result does not depend on them\.", md), md
    assert "| `contains=0.5` | " in md and "| 66.7% |" in md


def test_several_models_under_xdist_share_one_experiment_each(
        pytester: pytest.Pytester, measured: dict[str, Any], judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    result = run(pytester, measured, "-n", "2", "--phoenix-model=gpt-4o-mini,gpt-4.1",
                 "--phoenix-experiment-name=xdist", "--phoenix-fail-under=p95(latency)<=600",
                 "--phoenix-fail-under=sum(cost)<=1")
    result.assert_outcomes(passed=4, failed=2)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    experiments = {e["name"]: e for e in admin.experiments(measured["id"])}
    assert set(experiments) == {"xdist (gpt-4o-mini)", "xdist (gpt-4.1)"}
    assert all(len(admin.runs(e["id"])) == 3 for e in experiments.values())
    # The workers' run times and traces reached the controller's gates and table.
    result.stdout.fnmatch_lines([
        "models side by side (2):", "*", "*",
        r"gpt-4o-mini*3*66.7% [[]21, 94[]]*$0.0*s*s",
        r"gpt-4.1*3*66.7% [[]21, 94[]]*$0.0*s*s",
    ])
    assert len(re.findall(r"p95\(latency\)<=600 .* pass ", result.stdout.str())) == 2
    assert len(re.findall(r"sum\(cost\)<=1 .* \$0\.0\d* .* pass ", result.stdout.str())) == 2


def test_each_model_is_compared_with_the_baseline(
        pytester: pytest.Pytester, measured: dict[str, Any], judge: StandInJudge) -> None:
    first = run(pytester, measured, "--phoenix-experiment-name=before")
    first.assert_outcomes(passed=2, failed=1)
    judge.configure(answers=[*ANSWERS[:2], ["capital of Spain", "Madrid, of course."]])
    result = run(pytester, measured, "--phoenix-model=gpt-4o-mini,gpt-4.1",
                 "--phoenix-baseline=previous", "--phoenix-max-regression=0")
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK
    name = measured["name"]
    for model in ("gpt-4o-mini", "gpt-4.1"):
        result.stdout.fnmatch_lines([
            f"{name} ({model}): compared with baseline before (*), at most 0 pts of regression "
            f"allowed", "*", "*", "contains*3*66.7%*100.0%*+33.3 pts*0*1*pass"])


def test_a_partial_run_on_several_models_is_said_for_each(
        pytester: pytest.Pytester, measured: dict[str, Any], admin: PhoenixAdmin) -> None:
    result = run(pytester, measured, "--phoenix-model=gpt-4o-mini,gpt-4.1", "-k", "France",
                 "--phoenix-experiment-name=partial")
    result.assert_outcomes(passed=2)
    name = measured["name"]
    for model in ("gpt-4o-mini", "gpt-4.1"):
        result.stdout.fnmatch_lines([f"{name} ({model}): a partial run: 1 of 3 examples "
                                     f"selected (-k 'France')*"])
    experiments = {e["name"]: e for e in admin.experiments(measured["id"])}
    assert experiments["partial (gpt-4.1)"]["metadata"]["partial_run"]["cases"] == 1
