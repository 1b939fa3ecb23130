"""Notices that keep a run honest: what a run asserted, what waits for the settle, where an
evaluator broke and under which name its annotation is kept (real Phoenix, real pytest)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

NOOP = ("-p", "no:cacheprovider")
WORKERS = pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "xdist"])
EXAMPLES = [{"input": {"q": "capital of France?"}, "output": {"answer": "Paris"}, "metadata": {}},
            {"input": {"q": "2 + 2?"}, "output": {"answer": "4"}, "metadata": {}}]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- item 7: a dataset with no evaluator asserts nothing, and says so ------------------------


@WORKERS
def test_a_dataset_with_no_evaluator_says_it_asserts_nothing(
        pytester: pytest.Pytester, phoenix_env: str, admin: Any, workers: tuple[str, ...],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bare, checked = unique("bare"), unique("checked")
    admin.create_dataset(bare, EXAMPLES)
    checked_id = admin.create_dataset(checked, EXAMPLES)
    admin.attach_builtin(checked_id, "exact_match", "answer_exact",
                         {"expected": "$.reference.answer", "actual": "$.output"})
    pytester.makepyfile(app="def answer(input):\n    return 'wrong'\n")
    pytester.syspathinsert()
    step = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest(f"--phoenix-dataset={bare}", f"--phoenix-dataset={checked}",
                                "--phoenix-task=app:answer", "--phoenix-summary-md=out.md",
                                *workers, *NOOP)
    result.assert_outcomes(passed=2, failed=2)
    # At collection, for the bare dataset only.
    result.stdout.fnmatch_lines([f"phoenix-evals: {bare}: NO EVALUATOR: none is attached to the "
                                 f"dataset in Phoenix and none comes from code*a case fails "
                                 f"only if its task raises, nothing else is asserted"])
    assert not [line for line in result.outlines if f"{checked}: NO EVALUATOR" in line]
    # In the summary, under the bare dataset's line and not under the other's.
    result.stdout.fnmatch_lines([f"{bare}: 2 cases, 2 passed, 0 failed",
                                 "  NOTHING ASSERTED: no evaluator ran: its 2 passed cases only "
                                 "show that the task did not raise"], consecutive=True)
    at = result.outlines.index(f"{checked}: 2 cases, 0 passed, 2 failed")
    assert "NOTHING ASSERTED" not in result.outlines[at + 1]
    # In the markdown summary and the step summary, in the verdict line.
    for path in (pytester.path / "out.md", step):
        text = path.read_text()
        assert (f"**FAILED**: 4 cases, 2 failed; **nothing asserted** on {bare} "
                f"(no evaluator ran)") in text, text
        assert f"on {checked}" not in text


def test_evaluators_that_only_record_are_said_to_assert_nothing(
        pytester: pytest.Pytester, phoenix_env: str, admin: Any) -> None:
    name = unique("recorded")
    admin.create_dataset(name, EXAMPLES)
    pytester.makepyfile(app="def answer(input):\n    return 'wrong'\n")
    pytester.makeconftest("""
        def pytest_phoenix_evals_evaluators(config, dataset):
            def length(output):
                return len(output)
            return [length]
    """)
    pytester.syspathinsert()
    result = pytester.runpytest(f"--phoenix-dataset={name}", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", *NOOP)
    result.assert_outcomes(passed=2)
    assert not [line for line in result.outlines if "NO EVALUATOR" in line]
    result.stdout.fnmatch_lines([f"{name}: 2 cases, 2 passed, 0 failed",
                                 "  NOTHING ASSERTED: its evaluators only recorded scores, none "
                                 "has a pass rule: its 2 passed cases only show that the task "
                                 "did not raise"], consecutive=True)


# --- item 8: spans newer than the settle are counted, with when they can be judged ----------

SPAN_CONFTEST = """
from pytest_phoenix_evals import evaluator

@evaluator(name="not_barcelona")
def not_barcelona(output):
    return output != "Barcelona"

def pytest_phoenix_evals_evaluators(config, dataset):
    return [not_barcelona]
