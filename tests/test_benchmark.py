"""Benchmarking a judge against human labels (--phoenix-benchmark), against a real Phoenix and
the stand-in judge, whose rule makes every answer computable: it labels an output
"hallucinated" exactly when the output holds the word FABRICATED, else "factual".

The golden set's eight labelled examples give these (judge, human) pairs, so the expected
figures are worked out by hand here:

    (h, h) (h, h) (h, f) (f, f) (f, f) (f, f) (f, h) (f, f)      h = hallucinated, f = factual

- agreement = 6/8 = 0.75
- kappa: po = 0.75; each rater says h 3 times and f 5 times, so pe = (3*3 + 5*5)/64 = 0.53125;
  kappa = (0.75 - 0.53125) / (1 - 0.53125) = 0.4667
- hallucinated: precision = 2/3 (judge said h 3 times, 2 right), recall = 2/3 (human said h 3
  times, judge found 2), f1 = 2*2 / (2*2 + 1 + 1) = 0.6667
- confusion (rows human, columns judge, labels sorted): f -> [4, 1], h -> [1, 2]
"""

from __future__ import annotations

import json
import math
import re
import shlex
import time
from typing import Any

import pytest
from pytest_phoenix_evals._core import agreement

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge
from usage import assert_usage_errors

NAME = "hallucination"
CONFIG = {"name": NAME, "optimizationDirection": "MAXIMIZE",
          "values": [{"label": "factual", "score": 1}, {"label": "hallucinated", "score": 0}]}


def human(label: str, llm: str | None = None) -> dict[str, Any]:
    """Metadata as Phoenix writes it for an annotated span added to a dataset."""
    records = [{"label": label, "score": None, "explanation": "checked by hand",
                "metadata": {}, "annotator_kind": "HUMAN"}]
    if llm is not None:  # another annotator's record of the same name: never the truth
        records.insert(0, {"label": llm, "annotator_kind": "LLM"})
    return {"span_kind": "LLM", "annotations": {NAME: records}, "source": "support-bot"}


GOLDEN = [
    ({"question": "Capital of France?"}, "Paris, a FABRICATED claim", human("hallucinated")),
    ({"question": "Capital of Italy?"}, "Rome and a FABRICATED fact", human("hallucinated")),
    ({"question": "Capital of Spain?"}, "Madrid FABRICATED", human("factual")),
    ({"question": "Capital of Japan?"}, "Tokyo", human("factual", llm="hallucinated")),
    ({"question": "Capital of Peru?"}, "Lima", human("factual")),
    ({"question": "Capital of Chile?"}, "Santiago", human("factual")),
    ({"question": "Capital of Kenya?"}, "Mombasa", human("hallucinated", llm="factual")),
    ({"question": "Capital of Egypt?"}, "Cairo", {"label": "factual"}),  # made by hand
    ({"question": "Capital of Ghana?"}, "Accra", {"source": "unlabelled"}),
    ({"question": "Capital of Chad?"}, "N'Djamena", {"annotations": {NAME: [
        {"label": "factual", "annotator_kind": "LLM"}]}}),  # no human said anything
]
PAIRS = [("hallucinated", "hallucinated"), ("hallucinated", "hallucinated"),
         ("hallucinated", "factual"), ("factual", "factual"), ("factual", "factual"),
         ("factual", "factual"), ("factual", "hallucinated"), ("factual", "factual")]
RULES = [["FABRICATED", "hallucinated"]]


def test_the_metrics_equal_the_hand_computed_values() -> None:
    assert agreement.agreement(PAIRS).value == 0.75
    assert math.isclose(agreement.kappa(PAIRS).value or 0, 0.21875 / 0.46875)
    assert math.isclose(agreement.precision(PAIRS, "hallucinated").value or 0, 2 / 3)
    assert math.isclose(agreement.recall(PAIRS, "hallucinated").value or 0, 2 / 3)
    assert math.isclose(agreement.f1(PAIRS, "hallucinated").value or 0, 2 / 3)
    assert math.isclose(agreement.recall(PAIRS, "factual").value or 0, 4 / 5)
    assert agreement.confusion(PAIRS) == (["factual", "hallucinated"], [[4, 1], [1, 2]])
    # Wilson's interval for 6 of 8: centre (0.75 + z^2/16) / (1 + z^2/8).
    low, high = agreement.agreement(PAIRS).low, agreement.agreement(PAIRS).high
    assert low is not None and high is not None
    assert math.isclose(low, 0.4093, abs_tol=1e-4) and math.isclose(high, 0.9285, abs_tol=1e-4)
    # Perfect agreement on one label throughout: kappa is undefined, not 1 or 0.
    assert agreement.kappa([("a", "a"), ("a", "a")]).value is None
    # Spearman: ranks (1, 2, 3, 4) against (1, 3, 2, 4) give 1 - 6*2/(4*15) = 0.8.
    rho = agreement.spearman([(0.1, 1.0), (0.2, 3.0), (0.3, 2.0), (0.4, 4.0)]).value
    assert rho is not None and math.isclose(rho, 0.8)


