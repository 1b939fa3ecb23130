"""The promises of the dataset run, kept by the prompt task and the judge benchmark too (issue
24): no secret quoted from a server's answer reaches the terminal, the markdown summary or
``$GITHUB_STEP_SUMMARY``; a prompt file cannot stand for gigabytes; a golden set's human
labels that disagree, are missing or are spelled unlike the judge's are said, and a benchmark
run in part never moves a tag. Against a real Phoenix and the stand-in model and judge."""

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
]
ANSWERS = [["capital of France", "The capital is Paris."],
           ["Hamlet", "Hamlet was written by William Shakespeare."]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def answered(admin: PhoenixAdmin) -> str:
    """A dataset of this test's own whose attached built-in passes on the stand-in's answers."""
    name = unique("s24-prompted")
    dataset_id = admin.create_dataset(name, EXAMPLES)
    admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                         {"text": "$.output.messages[0].content",
                          "words": "$.reference.answer"})
    return name


# --- item 5: a server's answer quoted in the summary passes the secret filter ---------------


def test_a_refused_push_quotes_no_secret_anywhere(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        answered: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SUPPORT_BOT_TOKEN", secret)  # a variable the filter knows by its name
    step = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    judge.configure(answers=ANSWERS)
    # The run never reads a version's metadata; the server wants a mapping there, refuses the
    # push (422) and echoes the value it refused.
    pytester.makefile(".yaml", refused="model: gpt-4o-mini\n"
                                       f"metadata: 'deployed with {secret}'\n"
                                       "messages: [{role: user, content: 'Q: {{question}}'}]\n")
    prompt = unique("s24-refused")
    result = pytester.runpytest(f"--phoenix-dataset={answered}", "-p", "no:cacheprovider",
                                "--phoenix-task=prompt-file:refused.yaml",
                                "--phoenix-fail-under=contains=0.6",
                                f"--phoenix-push-prompt={prompt}",
                                f"--phoenix-summary-md={pytester.path / 'summary.md'}")
    out = result.stdout.str() + result.stderr.str()
    # The push failed, loudly: said, and the exit status is not 0.
    assert f"--phoenix-push-prompt={prompt}: failed: " in out, out
    assert "422" in out, out
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    markdown = (pytester.path / "summary.md").read_text()
    assert f"--phoenix-push-prompt={prompt}: failed: " in markdown
    assert step.read_text() == markdown
    # The server's answer quoted the secret; nothing that left the process holds it.
    for where, text in (("terminal", out), ("--phoenix-summary-md", markdown),
                        ("$GITHUB_STEP_SUMMARY", step.read_text())):
        assert secret not in text, where
    assert "deployed with ***" in out, out  # the filter did it, not the server's silence


def test_a_usage_problem_quoting_a_server_passes_the_secret_filter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_phoenix_evals._core.errors import UsageProblem

    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SUPPORT_BOT_TOKEN", secret)
    # As the modes raise it: an option, then the server's answer quoted.
    problem = UsageProblem(f"--phoenix-task prompt:p: Phoenix answered 422: "
                           f'{{"input": "{secret}"}}')
    assert secret not in str(problem) and '"input": "***"' in str(problem)


# --- item 16: a prompt file may not stand for gigabytes --------------------------------------


def alias_bomb(levels: int, width: int) -> str:
    """A YAML document of a few hundred bytes whose last anchor stands for width ** levels
    copies of a short text."""
    lines = ["a0: &a0 'lol lol lol lol'"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines)


def test_a_prompt_file_that_expands_past_the_bound_is_refused(tmp_path: Path) -> None:
    from pytest_phoenix_evals._modes.prompt_file import FileError, read_prompt_file

    head = "model: gpt-4o-mini\nmessages: [{role: user, content: 'Q: {{question}}'}]\n"
    bomb = tmp_path / "bomb.yaml"
    # 9 ** 9 = 387 million copies: gigabytes, from about 650 bytes.
    body = alias_bomb(9, 9).replace("\n", "\n  ")
    bomb.write_text(f"{head}metadata:\n  {body}\n")
    assert len(bomb.read_bytes()) < 800
    with pytest.raises(FileError, match=r"expands to more than [0-9,]+ (values|characters of "
                                        r"text), the bound of a prompt file"):
        read_prompt_file(bomb)
    # Many values, little text: the values' bound.
    many = tmp_path / "many.yaml"
    small = alias_bomb(7, 6).replace("lol lol lol lol", "x").replace("\n", "\n  ")
    many.write_text(f"{head}metadata:\n  {small}\n")
    with pytest.raises(FileError, match=r"expands to more than 100,000 values, the bound"):
        read_prompt_file(many)
    # Few values, much text: the text bound.
    text = tmp_path / "text.yaml"
    text.write_text(f"{head}metadata:\n  t0: &t0 '{'x' * 4000}'\n"
                    + "".join(f"  t{i}: &t{i} [*t{i - 1}, *t{i - 1}, *t{i - 1}, *t{i - 1}]\n"
                              for i in range(1, 7)))
    with pytest.raises(FileError, match=r"more than 1,000,000 characters of text"):
        read_prompt_file(text)
    # An alias inside what its anchor holds: a structure that contains itself.
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"{head}metadata: &m {{again: *m}}\n")
    with pytest.raises(FileError, match=r"more than 64 deep"):
        read_prompt_file(loop)
    # Nesting too deep for the parsers themselves.
    deep = tmp_path / "deep.json"
    deep.write_text('{"model": "m", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FileError, match=r"nests mappings and lists"):
        read_prompt_file(deep)
    # A real prompt file, anchors and all, is read.
    fine = tmp_path / "fine.yaml"
    fine.write_text("model: gpt-4o-mini\nmessages:\n  - &sys {role: system, content: Be brief.}\n"
                    "  - {role: user, content: 'Q: {{question}}'}\nmetadata: {again: *sys}\n")
    assert read_prompt_file(fine)["metadata"] == {"again": {"role": "system",
                                                            "content": "Be brief."}}


def test_an_alias_bomb_is_never_pushed(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        answered: str) -> None:
    judge.configure(answers=ANSWERS)
    # 8 ** 6 = 262,144 copies, about 6 MB once expanded, from about 450 bytes.
    body = alias_bomb(6, 8).replace("\n", "\n  ")
    pytester.makefile(".yaml", bomb="model: gpt-4o-mini\n"
                                     "messages: [{role: user, content: 'Q: {{question}}'}]\n"
                                     f"metadata:\n  {body}\n")
    prompt = unique("s24-bomb")
    result = pytester.runpytest(f"--phoenix-dataset={answered}", "-p", "no:cacheprovider",
                                "--phoenix-task=prompt-file:bomb.yaml",
                                "--phoenix-fail-under=contains=0.6",
                                f"--phoenix-push-prompt={prompt}")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "--phoenix-task prompt-file:bomb.yaml: " in out, out
    assert "bomb.yaml: expands to more than 1,000,000 characters of text, the bound of a " \
        "prompt file" in out, out
    assert "Traceback" not in out and "MemoryError" not in out
    assert not judge.requests  # refused before anything ran
    versions = admin.http.get(f"/v1/prompts/{prompt}/versions")
    assert versions.status_code == 404 or versions.json()["data"] == [], versions.text


# --- item 15: the golden set's human labels, and a benchmark run in part ---------------------

NAME = "hallucination"
CONFIG = {"name": NAME, "optimizationDirection": "MAXIMIZE",
          "values": [{"label": "factual", "score": 1}, {"label": "hallucinated", "score": 0}]}
RULES = [["FABRICATED", "hallucinated"]]


def said(*labels: str) -> dict[str, Any]:
    """Metadata of an annotated span added to a dataset: one HUMAN record per label."""
    return {"annotations": {NAME: [{"label": label, "annotator_kind": "HUMAN",
                                    "identifier": f"person-{i}"}
                                   for i, label in enumerate(labels)]}}


@pytest.fixture
def golden(admin: PhoenixAdmin) -> dict[str, str]:
    """A golden set of this test's own, judged by a prompt of its own tagged 'candidate'.
    The stand-in judge says 'hallucinated' exactly when the answer holds FABRICATED."""
    name, prompt = unique("s24-golden"), unique("s24-judge")
    dataset_id = admin.create_dataset(name, [
        {"input": {"question": q}, "output": {"answer": a}, "metadata": m} for q, a, m in [
            ("Capital of France?", "Paris, a FABRICATED claim", said("hallucinated")),
            ("Capital of Japan?", "Tokyo", said("factual")),
            ("Capital of Peru?", "Lima", said("factual")),
            # Two people, two answers: no truth to hold the judge to.
            ("Capital of Italy?", "Rome", said("factual", "hallucinated")),
            # Spelled unlike the judge's label: can never agree.
            ("Capital of Ghana?", "Accra", said("Factual")),
        ]])
    made = admin.create_prompt(prompt, [{"role": "user", "content": "{{answer}}"}],
                               output_configs=[CONFIG], tags=["candidate"])
    admin.attach_llm_evaluator(dataset_id, NAME, prompt, [CONFIG], {"answer": "$.output.answer"},
                               prompt_version_tag="candidate")
    return {"name": name, "id": dataset_id, "prompt": prompt, "version": made["version_id"]}


def bench(pytester: pytest.Pytester, golden: dict[str, str], *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-dataset={golden['name']}", f"--phoenix-benchmark={NAME}",
                              "--phoenix-prompt-tag=candidate", "-p", "no:cacheprovider",
                              "--phoenix-fail-under=agreement(hallucination)>=0.7",
                              "--phoenix-promote-tag=production", *args)


def production(admin: PhoenixAdmin, prompt: str) -> str | None:
    response = admin.http.get(f"/v1/prompts/{prompt}/tags/production")
    return str(response.json()["data"]["id"]) if response.status_code == 200 else None


def test_disagreeing_and_misspelled_human_labels_are_said(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        golden: dict[str, str]) -> None:
    judge.configure(rules=RULES)
    md = pytester.path / "bench.md"
    result = bench(pytester, golden, "-v", f"--phoenix-summary-md={md}")
    out = result.stdout.str()
    # Italy is left out (not judged by whichever record came first); Ghana fails.
    result.assert_outcomes(passed=3, failed=1)
    assert "capital-of-italy" not in out.split("phoenix evals")[0], out
    assert "n=4 (95% confidence intervals)" in out
    assert re.search(r"1 example\(s\) whose human labels disagree were left out \(ex\d+-"
                     r"capital-of-italy: 'factual' vs 'hallucinated'\)", out), out
    assert (f"judge 'hallucination' on {golden['name']}: 1 golden example(s) have a human label "
            f"that is none of the judge's labels ('factual', 'hallucinated'): 'Factual' (1), "
            f"meant 'factual'?") in out, out
    assert "whose human labels disagree were left out" in md.read_text()
    # The whole golden set ran and the gate passed (3 of 4): promoted.
    assert result.ret == pytest.ExitCode.OK, out
    assert production(admin, golden["prompt"]) == golden["version"], out
    (experiment,) = admin.experiments(golden["id"])
    assert experiment["metadata"]["benchmark"]["human_labels"] == 4
    assert experiment["metadata"]["benchmark"]["human_labels_disagree"] == 1


@pytest.mark.parametrize("selection", [["-k", "france or japan"], ["--phoenix-limit=2"]])
def test_a_benchmark_run_in_part_never_moves_the_tag(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        golden: dict[str, str], selection: list[str]) -> None:
    judge.configure(rules=RULES)
    result = bench(pytester, golden, *selection)
    out = result.stdout.str()
    result.assert_outcomes(passed=2)  # every selected case agrees: the gate passes on them
    assert result.ret == pytest.ExitCode.OK, out
    assert (f"--phoenix-promote-tag=production: nothing promoted: only 2 of the 4 golden "
            f"examples of {golden['name']} ran (") in out, out
    assert "a tag moves only on the whole golden set" in out
    assert f"{golden['name']}: a partial benchmark: 2 of 4 golden examples selected" in out
    assert production(admin, golden["prompt"]) is None
    (experiment,) = admin.experiments(golden["id"])
    assert experiment["metadata"]["partial_run"]["examples"] == 4


def test_a_golden_set_without_human_labels_is_explained(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    name = unique("s24-unlabelled")
    admin.create_dataset(name, [
        {"input": {"question": "Capital of Chad?"}, "output": {"answer": "N'Djamena"},
         "metadata": {"annotations": {NAME: [{"label": "factual", "annotator_kind": "LLM"}]}}},
        {"input": {"question": "Capital of Mali?"}, "output": {"answer": "Bamako"},
         "metadata": {"source": "support-bot"}}])
    result = pytester.runpytest(f"--phoenix-dataset={name}", f"--phoenix-benchmark={NAME}",
                                "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert (f"--phoenix-benchmark 'hallucination': no golden case to run on {name}: 2 of its 2 "
            f"examples have no human label. A golden example holds a record with "
            f"\"annotator_kind\": \"HUMAN\"") in out, out
    assert "Traceback" not in out
    assert not judge.requests


def test_a_correction_people_disagree_on_is_left_out(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    import time

    import pandas

    from span_app import annotate

    source, golden = unique("s24-judged"), unique("s24-corrected")
    admin.create_dataset(source, [{"input": {"question": "Capital of Italy?"},
                                   "output": {"answer": "Rome"},
                                   "metadata": {"label": "x", "reference": "Rome"}}])
    judge.configure(rules=RULES)
    results = pytester.path / "judged.csv"
    pytester.runpytest(f"--phoenix-dataset={source}", f"--phoenix-benchmark={NAME}",
                       "--phoenix-reference=$.metadata.reference",
                       f"--phoenix-results={results}", "-p", "no:cacheprovider")
    (trace_id,) = list(pandas.read_csv(results)["judge_trace_id"])
    project = "pytest-phoenix-evals judges"
    span_id = None
    deadline = time.monotonic() + 60  # Phoenix stores spans a while after it answers OTLP
    while span_id is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
        response = admin.http.get(f"/v1/projects/{project}/spans",
                                  params={"trace_id": [trace_id], "limit": 100})
        if response.status_code == 200:
            span_id = next((s["context"]["span_id"] for s in response.json()["data"]
                            if s["name"] == f"Evaluator: {NAME}"), None)
    annotate(phoenix_env, span_id, NAME, "factual", identifier="alice")
    annotate(phoenix_env, span_id, NAME, "hallucinated", identifier="bob")
    added = pytester.runpytest(f"--phoenix-corrections={project}", f"--phoenix-benchmark={NAME}",
                               f"--phoenix-dataset={golden}", "-p", "no:cacheprovider")
    out = added.stdout.str() + added.stderr.str()
    assert added.ret == 0, out
    assert "1 left out: the people who annotated them disagree" in out, out
    dataset = admin.dataset_id(golden)
    examples = [] if dataset is None else \
        admin.http.get(f"/v1/datasets/{dataset}/examples").json()["data"]["examples"]
    assert trace_id not in {e["metadata"].get("judge_trace_id") for e in examples}
