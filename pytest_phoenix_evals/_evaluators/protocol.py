"""The one protocol every evaluator implements, wherever it runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._core.types import Example, OutputConfig, Score, Verdict


class Evaluator(Protocol):
    """Something that turns an evaluation context into scores.

    ``name`` is how the user knows it (the dataset evaluator's or the function's name);
    ``kind`` is ``BUILTIN``, ``CODE``, ``LLM`` or ``REMOTE``; ``output_configs`` are the
    annotation configs it produces (empty for code evaluators that declare none). ``context``
    is exactly the server's: ``{"input", "reference", "output", "metadata"}``; ``example`` is the
    case's example (code evaluators may bind it by name).
    """

    name: str
    kind: str
    output_configs: Sequence[OutputConfig]

    async def evaluate(self, context: dict[str, Any], example: Example) -> list[Score]: ...


# Capabilities some evaluators have, found with isinstance (runtime_checkable) where the
# session equips them or the runner decides verdicts.


@runtime_checkable
class DeclaresVerdict(Protocol):
    """An evaluator that decides its own pass rule (a code evaluator declaring one)."""

    def verdict(self, score: Score) -> Verdict | None: ...


@runtime_checkable
class NeedsJudges(Protocol):
    """An LLM judge: the session hands it the judge clients and, when uploading, the tracing
    of its calls (into ``project_name``, else the judges' own project)."""

    judges: Any
    tracing: Any
    project_name: str | None


@runtime_checkable
class LoadsFromPhoenix(Protocol):
    """An evaluator that reads what it needs from the server first (a judge template)."""

    def load(self, gateway: Any) -> None: ...


@runtime_checkable
class Closes(Protocol):
    """An evaluator holding connections, closed on the engine's loop at the end."""

    async def aclose(self) -> None: ...


def declared_verdict(evaluator: object) -> Callable[[Score], Verdict | None] | None:
    """The evaluator's own pass rule, if it declares one."""
    rule = getattr(evaluator, "verdict", None)
    return rule if callable(rule) else None