"""

_READY = re.compile(r"they can be judged from (?:(\d{4}-\d\d-\d\d) )?(\d\d:\d\d:\d\d) UTC "
                    r"\(in (\d+) (s|min)\)")


def _ready_at(line: str) -> datetime:
    match = _READY.search(line)
    assert match, line
    day = match[1] or datetime.now(UTC).date().isoformat()
    return datetime.fromisoformat(f"{day}T{match[2]}+00:00")


def test_spans_newer_than_the_settle_are_counted_and_judged_once_old_enough(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    from span_app import emit

    project = unique("settle")
    pytester.makeconftest(SPAN_CONFTEST)
    before = datetime.now(UTC).replace(microsecond=0)
    emit(phoenix_env, project, [{"question": "Capital of France?", "answer": "Paris"},
                                {"question": "Capital of Spain?", "answer": "Barcelona"},
                                {"question": "Who wrote Hamlet?", "answer": "Shakespeare"}])
    after = datetime.now(UTC)

    fresh = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=10m", *NOOP)
    assert fresh.ret == 0, fresh.stdout.str()  # nothing to judge yet is not a failure
    fresh.stdout.fnmatch_lines([
        f"phoenix-evals: project {project!r}: 0 span(s) to judge, from the first span to *",
        "phoenix-evals: 3 span(s) newer than --phoenix-settle=600s wait; they can be judged "
        "from ??:??:?? UTC (in * min)"])
    line = next(line for line in fresh.outlines if "newer than --phoenix-settle" in line)
    # The newest span is old enough 600 s after it started (it started while it was sent).
    assert before + timedelta(seconds=600) <= _ready_at(line) <= after + timedelta(seconds=601)

    traces = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=10m",
                                "--phoenix-target=trace", "--phoenix-spans=name == 'qa'",
                                "--collect-only", *NOOP)
    traces.stdout.fnmatch_lines(["phoenix-evals: 3 trace(s) newer than --phoenix-settle=600s "
                                 "wait; they can be judged from * UTC (in * min)"])

    judged = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s", *NOOP)
    judged.assert_outcomes(passed=2, failed=1)
    judged.stdout.fnmatch_lines([f"phoenix-evals: project {project!r}: 3 span(s) to judge*"])
    assert "newer than --phoenix-settle" not in judged.stdout.str()


# --- item 9: the evaluators hook is told the kind; errors point at the evaluator's line; the
# --- duplicate-name notice names what Phoenix holds ------------------------------------------

KIND_CONFTEST = """
import json, pathlib
from pytest_phoenix_evals import evaluator

@evaluator
def matches_reference(output, expected):
    return output == expected["answer"]

@evaluator(name="short")
def short(output):
    return len(output) < 40

def pytest_phoenix_evals_evaluators(config, dataset, kind):
    with pathlib.Path(__file__).with_name("kinds.jsonl").open("a") as seen:
        seen.write(json.dumps([dataset, kind]) + "\\n")
    if kind == "dataset":
        return [matches_reference, short]
    return [short]
"""


def _kinds(pytester: pytest.Pytester) -> list[list[str]]:
    path = pytester.path / "kinds.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_evaluators_hook_is_told_the_kind_and_keeps_dataset_evaluators_to_datasets(
        pytester: pytest.Pytester, phoenix_env: str, admin: Any) -> None:
    from span_app import emit

    name, project = unique("kinds"), unique("kinds-spans")
    admin.create_dataset(name, EXAMPLES)
    pytester.makeconftest(KIND_CONFTEST)
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    pytester.syspathinsert()
    on_dataset = pytester.runpytest(f"--phoenix-dataset={name}", "--phoenix-task=app:answer",
                                    "--phoenix-no-upload", *NOOP)
    on_dataset.assert_outcomes(passed=1, failed=1)  # "Paris" is not "4"
    assert [name, "dataset"] in _kinds(pytester)
    assert "matches_reference" in on_dataset.stdout.str()

    (pytester.path / "kinds.jsonl").unlink()
    emit(phoenix_env, project, [{"question": "Capital of France?", "answer": "Paris"}])
    on_spans = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s", *NOOP)
    on_spans.assert_outcomes(passed=1)
    assert _kinds(pytester) == [[project, "spans"]]
    text = on_spans.stdout.str()
    assert "matches_reference" not in text and "evaluator error" not in text, text


REFERENCE_CONFTEST = """
from pytest_phoenix_evals import evaluator

@evaluator
def matches_reference(output, expected):
    answer = expected["answer"]
    return output == answer

def pytest_phoenix_evals_evaluators(config, dataset):
    return [matches_reference]
