"""Hooks that a ``conftest.py`` or another plugin implements to extend pytest-phoenix-evals.

Added to pytest's plugin manager in ``pytest_addhooks``; pytest only collects implementations
whose names start with ``pytest_``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._core.types import CaseResult, Group
    from ._run.sinks.base import UploadReport


@pytest.hookspec(firstresult=True)
def pytest_phoenix_evals_task(config: pytest.Config, dataset: str, group: Group) -> Any:
    """Supply the task (the application under test) for ``dataset``.

    ``dataset`` is the dataset's name; ``group`` says which selection of it (version,
    splits, the spec as given); an implementation may take either or both.

    Called at collection time when a dataset is run as a suite and ``--phoenix-task`` is not
    given. Return a callable (sync or async), bound to the example by parameter name like
    Phoenix's ``run_experiment`` (``input``, ``expected``/``reference``, ``metadata``,
    ``example``; a single parameter of another name gets the input), or None to pass.
    The first non-None answer wins.

    Example, in ``conftest.py``::

        def pytest_phoenix_evals_task(config, dataset):
            from my_app.qa import answer
            return answer

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_phoenix_evals_evaluators(config: pytest.Config, dataset: str, group: Group) -> Any:
    """Add evaluators defined in code for ``dataset`` (``group``: as for the task hook).

    With ``--phoenix-project``, ``dataset`` is the project's name and ``group.kind`` is
    ``"spans"`` (or ``"traces"``, ``"sessions"``): the evaluators judge the project's spans.

    Return a list of callables (sync or async; bound by parameter name: ``input``, ``output``,
    ``expected``/``reference``, ``metadata``, ``example``), evaluators made with
    :func:`pytest_phoenix_evals.evaluator`, or None. Every implementation's answer is used, in
    addition to the evaluators attached to the dataset in Phoenix.

    Example, in ``conftest.py``::

        from pytest_phoenix_evals import evaluator

        def pytest_phoenix_evals_evaluators(config, dataset):
            @evaluator(threshold="<=200")
            def answer_length(output):
                return len(output)
            return [answer_length]

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_phoenix_evals_case_result(config: pytest.Config, result: CaseResult) -> None:
    """Observe a finished case (task output, scores and verdicts).

    Called in the pytest process that ran the case, once per run (so N times for a case with
    ``--phoenix-repetitions=N``), after the result was handed to the upload. ``result.case.group``
    says what it belongs to. Must not modify ``result``.

    Example, in ``conftest.py``::

        def pytest_phoenix_evals_case_result(config, result):
            if not result.passed:
                print("failed:", result.case.case_id)

    .. versionadded:: 0.1
    """


@pytest.hookspec
def pytest_phoenix_evals_session_finish(config: pytest.Config, results: list[CaseResult],
                                        report: UploadReport | None) -> None:
    """Observe the end of a session that ran cases: every result, and what reached Phoenix.

    Called once, in the controller under pytest-xdist (with every worker's results), after the
    uploads were waited for and before the gates decide the exit status. ``report`` is None
    with ``--phoenix-no-upload``; ``report.complete`` says whether every result reached Phoenix.

    .. versionadded:: 0.2
    """