@pytest.fixture(scope="module")
def golden(admin: PhoenixAdmin) -> dict[str, Any]:
    """The golden set, with an LLM judge attached whose prompt has a production version and a
    candidate version."""
    dataset_id = admin.create_dataset("hallucination-golden", [
        {"input": i, "output": {"answer": o}, "metadata": m} for i, o, m in GOLDEN])
    messages = [{"role": "system", "content": "Is the answer supported? Notes: {{notes}}"},
                {"role": "user", "content": "{{answer}}"}]
    prompt = admin.create_prompt("hallucination-judge", messages, output_configs=[CONFIG],
                                 tags=["production", "legacy"])
    candidate = admin.add_prompt_version(
        "hallucination-judge", [{**messages[0], "content": messages[0]["content"] + " Be strict."},
                                messages[1]], output_configs=[CONFIG], tags=["candidate"])
    admin.attach_llm_evaluator(dataset_id, NAME, "hallucination-judge", [CONFIG],
                               {"answer": "$.output.answer", "notes": "$.metadata"},
                               prompt_version_tag="production")
    return {"id": dataset_id, "production": prompt["version_id"], "candidate": candidate}


def tagged(admin: PhoenixAdmin, tag: str) -> str:
    response = admin.http.get(f"/v1/prompts/hallucination-judge/tags/{tag}")
    response.raise_for_status()
    return str(response.json()["data"]["id"])


def made_since(admin: PhoenixAdmin, dataset_id: str, before: set[str]) -> list[dict[str, Any]]:
    """The experiments on the dataset that are not in ``before``: this test's own, whatever
    other tests ran on the golden set before it."""
    return [e for e in admin.experiments(dataset_id) if e["id"] not in before]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--phoenix-dataset=hallucination-golden",
                              f"--phoenix-benchmark={NAME}", "-p", "no:cacheprovider", *args)


