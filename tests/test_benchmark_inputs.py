"""A judge under benchmark reads the right inputs, its figures have honest intervals, and the
benchmark experiment in Phoenix keeps what people said and whether the judge agreed (issue 25,
items 1-4). Against a real Phoenix and the stand-in judge; the server's own template formatter
(run in its virtual environment) is the reference for how a judge prompt's variables fill."""

from __future__ import annotations

import json
import math
import subprocess
import uuid
from typing import Any

import pytest
from pytest_phoenix_evals._core import agreement

from phoenix_admin import PhoenixAdmin
from phoenix_server import LIGHT_IMPORT, ensure_server_venv
from stand_in_judge import StandInJudge

Z = 1.959963984540054


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's score interval, by its textbook formula (checked against scipy below)."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# --- item 3: intervals that stay honest at small n and at perfect agreement -----------------


def test_kappa_and_f1_intervals_keep_their_width_at_perfect_agreement_on_six() -> None:
    pairs = [("yes", "yes")] * 3 + [("no", "no")] * 3
    kappa = agreement.kappa(pairs)
    f1 = agreement.f1(pairs, "yes")
    assert kappa.value == 1.0 and f1.value == 1.0
    assert kappa.low is not None and kappa.high is not None
    assert f1.low is not None and f1.high is not None
    # Six examples cannot prove a perfect judge: the intervals are far from zero width.
    assert kappa.high == 1.0 and kappa.low < 0.5, agreement.kappa(pairs).shown()
    assert f1.high == 1.0 and f1.low < 0.8, f1.shown()
    assert "[1.000, 1.000]" not in kappa.shown() + f1.shown()
    # By hand: Wilson for 6 of 6 has low n / (n + z^2); pe = (3*3 + 3*3) / 36 = 0.5.
    low = 6 / (6 + Z * Z)
    assert math.isclose(kappa.low, (low - 0.5) / 0.5, rel_tol=1e-9)
    # F1's J = TP / (TP + FP + FN) = 3 / 3; low 3 / (3 + z^2), through 2J / (1 + J).
    j = 3 / (3 + Z * Z)
    assert math.isclose(f1.low, 2 * j / (1 + j), rel_tol=1e-9)


def test_the_intervals_equal_scipys_wilson_carried_through_the_formulas() -> None:
    from scipy.stats import binomtest

    pairs = [("h", "h"), ("h", "h"), ("h", "f"), ("f", "f"), ("f", "f"), ("f", "f"),
             ("f", "h"), ("f", "f")]
    # kappa: po = 6/8, pe = (3*3 + 5*5) / 64.
    pe = (3 * 3 + 5 * 5) / 64
    ci = binomtest(6, 8).proportion_ci(confidence_level=0.95, method="wilson")
    kappa = agreement.kappa(pairs)
    assert kappa.value is not None and kappa.low is not None and kappa.high is not None
    assert math.isclose(kappa.value, (0.75 - pe) / (1 - pe))
    assert math.isclose(kappa.low, (ci.low - pe) / (1 - pe), abs_tol=1e-9)
    assert math.isclose(kappa.high, (ci.high - pe) / (1 - pe), abs_tol=1e-9)
    # f1 of h: TP 2, FP 1, FN 1: J = 2/4.
    ci = binomtest(2, 4).proportion_ci(confidence_level=0.95, method="wilson")
    f1 = agreement.f1(pairs, "h")
    assert f1.value is not None and f1.low is not None and f1.high is not None
    assert math.isclose(f1.value, 2 / 3)
    assert math.isclose(f1.low, 2 * ci.low / (1 + ci.low), abs_tol=1e-9)
    assert math.isclose(f1.high, 2 * ci.high / (1 + ci.high), abs_tol=1e-9)
    assert (f1.low, f1.high) == pytest.approx(tuple(
        2 * w / (1 + w) for w in _wilson(2, 4)))
    # At the other edge, a judge that never agrees: kappa's interval does not collapse either.
    never = [("a", "b")] * 3 + [("b", "a")] * 3
    worst = agreement.kappa(never)
    assert worst.value == -1.0 and worst.high is not None and worst.high > -0.5


# --- the golden sets --------------------------------------------------------------------------


def _dataset(admin: PhoenixAdmin, stem: str, examples: list[dict[str, Any]]) -> str:
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    admin.create_dataset(name, examples)
    return name


PLANETS = [
    ({"question": "Largest planet?"}, {"answer": "Saturn"},
     {"reference": "Jupiter", "label": "incorrect", "source": "quiz"}),
    ({"question": "Closest planet to the Sun?"}, {"answer": "Mercury"},
     {"reference": "Mercury", "label": "correct", "source": "quiz"}),
    ({"question": "Red planet?"}, {"answer": "Mars"},
     {"reference": "Mars", "label": "correct", "source": "quiz"}),
]


def _golden(admin: PhoenixAdmin) -> str:
    return _dataset(admin, "planets", [{"input": i, "output": o, "metadata": m}
                                       for i, o, m in PLANETS])


