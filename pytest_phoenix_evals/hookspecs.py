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
def pytest_phoenix_evals_evaluators(config: pytest.Config, dataset: str, group: Group,
                                    kind: str) -> Any:
    """Add evaluators defined in code for ``dataset`` (``group``: as for the task hook).

    ``kind`` says what the evaluators will judge, so that one conftest can serve every mode:

    - ``"dataset"``: a dataset's examples run through the task (``--phoenix-dataset``, a
      prompt task, a test of the fixture style); each case has the example's reference
      (``expected``);
    - ``"benchmark"``: the golden set of ``--phoenix-benchmark``; only a judge named like the
      one under test is used, the others are said not to run;
    - ``"spans"``, ``"traces"``, ``"sessions"``: a project's production data
      (``--phoenix-project``); ``dataset`` is the project's name, and there is no reference
      (``expected`` is empty) unless ``--phoenix-reference`` maps one. An evaluator that needs a
      reference errors on every span, and an errored evaluator writes nothing, so the span
      is judged again by every run: return such evaluators for ``"dataset"`` only.

    An implementation may take any of the arguments (``kind`` was added in 0.2; one that
    does not take it is called as before).

    Return a list of callables (sync or async; bound by parameter name: ``input``, ``output``,
    ``expected``/``reference``, ``metadata``, ``example``), evaluators made with
    :func:`pytest_phoenix_evals.evaluator`, or None. Every implementation's answer is used, in
    addition to the evaluators attached to the dataset in Phoenix.

    Example, in ``conftest.py``::

        from pytest_phoenix_evals import evaluator

        @evaluator(threshold="<=200")
        def answer_length(output):
            return len(output)

        @evaluator
        def matches_reference(output, expected):
            return output == expected["answer"]

        def pytest_phoenix_evals_evaluators(config, dataset, kind):
            if kind == "dataset":  # a reference to compare with
                return [answer_length, matches_reference]
            return [answer_length]  # spans, traces, sessions: no reference

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       The ``kind`` argument.
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
