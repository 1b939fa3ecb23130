"""The example suite's wiring: the task under test, one evaluator written in code and one LLM
judge defined in code (the dataset also carries an LLM judge attached in Phoenix)."""

from __future__ import annotations

from pytest_phoenix_evals import evaluator, qa_correctness


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


def pytest_phoenix_evals_evaluators(config, dataset, group):
    if dataset == "qa-prompt":  # (a prompt's runs: its attached evaluator reads them)
        return []
    if group.kind == "sessions":  # whole conversations: the command line's session judge
        return []
    # qa_correctness reads question/answer/reference from the example's input, the task's
    # output and the reference output ({"answer": ...} stands for its single value).
    return [answer_length, qa_correctness()]
