"""Plugin behaviour, through real pytest sessions (pytester) against a real Phoenix server."""

from __future__ import annotations

from typing import Any

import pytest

RUN = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "-p", "no:cacheprovider")


def latest_experiment(admin: Any, dataset_id: str) -> dict[str, Any]:
    experiments = admin.experiments(dataset_id)
    assert experiments, "no experiment was recorded"
    return max(experiments, key=lambda e: e["created_at"])


def test_examples_become_cases_with_readable_ids(pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest(*RUN, "-v")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "phoenix:qa::ex*-what-is-the-capital-of-france PASSED*",
        "phoenix:qa::ex*-what-is-2-2 PASSED*",
        "phoenix:qa::ex*-who-wrote-hamlet FAILED*",
        "phoenix:qa::ex*-what-is-the-capital-of-spain FAILED*",
    ])


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
    result.stdout.fnmatch_lines(["edit_distance*8*FAIL*", "edit_distance: score must be <= 3 (--phoenix-threshold)"])
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
    result.stdout.fnmatch_lines(["*capital-of-france PASSED*", "*capital-of-spain FAILED*"])


def test_last_failed_reruns_exactly_the_failed_examples(pytester: pytest.Pytester,
                                                        qa_app: None) -> None:
    args = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "--phoenix-no-upload")
    pytester.runpytest(*args).assert_outcomes(passed=2, failed=2)
    result = pytester.runpytest(*args, "--lf", "-v")
    result.assert_outcomes(failed=2, deselected=2)
    result.stdout.fnmatch_lines(["*hamlet FAILED*", "*spain FAILED*"])


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
    result.stdout.fnmatch_lines(["*what-is-2-2 FAILED*"])


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
                                                            phoenix_env: str, admin: Any) -> None:
    dataset_id = admin.create_dataset("bad-mapping", [
        {"input": {"question": "q"}, "output": {"answer": "a"}}])
    admin.attach_builtin(dataset_id, "exact_match", "typo",
                         {"expected": "$.reference.answr", "actual": "$.output"})
    pytester.makepyfile(app="def answer(input):\n    return 'a'\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--phoenix-dataset=bad-mapping", "--phoenix-task=app:answer",
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
    result.stdout.fnmatch_lines([
        "test_mine.py::test_answers[[]ex*-what-is-the-capital-of-france[]] PASSED*",
        "test_mine.py::test_answers[[]ex*-what-is-2-2[]] FAILED*",
    ])
    result.stdout.fnmatch_lines(["E*ValueError: my app crashed"])
    result.stdout.fnmatch_lines(["polite*False*0*FAIL*"])
    experiment = latest_experiment(admin, qa_dataset["id"])
    assert experiment["name"].endswith("test_answers")
    runs = admin.runs(experiment["id"])
    assert len(runs) == 4
    assert [r["error"] for r in runs if r["error"]] == ["ValueError: my app crashed"]


def test_second_style_without_a_dataset_says_how_to_name_one(pytester: pytest.Pytester,
                                                             phoenix_env: str) -> None:
    pytester.makepyfile(test_mine="def test_x(phoenix_example):\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
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
