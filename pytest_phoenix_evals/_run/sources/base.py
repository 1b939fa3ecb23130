"""What a source is: groups of cases, their evaluators and (optionally) the task."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..._core.types import Case, Group
from ..._evaluators.protocol import Evaluator

Task = Callable[..., Any]


class Source(Protocol):
    def groups(self) -> Sequence[Group]:
        """Every group this source offers, in order."""
        ...

    def cases(self, group: Group) -> Sequence[Case]:
        """The group's cases (one per example, before repetitions)."""
        ...

    def evaluators(self, group: Group) -> Sequence[Evaluator]:
        """What judges the group's cases."""
        ...

    def task(self, group: Group) -> Task | None:
        """What produces a case's output; None when the case already has it (a span) or
        nothing supplies one."""
        ...