def _bodies(judge: StandInJudge) -> str:
    return json.dumps([r["body"] for r in judge.requests if r["path"].endswith("completions")
                       or r["path"].endswith("responses")])


# --- item 1: a golden set carries the reference the judge needs ----------------------------


def test_the_reference_comes_from_the_golden_example_not_from_the_response(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    golden = _golden(admin)
    result = pytester.runpytest(f"--phoenix-dataset={golden}",
                                "--phoenix-benchmark=qa_correctness",
                                "--phoenix-reference=$.metadata.reference",
                                "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    # The stand-in compares <answer> with <reference>: Saturn is not Jupiter.
    result.assert_outcomes(passed=3)
    bodies = _bodies(judge)
    assert "<answer>\\nSaturn\\n</answer>" in bodies, bodies
    assert "<reference>\\nJupiter\\n</reference>" in bodies, bodies
    assert "<reference>\\nSaturn\\n</reference>" not in bodies, out


def test_a_judge_given_the_response_as_its_reference_is_refused_before_any_call(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    golden = _golden(admin)
    bare = pytester.runpytest(f"--phoenix-dataset={golden}",
                              "--phoenix-benchmark=qa_correctness", "-p", "no:cacheprovider")
    assert bare.ret == pytest.ExitCode.USAGE_ERROR, bare.stdout.str()
    err = bare.stderr.str()
    assert "judge 'qa_correctness' reads a reference, and without --phoenix-reference, it is " \
           "the response under judgement itself" in err, err
    assert "--phoenix-reference=JSONPATH" in err
    itself = pytester.runpytest(f"--phoenix-dataset={golden}",
                                "--phoenix-benchmark=qa_correctness",
                                "--phoenix-reference=$.output", "-p", "no:cacheprovider")
    assert itself.ret == pytest.ExitCode.USAGE_ERROR
    assert "--phoenix-reference '$.output' resolves to the response under judgement itself" \
        in itself.stderr.str()
    nowhere = pytester.runpytest(f"--phoenix-dataset={golden}",
                                 "--phoenix-benchmark=qa_correctness",
                                 "--phoenix-reference=$.metadata.expected",
                                 "-p", "no:cacheprovider")
    assert nowhere.ret == pytest.ExitCode.USAGE_ERROR
    assert "--phoenix-reference finds nothing in 3 golden example(s)" in nowhere.stderr.str()
    assert "'$.metadata' exists and holds" in nowhere.stderr.str(), nowhere.stderr.str()
    assert judge.requests == []  # refused before any judge was called


def test_a_conftest_judge_with_its_own_reference_is_the_one_benchmarked(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    golden = _golden(admin)
    pytester.makeconftest("""
        from pytest_phoenix_evals import evaluator, qa_correctness

        @evaluator
        def short(output):
            return len(str(output)) < 100

        def pytest_phoenix_evals_evaluators(config, dataset, kind):
            assert kind == "benchmark", kind  # told what it judges
            return [qa_correctness(reference="$.metadata.reference"), short]

        def pytest_phoenix_evals_task(config, dataset):
            return lambda example: "never called"
    """)
    result = pytester.runpytest(f"--phoenix-dataset={golden}",
                                "--phoenix-benchmark=qa_correctness", "-p", "no:cacheprovider")
    out = result.stdout.str()
    result.assert_outcomes(passed=3)
    assert "<reference>\\nJupiter\\n</reference>" in _bodies(judge)
    # Hooks that do not run are said, not ignored.
    assert "the pytest_phoenix_evals_task hook is not called in a benchmark" in out, out
    assert "evaluator(s) 'short' do not run in a benchmark" in out, out


# --- item 2: a judge prompt's variables fill as the server fills them ------------------------

SERVER_RENDER = LIGHT_IMPORT + r"""
import json, sys
from phoenix.db.types.prompts import PromptTemplateFormat
from phoenix.server.api.helpers.prompts.template_helpers import get_template_formatter
out = []
for template, fmt, values in json.load(sys.stdin):
    out.append(get_template_formatter(PromptTemplateFormat(fmt)).format(template, **values))
json.dump(out, sys.stdout)
"""
LABELS = {"name": "verdict", "optimizationDirection": "MAXIMIZE",
          "values": [{"label": "correct", "score": 1}, {"label": "incorrect", "score": 0}]}


def _server_render(cases: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    python = ensure_server_venv().parent / "python"
    done = subprocess.run([str(python), "-c", SERVER_RENDER], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=300, check=True)
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("template_format, template", [
    ("MUSTACHE", "Q: {{input.question}} | A: {{output.answer}} | from {{metadata.source}} | "
                 "whole input: {{input}}"),
    ("F_STRING", "Q: {input.question} | A: {output.answer} | from {metadata.source} | "
                 "whole input: {input}"),
])
def test_a_judge_prompt_fills_dotted_variables_over_the_whole_context_as_the_server_does(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin, template_format: str, template: str) -> None:
    golden = _golden(admin)
    prompt = f"planet-judge-{uuid.uuid4().hex[:8]}"
    admin.create_prompt(prompt, [{"role": "system", "content": "Judge the answer."},
                                 {"role": "user", "content": template}],
                        template_format=template_format, output_configs=[LABELS])
    result = pytester.runpytest(f"--phoenix-dataset={golden}",
                                f"--phoenix-benchmark=prompt:{prompt}", "-p", "no:cacheprovider")
    assert result.ret in (0, 1), result.stdout.str() + result.stderr.str()
    sent = sorted(message["content"] for r in judge.requests
                  for message in r["body"]["messages"] if message["role"] == "user")
    # What the server renders for the same contexts: the judge's context of each example.
    contexts = [{"input": i, "output": o, "reference": o,
                 "metadata": {k: v for k, v in m.items() if k != "label"}}
                for i, o, m in PLANETS]
    expected = sorted(_server_render([(template, template_format, c) for c in contexts]))
    assert sent == expected
    assert any("Q: Largest planet? | A: Saturn | from quiz" in text for text in sent), sent


def test_a_judge_prompt_variable_that_cannot_be_filled_is_refused_before_any_call(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    golden = _golden(admin)
    prompt = f"planet-judge-{uuid.uuid4().hex[:8]}"
    admin.create_prompt(prompt, [{"role": "user",
                                  "content": "{{input.query}} / {{output.answer}}"}],
                        output_configs=[LABELS])
    result = pytester.runpytest(f"--phoenix-dataset={golden}",
                                f"--phoenix-benchmark=prompt:{prompt}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert "the judge prompt's template variable(s) cannot be filled for 3 golden example(s)" \
        in err, err
    assert "input.query (input has keys: question)" in err, err
    assert "agreement:" not in result.stdout.str()
    assert judge.requests == []


# --- item 4: the benchmark experiment keeps the human labels, the agreement, the figures ----


def test_the_experiment_records_human_labels_agreement_and_the_figures(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    # A secret in the process's environment, and in one person's label: it must not reach
    # Phoenix in any annotation or in the figures.
    secret = "bench-" + uuid.uuid4().hex
    monkeypatch.setenv("BENCH_INPUTS_TOKEN", secret)
    examples = [{"input": i, "output": o, "metadata": m} for i, o, m in PLANETS]
    examples[0]["metadata"] = {**examples[0]["metadata"], "label": f"incorrect {secret}"}
    golden = _dataset(admin, "planets-recorded", examples)
    dataset = admin.dataset_id(golden)
    assert dataset is not None
    name = f"bench-{uuid.uuid4().hex[:8]}"
    # The judge is right on all three by the references; people said otherwise on the first.
    result = pytester.runpytest_subprocess(
        f"--phoenix-dataset={golden}", "--phoenix-benchmark=qa_correctness",
        "--phoenix-reference=$.metadata.reference", f"--phoenix-experiment-name={name}",
        "-p", "no:cacheprovider")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    (experiment,) = [e for e in admin.experiments(dataset) if e["name"] == name]
    annotations = admin.annotations(experiment["id"])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for found in annotations:
        by_name.setdefault(found["name"], []).append(found)
    assert len(by_name["qa_correctness"]) == 3
    humans = by_name["human_label"]
    assert len(humans) == 3 and {h["annotatorKind"] for h in humans} == {"HUMAN"}
    assert sorted(h["label"] for h in humans)[:2] == ["correct", "correct"]
    assert any(h["label"].startswith("incorrect ") for h in humans)
    agreed = by_name["agreement"]
    assert len(agreed) == 3 and {a["annotatorKind"] for a in agreed} == {"CODE"}
    judged = {a["run_id"]: a["label"] for a in by_name["qa_correctness"]}
    human = {h["run_id"]: h["label"] for h in humans}
    for found in agreed:
        same = judged[found["run_id"]] == human[found["run_id"]]
        assert (found["label"], found["score"]) == (("agree", 1.0) if same else ("disagree", 0.0))
    assert sorted(a["label"] for a in agreed) == ["agree", "agree", "disagree"]
    # The summary figures, in the experiment's metadata.
    response = admin.http.get(f"/v1/experiments/{experiment['id']}")
    response.raise_for_status()
    metadata = response.json()["data"]["metadata"]
    figures = metadata["benchmark"]["figures"]
    assert metadata["benchmark"]["judge"] == "qa_correctness"  # what was there is kept
    assert figures["n"] == 3
    assert figures["agreement"]["value"] == pytest.approx(2 / 3)
    low, high = _wilson(2, 3)
    assert figures["agreement"]["low"] == pytest.approx(low)
    assert figures["agreement"]["high"] == pytest.approx(high)
    assert figures["confusion"]["rows"] == "human label"
    assert sum(map(sum, figures["confusion"]["counts"])) == 3
    assert "kappa" in figures and "correct" in figures["labels"]
    assert "Wilson" in figures["intervals"]["f1"]
    assert f"agreement: {2 / 3:.3f}" in out
    uploaded = json.dumps(annotations) + json.dumps(metadata)
    assert secret not in uploaded