"""


def _line_of(pytester: pytest.Pytester, text: str) -> int:
    lines = (pytester.path / "conftest.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_dataset_evaluator_on_spans_is_said_and_its_error_points_at_its_line(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    from span_app import emit

    project = unique("reference-spans")
    pytester.makeconftest(REFERENCE_CONFTEST)
    defined = _line_of(pytester, "@evaluator")  # a decorated function starts there
    raised = _line_of(pytester, 'answer = expected["answer"]')
    emit(phoenix_env, project, [{"question": "Capital of France?", "answer": "Paris"},
                                {"question": "Capital of Spain?", "answer": "Madrid"}])
    result = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s", *NOOP)
    result.assert_outcomes(failed=2)
    # Said at collection, with where the evaluator is defined and the way out.
    result.stdout.fnmatch_lines([
        f"phoenix-evals: {project}: evaluator 'matches_reference' of the "
        f"pytest_phoenix_evals_evaluators hook (conftest.py:{defined}) reads "
        f"expected/reference, which spans do not have (no --phoenix-reference)*return it for "
        f"kind == 'dataset' only (the hook's kind argument)"])
    # Each failure, and the summary, name the line that raised.
    error = (f"TypeError: string indices must be integers* (evaluator matches_reference, "
             f"conftest.py:{raised})")
    result.stdout.fnmatch_lines([f"*{error}*"])
    result.stdout.fnmatch_lines([
        "2 case(s) had an evaluator error and got no annotation from it: they are judged again "
        "by the next run",
        f"  matches_reference: 2 error(s), the first: {error}"], consecutive=True)


def test_an_unusable_evaluator_points_at_its_source(
        pytester: pytest.Pytester, phoenix_env: str, admin: Any) -> None:
    name = unique("unusable")
    admin.create_dataset(name, EXAMPLES[:1])
    pytester.makeconftest("""
        def odd_result(output):
            return object()

        def pytest_phoenix_evals_evaluators(config, dataset):
            return [odd_result]
    """)
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    pytester.syspathinsert()
    result = pytester.runpytest(f"--phoenix-dataset={name}", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", *NOOP)
    result.assert_outcomes(failed=1)
    defined = _line_of(pytester, "def odd_result")
    result.stdout.fnmatch_lines([f"*TypeError: unsupported evaluation result object*"
                                 f"(evaluator odd_result, conftest.py:{defined})*"])

    # An answer that is no evaluator at all: the hook's own line.
    pytester.makeconftest("""
        def pytest_phoenix_evals_evaluators(config, dataset):
            return [3]
    """)
    hook = _line_of(pytester, "def pytest_phoenix_evals_evaluators")
    bad = pytester.runpytest(f"--phoenix-dataset={name}", "--phoenix-task=app:answer",
                             "--phoenix-no-upload", *NOOP)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines([f"*pytest_phoenix_evals_evaluators supplied 3, which is neither a "
                              f"callable nor an evaluator (the hook is implemented at "
                              f"conftest.py:{hook})*"])


def test_two_evaluators_of_one_name_are_kept_under_the_names_the_notice_gives(
        pytester: pytest.Pytester, phoenix_env: str, admin: Any) -> None:
    name = unique("twins")
    dataset_id = admin.create_dataset(name, EXAMPLES[:1])
    pytester.makeconftest("""
        from pytest_phoenix_evals import evaluator

        @evaluator(name="qa_check")
        def by_equality(output):
            return output == "Paris"

        @evaluator(name="qa_check")
        def by_length(output):
            return len(output) > 100

        def pytest_phoenix_evals_evaluators(config, dataset):
            return [by_equality, by_length]
    """)
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    pytester.syspathinsert()
    result = pytester.runpytest(f"--phoenix-dataset={name}", "--phoenix-task=app:answer",
                                *NOOP)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"phoenix-evals: {name}: annotation 'qa_check' is given by 2 evaluators named qa_check: "
        f"Phoenix keeps one annotation per name, so the first is kept as 'qa_check' and the "
        f"others as 'qa_check (qa_check)'"])
    experiments = admin.experiments(dataset_id)
    assert len(experiments) == 1
    held = {a["name"]: a["label"] for a in admin.annotations(experiments[0]["id"])}
    assert held == {"qa_check": "True", "qa_check (qa_check)": "False"}, held


def test_on_spans_two_evaluators_of_one_name_write_what_the_notice_names(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    from span_app import emit, span_annotations

    project = unique("twins-spans")
    pytester.makeconftest("""
        from pytest_phoenix_evals import evaluator

        @evaluator(name="qa_check")
        def by_equality(output):
            return output == "Paris"

        @evaluator(name="qa_check")
        def by_length(output):
            return len(output) > 100

        def pytest_phoenix_evals_evaluators(config, dataset):
            return [by_equality, by_length]
    """)
    (sent,) = emit(phoenix_env, project, [{"question": "Capital of France?", "answer": "Paris"}])
    result = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s", *NOOP)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"phoenix-evals: {project}: annotation 'qa_check' is given by 2 evaluators named "
        f"qa_check: Phoenix keeps one annotation per name, so the first is kept as 'qa_check' "
        f"and the others as 'qa_check (qa_check)'"])
    held = {r["name"]: r["result"]["label"]
            for r in span_annotations(phoenix_env, project, [sent.llm_id])
            if r["identifier"] == "pytest-phoenix-evals"}
    assert held == {"qa_check": "True", "qa_check (qa_check)": "False"}, held
