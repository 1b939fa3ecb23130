"""Plugin behaviour, through real pytest sessions (pytester) against a real Phoenix server."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest

RUN = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "-p", "no:cacheprovider")


@pytest.fixture(autouse=True, params=["one-process", "xdist"])
def plugin_args(request: pytest.FixtureRequest, pytester: pytest.Pytester,
                monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: in one process, and with -n 2 (as syrupy does)."""
    if request.param == "xdist":
        run = pytester.runpytest

        def with_workers(*args: Any, **kwargs: Any) -> pytest.RunResult:
            return run(*args, "-n", "2", **kwargs)

        monkeypatch.setattr(pytester, "runpytest", with_workers)
    return str(request.param)


_OUTCOME = re.compile(r"^(?:\[gw\d+\] \[\s*\d+%\] (?P<a>PASSED|FAILED|ERROR) (?P<x>\S+)"
                      r"|(?P<y>\S+::\S+) (?P<b>PASSED|FAILED|ERROR)\b)")


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Node id -> PASSED/FAILED/ERROR, read off a -v run with or without xdist."""
    found = {}
    for line in result.outlines:
        if match := _OUTCOME.match(line):
            found[match["x"] or match["y"]] = match["a"] or match["b"]
    return found


def assert_items(result: pytest.RunResult, **expected: str) -> None:
    """Each pattern (fnmatch, given as a keyword's value) names one item with that outcome:
    ``assert_items(result, PASSED="*france", FAILED="*spain")``; lists allowed."""
    seen = outcomes(result)
    for outcome, patterns in expected.items():
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            hits = [n for n, o in seen.items() if fnmatch.fnmatch(n, pattern)]
            assert hits, f"no item matches {pattern!r}: {seen}"
            assert all(seen[n] == outcome for n in hits), f"{pattern!r}: {seen}"


def latest_experiment(admin: Any, dataset_id: str) -> dict[str, Any]:
    experiments = admin.experiments(dataset_id)
    assert experiments, "no experiment was recorded"
    return max(experiments, key=lambda e: e["created_at"])


def test_examples_become_cases_with_readable_ids(pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "-v")
    result.assert_outcomes(passed=2, failed=2)
    assert_items(result, PASSED=["phoenix:qa::ex*-what-is-the-capital-of-france",
                                 "phoenix:qa::ex*-what-is-2-2"],
                 FAILED=["phoenix:qa::ex*-who-wrote-hamlet",
                         "phoenix:qa::ex*-what-is-the-capital-of-spain"])
    assert len(outcomes(result)) == 4


def test_a_failing_case_explains_itself(pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "-k", "spain")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines([
        "*qa[[]ex*-what-is-the-capital-of-spain[]]*",
        "ex*-what-is-the-capital-of-spain failed: exact_match, contains",
        "dataset 'qa', example *",
        'input:     {"question": "What is the capital of Spain?"}',
        "output:    Barcelona",
        'reference: {"answer": "Madrid"}',
        "evaluator*label*score*verdict*explanation",
        "answer_exact → exact_match*false*0*FAIL*",
        "edit_distance*8*RECORDED*",
        "mentions_answer → contains*false*0*FAIL*",
        "",
        "exact_match: label must be true (best for MAXIMIZE)",
        "contains: label must be true (best for MAXIMIZE)",
    ])


def test_summary_table_and_experiment_upload(pytester: pytest.Pytester, qa_app: None,
                                             admin: Any, qa_dataset: dict[str, Any]) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-experiment-name=summary-check")
    result.stdout.fnmatch_lines([
        "*phoenix evals*",
        "qa: 4 cases, 2 passed, 2 failed",
        "annotation*evaluator*cases*pass rate*mean score*",
        "exact_match*answer_exact*4*50.0%*0.5*",
        "edit_distance*4*recorded*4*",
        "contains*mentions_answer*4*75.0%*0.75*",
        f"experiment for qa: {admin.http.base_url}/datasets/{qa_dataset['id']}/compare"
        "?experimentId=*",
    ])
    experiment = latest_experiment(admin, qa_dataset["id"])
    assert experiment["name"] == "summary-check"
    metadata = experiment["metadata"]
    assert metadata["plugin_version"] and metadata["command_line"].startswith("pytest ")
    assert "--phoenix-experiment-name=summary-check" in metadata["command_line"]
    runs = admin.runs(experiment["id"])
    assert sorted(r["output"] for r in runs) == ["4", "Barcelona", "Paris",
                                                 "William Shakespeare"]
    assert {r["repetition_number"] for r in runs} == {1}
    annotations = admin.annotations(experiment["id"])
    assert len(annotations) == 12
    names = {a["name"] for a in annotations}
    assert names == {"exact_match", "edit_distance", "contains"}
    wrong = [a for a in annotations if a["name"] == "exact_match" and a["label"] == "false"]
    assert len(wrong) == 2
    assert all(a["score"] == 0.0 and a["annotatorKind"] == "CODE" for a in wrong)


def test_threshold_makes_a_continuous_score_an_assertion(pytester: pytest.Pytester,
                                                         qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-no-upload", "-k", "hamlet",
                                "--phoenix-threshold", "edit_distance<=3")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["edit_distance*8*FAIL*",
                                 "edit_distance: score must be <= 3 (--phoenix-threshold)"])
    pytester.makeini("[pytest]\nphoenix_evals_threshold = edit_distance<=8\n")
    result = pytester.runpytest(*RUN, "--phoenix-no-upload", "-k", "hamlet")
    result.stdout.fnmatch_lines(["edit_distance*8*PASS*"])


def test_no_upload_creates_no_experiment(pytester: pytest.Pytester, qa_app: None, admin: Any,
                                         qa_dataset: dict[str, Any]) -> None:
    before = len(admin.experiments(qa_dataset["id"]))
    result = pytester.runpytest(*RUN, "--phoenix-no-upload")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["nothing uploaded (--phoenix-no-upload)"])
    assert len(admin.experiments(qa_dataset["id"])) == before


def test_split_selects_examples(pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "--phoenix-no-upload", "--phoenix-split=geo", "-v")
    result.assert_outcomes(passed=1, failed=1)
    assert_items(result, PASSED="*capital-of-france", FAILED="*capital-of-spain")


def test_last_failed_reruns_exactly_the_failed_examples(pytester: pytest.Pytester,
                                                        qa_app: None) -> None:
    args = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "--phoenix-no-upload")
    pytester.runpytest(*args).assert_outcomes(passed=2, failed=2)
    result = pytester.runpytest(*args, "--lf", "-v")
    result.assert_outcomes(failed=2, deselected=2)
    assert_items(result, FAILED=["*hamlet", "*spain"])


def test_task_binding_async_and_by_name(pytester: pytest.Pytester, phoenix_env: str,
                                        qa_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app='''
        import asyncio
        async def answer(input, expected, metadata, example):
            await asyncio.sleep(0)
            assert example["input"] == input and example.reference == expected
            return expected["answer"] if metadata["topic"] != "math" else "four"
    ''')
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "-v")
    result.assert_outcomes(passed=3, failed=1)
    assert_items(result, FAILED="*what-is-2-2")


def test_task_exception_fails_with_its_own_traceback_and_is_recorded(
        pytester: pytest.Pytester, phoenix_env: str, qa_dataset: dict[str, Any],
        admin: Any) -> None:
    pytester.makepyfile(app='''
        def helper(question):
            raise RuntimeError(f"model unavailable for {question!r}")

        def answer(input):
            return helper(input["question"])
    ''')
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "-k", "hamlet", "--phoenix-experiment-name=task-errors")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines([
        "ex*-who-wrote-hamlet: the task failed",
        "task error: RuntimeError: model unavailable for 'Who wrote Hamlet?'",
        "*def helper(question):",
        ">       raise RuntimeError*",
        "E       RuntimeError: model unavailable for 'Who wrote Hamlet?'",
        "app.py:2: RuntimeError",
    ])
    assert "_engine.py" not in result.stdout.str()
    experiment = latest_experiment(admin, qa_dataset["id"])
    assert experiment["name"] == "task-errors"
    (run,) = admin.runs(experiment["id"])
    assert run["error"] == "RuntimeError: model unavailable for 'Who wrote Hamlet?'"


def test_output_must_be_json_serialisable(pytester: pytest.Pytester, phoenix_env: str,
                                          qa_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app="def answer(input):\n    return {1, 2}\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                                "--phoenix-no-upload", "-k", "hamlet")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*task error: the task returned a set, which is not "
                                 "JSON-serialisable*"])


def test_code_evaluators_from_hook_and_their_pass_rules(pytester: pytest.Pytester,
                                                        qa_app: None, admin: Any,
                                                        qa_dataset: dict[str, Any]) -> None:
    pytester.makeconftest('''
        from pytest_phoenix_evals import evaluator

        def pytest_phoenix_evals_evaluators(config, dataset):
            async def short(output):
                return len(output) < 12

            @evaluator(threshold="<=10")
            def length(output):
                return len(output)

            @evaluator(pass_labels={"polite", "neutral"})
            def tone(output, input):
                return (0.5, "neutral", "no rude words in " + input["question"])

            def as_dict(output, reference):
                return {"score": 1.0, "label": "ok", "explanation": "always fine"}

            return [short, length, tone, as_dict]
    ''')
    result = pytester.runpytest(*RUN, "-k", "hamlet or france",
                                "--phoenix-experiment-name=code-evals")
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    result.stdout.fnmatch_lines([
        "short*False*0*FAIL*",
        "length*19*FAIL*",
        "tone*neutral*0.5*PASS*no rude words in Who wrote Hamlet?*",
        "as_dict*ok*1*RECORDED*always fine*",
    ])
    annotations = admin.annotations(latest_experiment(admin, qa_dataset["id"])["id"])
    assert {a["name"] for a in annotations} >= {"short", "length", "tone", "as_dict"}
    assert {a["label"] for a in annotations if a["name"] == "short"} == {"True", "False"}


def test_evaluator_error_fails_the_case_and_shows_the_error(pytester: pytest.Pytester,
                                                            phoenix_env: str, admin: Any,
                                                            plugin_args: str) -> None:
    name = f"bad-mapping-{plugin_args}"
    dataset_id = admin.create_dataset(name, [
        {"input": {"question": "q"}, "output": {"answer": "a"}}])
    admin.attach_builtin(dataset_id, "exact_match", "typo",
                         {"expected": "$.reference.answr", "actual": "$.output"})
    pytester.makepyfile(app="def answer(input):\n    return 'a'\n")
    pytester.syspathinsert()
    result = pytester.runpytest(f"--phoenix-dataset={name}", "--phoenix-task=app:answer",
                                "--phoenix-no-upload")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "typo → exact_match*ERROR*",
        "exact_match error: JSONPath expression '$.reference.answr' for key 'expected' did "
        "not match any values",
        "  hint: '$.reference' exists and holds an object with keys: answer",
    ])


def test_second_style_with_marker_and_fixtures(pytester: pytest.Pytester, phoenix_env: str,
                                               qa_dataset: dict[str, Any], admin: Any) -> None:
    pytester.makepyfile(test_mine='''
        import pytest

        def polite(output):
            return not output.endswith("!")

        @pytest.mark.phoenix_evals(dataset="qa", evaluators=[polite])
        def test_answers(phoenix_example, phoenix_evaluate):
            question = phoenix_example.input["question"]
            if "Hamlet" in question:
                raise ValueError("my app crashed")
            output = {"France": "Paris", "2 + 2": "4"}.get(question.split()[-1].rstrip("?"),
                                                           "Madrid!")
            result = phoenix_evaluate(output)
            assert result.passed
    ''')
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    assert_items(result, PASSED="test_mine.py::test_answers[[]ex*-what-is-the-capital-of-france[]]",
                 FAILED="test_mine.py::test_answers[[]ex*-what-is-2-2[]]")
    result.stdout.fnmatch_lines(["E*ValueError: my app crashed"])
    result.stdout.fnmatch_lines(["polite*False*0*FAIL*"])
    experiment = latest_experiment(admin, qa_dataset["id"])
    assert experiment["name"].endswith("test_answers")
    runs = admin.runs(experiment["id"])
    assert len(runs) == 4
    assert [r["error"] for r in runs if r["error"]] == ["ValueError: my app crashed"]


def test_second_style_without_a_dataset_says_how_to_name_one(pytester: pytest.Pytester,
                                                             phoenix_env: str,
                                                             plugin_args: str) -> None:
    pytester.makepyfile(test_mine="def test_x(phoenix_example):\n    pass\n")
    result = pytester.runpytest()
    # A collection error interrupts pytest; pytest-xdist reports it as a failed session.
    assert result.ret == (pytest.ExitCode.INTERRUPTED if plugin_args == "one-process"
                          else pytest.ExitCode.TESTS_FAILED)
    result.stdout.fnmatch_lines(["*test_x requests phoenix_example but names no dataset: add "
                                 "@pytest.mark.phoenix_evals(dataset='NAME') or run with "
                                 "--phoenix-dataset=NAME*"])
    assert "Traceback" not in result.stdout.str()


def test_task_from_conftest_hook(pytester: pytest.Pytester, phoenix_env: str,
                                 qa_dataset: dict[str, Any]) -> None:
    pytester.makeconftest('''
        def pytest_phoenix_evals_task(config, dataset):
            assert dataset == "qa"
            return lambda question: "Paris"
    ''')
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-no-upload")
    result.assert_outcomes(passed=1, failed=3)


def test_fixture_style_records_one_experiment_and_links_it(
        pytester: pytest.Pytester, phoenix_env: str, qa_dataset: dict[str, Any], admin: Any,
        plugin_args: str) -> None:
    """A test function of the fixture style is one group: one experiment for all its cases,
    however many xdist workers share them, and the summary links it."""
    pytester.makepyfile(test_probe='''
        import pytest

        @pytest.mark.phoenix_evals(dataset="qa")
        def test_probe(phoenix_example, phoenix_evaluate):
            phoenix_evaluate(phoenix_example.reference["answer"])
    ''')
    name = f"probe-{plugin_args}"
    before = {e["id"] for e in admin.experiments(qa_dataset["id"])}
    result = pytester.runpytest("-p", "no:cacheprovider", f"--phoenix-experiment-name={name}")
    result.assert_outcomes(passed=4)
    made = [e for e in admin.experiments(qa_dataset["id"]) if e["id"] not in before]
    assert [e["name"] for e in made] == [f"{name} test_probe"]
    assert len(admin.runs(made[0]["id"])) == 4
    result.stdout.fnmatch_lines(["qa (test_probe): 4 cases, 4 passed, 0 failed",
                                 f"experiment for qa (test_probe): *experimentId={made[0]['id']}"])


def test_the_same_dataset_twice_is_two_groups(pytester: pytest.Pytester, qa_app: None,
                                              qa_dataset: dict[str, Any], admin: Any,
                                              plugin_args: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole dataset and one split of it are two groups: distinct node ids, each case
    run once, an experiment each, every run in Phoenix."""
    pytester.makepyfile(counting_app='''
        import os
        from qa_app import answer as qa_answer

        def answer(input):
            with open(os.environ["CALLS_FILE"], "a") as calls:
                calls.write(input["question"] + "\\n")
            return qa_answer(input)
    ''')
    calls = pytester.path / "calls.txt"
    monkeypatch.setenv("CALLS_FILE", str(calls))
    name = f"twice-{plugin_args}"
    before = {e["id"] for e in admin.experiments(qa_dataset["id"])}
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-dataset=qa:geo", "-v",
                                "--phoenix-task=counting_app:answer", "-p", "no:cacheprovider",
                                f"--phoenix-experiment-name={name}")
    result.assert_outcomes(passed=3, failed=3)
    seen = outcomes(result)
    assert len(seen) == 6
    assert len([n for n in seen if n.startswith("phoenix:qa::")]) == 4
    assert len([n for n in seen if n.startswith("phoenix:qa:geo::")]) == 2
    assert len(calls.read_text().splitlines()) == 6
    made = [e for e in admin.experiments(qa_dataset["id"]) if e["id"] not in before]
    assert sorted(len(admin.runs(e["id"])) for e in made) == [2, 4]
    result.stdout.fnmatch_lines(["qa: 4 cases, 2 passed, 2 failed"])
    result.stdout.fnmatch_lines(["qa:geo: 2 cases, 1 passed, 1 failed"])
    result.stdout.fnmatch_lines(["experiment for qa: *", "experiment for qa:geo: *"])
