"""Promoted judge prompts as project evaluators: ``--phoenix-evaluators=prompt:NAME[@TAG]`` runs
a judge prompt of Phoenix prompt management on a project's spans or traces, following the tag.

Against a real Phoenix: prompts made through its API, spans sent over OTLP (``span_app``), the
stand-in judge over real HTTP (its recorded requests tell which prompt version judged), and the
annotations read back. Each test makes a prompt and a project of its own (uuid names).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin
from span_app import emit, span_annotations, unique
from stand_in_judge import StandInJudge
from usage import assert_usage_errors

CONFIG = {"name": "verdict", "optimizationDirection": "MAXIMIZE",
          "values": [{"label": "correct", "score": 1}, {"label": "incorrect", "score": 0}]}
CONVERSATIONS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "What is the capital of Spain?", "answer": "Barcelona"},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare"},
]
RULES = [["Barcelona", "incorrect"]]


def messages(version: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"Judge version {version}: is the answer right?"},
            {"role": "user", "content": "Question: {{input}}\nAnswer: {{output}}"}]


def run(pytester: pytest.Pytester, project: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                              "-p", "no:cacheprovider", *args)


def versions_called(judge: StandInJudge) -> list[str]:
    """Which judge version each request to the stand-in judge was (from its system text)."""
    found = []
    for request in judge.requests:
        system = json.dumps(request["body"]["messages"][0])
        found += [v for v in ("one", "two") if f"Judge version {v}" in system]
    return found


def ours(url: str, project: str, ids: list[str], target: str = "span"
         ) -> dict[str, dict[str, Any]]:
    rows = [r for r in span_annotations(url, project, ids, target)
            if r["identifier"] == "pytest-phoenix-evals"]
    return {r[f"{target}_id"]: r for r in rows}


def test_a_promoted_judge_prompt_judges_spans_and_a_moved_tag_is_picked_up_by_the_next_run(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    name = unique("answer-judge")
    one = admin.create_prompt(name, messages("one"), output_configs=[CONFIG],
                              tags=["production"])["version_id"]
    two = admin.add_prompt_version(name, messages("two"), output_configs=[CONFIG])
    project = unique("promoted")
    first = emit(phoenix_env, project, CONVERSATIONS[:2])
    judge.configure(rules=RULES)

    result = run(pytester, project, f"--phoenix-evaluators=prompt:{name}@production", "-v")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert f"project {project!r}: 2 span(s) to judge" in out and "2 judge call(s)" in out
    # The version the tag names judged (not the latest), once per span.
    assert versions_called(judge) == ["one", "one"]
    written = ours(phoenix_env, project, [s.llm_id for s in first])
    assert set(written) == {s.llm_id for s in first}
    for row in written.values():
        assert row["name"] == name and row["annotator_kind"] == "LLM"
        assert row["metadata"]["prompt"] == name
        assert row["metadata"]["prompt_version_id"] == one
        assert row["metadata"]["prompt_tag"] == "production"
    assert written[first[1].llm_id]["result"]["label"] == "incorrect"
    assert written[first[0].llm_id]["result"]["label"] == "correct"

    # The benchmark's --phoenix-promote-tag moves the tag; the next scheduled run follows it.
    admin.tag_prompt_version(two, "production")
    later = emit(phoenix_env, project, CONVERSATIONS[2:])
    judge.reset()
    judge.configure(rules=RULES)
    again = run(pytester, project, f"--phoenix-evaluators=prompt:{name}@production")
    assert again.ret == 0, again.stdout.str()
    assert versions_called(judge) == ["two"]  # only the new span, by the new version
    every = ours(phoenix_env, project, [s.llm_id for s in first + later])
    assert every[later[0].llm_id]["metadata"]["prompt_version_id"] == two
    # What version one wrote stays: the annotation name is the prompt's, whatever the version.
    assert {every[s.llm_id]["metadata"]["prompt_version_id"] for s in first} == {one}


def test_a_judge_prompt_judges_whole_traces_at_its_latest_version(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        admin: PhoenixAdmin) -> None:
    name = unique("trace-judge")
    admin.create_prompt(name, messages("one"), output_configs=[CONFIG], tags=["production"])
    latest = admin.add_prompt_version(name, messages("two"), output_configs=[CONFIG])
    project = unique("promoted-traces")
    sent = emit(phoenix_env, project, CONVERSATIONS[:2])
    judge.configure(rules=RULES)

    result = run(pytester, project, "--phoenix-target=trace",
                 "--phoenix-spans=span_kind == 'CHAIN'", f"--phoenix-evaluators=prompt:{name}")
    assert result.ret == 0, result.stdout.str()
    assert versions_called(judge) == ["two", "two"]
    written = ours(phoenix_env, project, [s.trace_id for s in sent], "trace")
    assert set(written) == {s.trace_id for s in sent}
    assert written[sent[1].trace_id]["result"]["label"] == "incorrect"
    meta = written[sent[0].trace_id]["metadata"]
    assert meta["prompt_version_id"] == latest and meta["prompt"] == name
    assert "prompt_tag" not in meta  # the latest version, followed by no tag


def test_a_judge_prompt_that_cannot_judge_a_span_is_a_usage_error(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    project = unique("promoted-bad")
    emit(phoenix_env, project, CONVERSATIONS[:1])
    name = unique("judge")
    admin.create_prompt(name, messages("one"), output_configs=[CONFIG], tags=["production"])
    asks = unique("asks-question")
    admin.create_prompt(asks, [{"role": "user", "content": "{{question}} / {{output}}"}],
                        output_configs=[CONFIG])
    no_labels = unique("no-labels")
    admin.create_prompt(no_labels, messages("one"))
    head = [f"--phoenix-project={project}", "--phoenix-settle=0s"]
    assert_usage_errors(pytester, [
        ([*head, f"--phoenix-evaluators=prompt:{name}x"], f"there is no prompt '{name}x'"),
        ([*head, f"--phoenix-evaluators=prompt:{name}@staging"],
         f"prompt '{name}' has no tag or version 'staging'. Available tags: production."),
        ([*head, f"--phoenix-evaluators=prompt:{asks}"],
         "the judge prompt's template variable(s) question name nothing a span gives"),
        ([*head, f"--phoenix-evaluators=prompt:{no_labels}"],
         "a judge prompt needs exactly one function tool with a 'label' enum"),
        ([*head, "--phoenix-evaluators=prompt:"], "write prompt:NAME or prompt:NAME@TAG"),
    ])