def test_a_judge_is_benchmarked_gated_and_promoted(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        golden: dict[str, Any]) -> None:
    judge.configure(rules=RULES)
    results = pytester.path / "bench.csv"
    before = {e["id"] for e in admin.experiments(golden["id"])}
    result = run(pytester, "--phoenix-prompt-tag=candidate",
                 "--phoenix-fail-under=agreement(hallucination)>=0.7",
                 "--phoenix-fail-under=kappa(hallucination)>=0.4",
                 "--phoenix-fail-under=recall(hallucination=hallucinated)>=0.6",
                 "--phoenix-promote-tag=production", f"--phoenix-results={results}",
                 f"--phoenix-summary-md={pytester.path / 'bench.md'}")
    out = result.stdout.str()
    # A case per labelled example; it passes when the judge's label is the human's.
    result.assert_outcomes(passed=6, failed=2)
    assert result.ret == 0, out  # the gates decide
    assert "label must equal the human label 'factual'" in out
    assert "label must equal the human label 'hallucinated'" in out
    assert "traces: hallucination " in out  # the judge's trace, for a failing case
    # The report: n, each metric with its interval, the confusion matrix, what was left out.
    assert "n=8 (95% confidence intervals)" in out
    assert "agreement: 0.750 [0.409, 0.929]" in out
    assert "kappa:     0.467 [" in out
    assert "hallucinated: precision 0.667 [" in out and ", recall 0.667 [" in out
    assert "2 example(s) without a human label were left out" in out
    assert "human \\ judge" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["factual", "4", "1"] in rows and ["hallucinated", "1", "2"] in rows, out
    markdown = (pytester.path / "bench.md").read_text()
    assert "agreement: 0.750 [0.409, 0.929]" in markdown and "human \\ judge" in markdown
    # ... and as tables: the metrics, the per-label figures, the confusion matrix.
    assert "| agreement | 0.750 [0.409, 0.929] | Wilson score interval |" in markdown
    assert re.search(r"\| hallucinated \| 0\.667 \[[0-9.]+, [0-9.]+\] \| 0\.667 \[", markdown)
    assert "| human \\ judge | factual | hallucinated |" in markdown
    assert "| **factual** | 4 | 1 |" in markdown and "| **hallucinated** | 1 | 2 |" in markdown
    # The judge never read the human labels (its prompt maps the whole metadata).
    bodies = json.dumps([r["body"] for r in judge.requests])
    assert "HUMAN" not in bodies and "annotator_kind" not in bodies and "checked by hand" \
        not in bodies
    assert "support-bot" in bodies  # the rest of the metadata it did read
    assert "Be strict." in bodies  # the candidate version ran
    # Promoted: production now on the candidate, and the summary says both versions.
    assert tagged(admin, "production") == golden["candidate"]
    assert (f"promoted: prompt 'hallucination-judge' version {golden['candidate']} now "
            f"carries tag 'production' (before: version {golden['production']})") in out
    # The experiment on the golden set names the prompt version it judged.
    (experiment,) = made_since(admin, golden["id"], before)
    assert experiment["metadata"]["benchmark"]["prompt_version_id"] == golden["candidate"]
    assert experiment["metadata"]["benchmark"]["human_labels"] == 8
    from pytest_phoenix_evals._core.naming import row_id

    assert experiment["name"].startswith(
        f"judge hallucination prompt hallucination-judge v{row_id(golden['candidate'])} on "), \
        experiment["name"]
    assert len(admin.runs(experiment["id"])) == 8
    # One row per example with both labels.
    import pandas

    frame = pandas.read_csv(results)
    assert len(frame) == 8
    assert sorted(zip(frame["label"], frame["human_label"], strict=True)) == sorted(PAIRS)


def test_nothing_is_promoted_when_a_gate_fails(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        golden: dict[str, Any]) -> None:
    judge.configure(rules=RULES)
    before = tagged(admin, "production")
    failing = run(pytester, "--phoenix-prompt-tag=candidate",
                  "--phoenix-fail-under=agreement(hallucination)>=0.9",
                  "--phoenix-promote-tag=staging")
    assert failing.ret == 1
    assert "--phoenix-promote-tag=staging: nothing promoted: a gate failed" in failing.stdout.str()
    ungated = run(pytester, "--phoenix-promote-tag=staging")
    assert "nothing promoted: no --phoenix-fail-under gate was set" in ungated.stdout.str()
    missing = admin.http.get("/v1/prompts/hallucination-judge/tags/staging")
    assert missing.status_code == 404
    assert tagged(admin, "production") == before


def test_a_candidate_and_a_tagged_version_side_by_side(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        golden: dict[str, Any]) -> None:
    # The candidate's prompt says "Be strict.": the stand-in then calls everything
    # hallucinated, right on the 3 hallucinated examples only; the legacy version is right on
    # 6 (see the module docstring). Only the candidate is right on Mombasa; only legacy on the
    # 4 factual answers it labels factual; both on the 2 FABRICATED ones; neither on Madrid.
    judge.configure(rules=[["Be strict.", "hallucinated"], *RULES])
    before = {e["id"] for e in admin.experiments(golden["id"])}
    result = run(pytester, "--phoenix-prompt-tag=candidate",
                 "--phoenix-benchmark-against=legacy",
                 "--phoenix-fail-under=agreement(hallucination)>=0.3", "-v")
    out = result.stdout.str()
    result.assert_outcomes(passed=3 + 6, failed=5 + 2)
    assert result.ret == 0, out  # the gate is the candidate's: 3/8 >= 0.3
    assert "phoenix:hallucination-golden[legacy]::" in out
    assert "candidate against legacy on hallucination-golden, example by example: both right " \
           "2, both wrong 1" in out
    assert "only candidate right: 1 (" in out and "capital-of-kenya" in out
    assert "only legacy right: 4 (" in out
    assert "hallucination-golden[legacy]: 8 cases, 6 passed, 2 failed" in out
    gates = [line for line in out.splitlines() if line.startswith("agreement(")]
    assert len(gates) == 1 and "0.375" in gates[0], gates
    experiments = made_since(admin, golden["id"], before)
    tags = sorted(e["metadata"]["benchmark"]["prompt_tag"] for e in experiments)
    assert tags == ["candidate", "legacy"]


