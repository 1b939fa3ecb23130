"""The example suite's wiring: the task under test and one evaluator written in code."""

from __future__ import annotations

from pytest_phoenix_evals import evaluator


def answer_question(input):
    """The task: the dataset's input is {"question": ...}; the app takes the question."""
    from qa_app import answer

    return answer(input["question"])


def pytest_phoenix_evals_task(config, dataset):
    """Every dataset in this suite is answered by the QA app."""
    return answer_question


@evaluator(threshold="<=40")
def answer_length(output):
    """Answers stay short: at most 40 characters."""
    return len(output)


def pytest_phoenix_evals_evaluators(config, dataset):
    return [answer_length]
