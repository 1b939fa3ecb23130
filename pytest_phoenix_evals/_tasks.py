"""The conftest's answers: the ``pytest_phoenix_evals_task`` and
``pytest_phoenix_evals_evaluators`` hooks, called for a group and checked (a bad answer is a
:class:`~._core.errors.UsageProblem` naming the hook)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._core.errors import UsageProblem
from ._modes.tasks import Task, check_task, evaluators_from

if TYPE_CHECKING:
    import pytest

    from ._core.types import Group
    from ._evaluators.protocol import Evaluator


def task_from_hook(config: pytest.Config, group: Group) -> Task | None:
    """The ``pytest_phoenix_evals_task`` hook's answer for the group, checked."""
    found = config.hook.pytest_phoenix_evals_task(config=config, dataset=group.dataset_name,
                                                  group=group)
    if found is None:
        return None
    if not callable(found):
        raise UsageProblem(f"pytest_phoenix_evals_task returned {found!r} for dataset "
                           f"{group.dataset_name!r}, which is not callable")
    check_task(found, "the task from pytest_phoenix_evals_task")
    return found  # type: ignore[no-any-return]


def evaluators_from_hook(config: pytest.Config, group: Group, kind: str) -> list[Evaluator]:
    """The ``pytest_phoenix_evals_evaluators`` hook's answers for the group, checked;
    ``kind`` is what the run judges (the hook's ``kind`` argument)."""
    hook = config.hook.pytest_phoenix_evals_evaluators
    answers = hook(config=config, dataset=group.dataset_name, group=group, kind=kind)
    try:
        return evaluators_from([obj for answer in answers for obj in answer or ()],
                               "pytest_phoenix_evals_evaluators")
    except UsageProblem as exc:
        from ._core.where import defined_at

        found = [where for impl in hook.get_hookimpls()
                 if (where := defined_at(impl.function))]
        if not found:
            raise
        raise UsageProblem(f"{exc} (the hook is implemented at {', '.join(found)})") from None