def test_bad_benchmark_input_says_what_to_fix(
        pytester: pytest.Pytester, phoenix_env: str, golden: dict[str, Any],
        qa_dataset: dict[str, Any]) -> None:
    cases = [
        (["--phoenix-dataset=hallucination-golden", "--phoenix-benchmark=nonesuch"],
         "no LLM judge 'nonesuch' is attached to the golden dataset 'hallucination-golden' "
         "(its judges: hallucination)"),
        (["--phoenix-dataset=qa", "--phoenix-benchmark=answer_exact"],
         "is a builtin evaluator, not a judge"),
        (["--phoenix-benchmark=hallucination"], "exactly one --phoenix-dataset"),
        (["--phoenix-dataset=qa", "--phoenix-promote-tag=production"],
         "only with --phoenix-benchmark"),
        (["--phoenix-dataset=hallucination-golden", "--phoenix-benchmark=hallucination",
          "--phoenix-fail-under=recall(hallucination)>=0.9"],
         "recall is of one label: recall(hallucination=LABEL)"),
    ]
    assert_usage_errors(pytester, cases)


def test_our_own_judge_on_a_hand_made_golden_set_has_no_prompt_to_promote(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    # Labels as a plain metadata["label"]; no judge attached: this plugin's hallucination
    # judge is the one under test. Its reference is the text the answer was drawn from, in the
    # metadata (--phoenix-reference), so the stand-in's tag rule agrees unless the FABRICATED
    # rule fires.
    admin.create_dataset("plain-golden", [
        {"input": i, "output": {"answer": o}, "metadata": {"label": h, "reference": o}}
        for (i, o, _), (_, h) in zip(GOLDEN, PAIRS, strict=False)])
    judge.configure(rules=RULES)
    result = pytester.runpytest("--phoenix-dataset=plain-golden",
                                "--phoenix-benchmark=hallucination", "-p", "no:cacheprovider",
                                "--phoenix-reference=$.metadata.reference",
                                "--phoenix-fail-under=agreement(hallucination)>=0.7",
                                "--phoenix-promote-tag=production")
    out = result.stdout.str()
    result.assert_outcomes(passed=6, failed=2)
    assert "agreement: 0.750 [0.409, 0.929]" in out
    assert ("nothing promoted: judge 'hallucination' is not a prompt version in Phoenix prompt "
            "management") in out


def test_corrections_of_judge_traces_become_golden_examples_once(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    import hashlib

    import pandas

    from span_app import annotate

    admin.create_dataset("corrected-source", [
        {"input": i, "output": {"answer": o}, "metadata": {"label": "factual", "reference": o}}
        for i, o, _ in GOLDEN[:3]])
    judge.configure(rules=RULES)
    results = pytester.path / "judged.csv"
    judged_run = pytester.runpytest("--phoenix-dataset=corrected-source",
                                    "--phoenix-benchmark=hallucination",
                                    "--phoenix-reference=$.metadata.reference",
                                    f"--phoenix-results={results}", "-p", "no:cacheprovider")
    judged_run.assert_outcomes(failed=3)
    trace_ids = list(pandas.read_csv(results)["judge_trace_id"])
    assert len(trace_ids) == 3
    project = "pytest-phoenix-evals judges"
    roots: dict[str, str] = {}
    deadline = time.monotonic() + 60  # Phoenix stores spans a while after it answers OTLP
    while len(roots) < 3:
        assert time.monotonic() < deadline, roots
        time.sleep(0.2)
        response = admin.http.get(f"/v1/projects/{project}/spans",
                                  params={"trace_id": trace_ids, "limit": 1000})
        if response.status_code == 200:
            roots = {s["context"]["trace_id"]: s["context"]["span_id"]
                     for s in response.json()["data"] if s["name"] == "Evaluator: hallucination"}
    # A human corrects two of the judge's answers; a tool annotates the third (no correction).
    first, second, third = (roots[t] for t in trace_ids)
    annotate(phoenix_env, first, NAME, "factual", identifier="alice")
    annotate(phoenix_env, second, NAME, "hallucinated", identifier="alice")
    annotate(phoenix_env, third, NAME, "factual", identifier="bot", kind="LLM")

    command = [f"--phoenix-corrections={project}", "--phoenix-benchmark=hallucination",
               "--phoenix-dataset=corrected-golden", "--phoenix-test-share=0.5",
               "-p", "no:cacheprovider"]
    added = pytester.runpytest(*command)
    assert added.ret == 0, added.stdout.str() + added.stderr.str()
    assert "2 human correction(s) of judge 'hallucination'" in added.stdout.str()
    assert "2 added to dataset 'corrected-golden'" in added.stdout.str()
    again = pytester.runpytest(*command)
    assert "0 added" in again.stdout.str() and "2 were in it already" in again.stdout.str()

    dataset = admin.dataset_id("corrected-golden")
    examples = admin.http.get(f"/v1/datasets/{dataset}/examples").json()["data"]["examples"]
    assert len(examples) == 2
    by_trace = {e["metadata"]["judge_trace_id"]: e for e in examples}
    judged = by_trace[trace_ids[0]]
    assert judged["input"] == GOLDEN[0][0]  # what the judge saw
    assert judged["output"] == {"answer": GOLDEN[0][1]}
    assert judged["metadata"]["judge_label"] == "hallucinated"
    record = judged["metadata"]["annotations"][NAME][0]
    assert (record["label"], record["annotator_kind"]) == ("factual", "HUMAN")
    # The split follows the trace id: the same correction lands in the same split anywhere.
    def in_split(split: str) -> set[str]:
        response = admin.http.get(f"/v1/datasets/{dataset}/examples", params={"split": split})
        if response.status_code == 404:  # no example was put in that split
            return set()
        return {e["metadata"]["judge_trace_id"] for e in response.json()["data"]["examples"]}

    expected = {t for t in trace_ids[:2]
                if int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) / 16 ** 8 < 0.5}
    assert in_split("test") == expected
    assert in_split("train") == set(trace_ids[:2]) - expected
    # The reference the judge read comes along, and the golden set is ready for a benchmark.
    assert judged["metadata"]["reference"] == GOLDEN[0][1]
    # The command the corrections run printed, run as printed.
    printed = re.search(r"benchmark the judge on them with (pytest .*)$", added.stdout.str(),
                        flags=re.M)
    assert printed and printed[1] == ("pytest --phoenix-dataset=corrected-golden "
                                      "--phoenix-benchmark=hallucination "
                                      "'--phoenix-reference=$.metadata.reference'"), \
        added.stdout.str()
    bench = pytester.runpytest(*shlex.split(printed[1])[1:])
    bench.assert_outcomes(passed=1, failed=1)


def test_a_judge_prompt_of_prompt_management_is_benchmarked_by_name_and_tag(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        golden: dict[str, Any]) -> None:
    # Not attached to any dataset: a prompt whose tool answers the "hallucination" labels,
    # its variables filled from the context by name.
    admin.create_prompt("standalone-judge", [
        {"role": "system", "content": "Is this answer supported?"},
        {"role": "user", "content": "{{output}}"}], output_configs=[CONFIG], tags=["candidate"])
    judge.configure(rules=RULES)
    result = pytester.runpytest("--phoenix-dataset=hallucination-golden",
                                "--phoenix-benchmark=prompt:standalone-judge@candidate",
                                "--phoenix-fail-under=agreement(standalone-judge)>=0.7",
                                "-p", "no:cacheprovider")
    out = result.stdout.str()
    result.assert_outcomes(passed=6, failed=2)
    assert result.ret == 0, out
    assert "agreement: 0.750 [0.409, 0.929]" in out
    unknown = pytester.runpytest("--phoenix-dataset=hallucination-golden",
                                 "--phoenix-benchmark=prompt:standalone-judge@nonesuch",
                                 "-p", "no:cacheprovider")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    assert ("prompt 'standalone-judge' has no tag or version 'nonesuch'. Available tags: "
            "candidate.") in unknown.stderr.str()
