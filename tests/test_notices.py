"""Notices that keep a run honest: what a run asserted, what waits for the settle, where an
evaluator broke and under which name its annotation is kept (real Phoenix, real pytest)."""

from __future__ import annotations

import uuid
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
