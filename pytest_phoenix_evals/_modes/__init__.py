"""The plugin's jobs, each a mode (see :mod:`.base`): chosen once, from the settings, here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._settings import Settings
    from .base import Mode


def choose(settings: Settings) -> type[Mode]:
    """The mode the settings ask for: production judging (--phoenix-project), a judge
    benchmark (--phoenix-benchmark), a prompt as the task (--phoenix-task=prompt:... or
    prompt-file:...), else a dataset run."""
    from .._settings import is_prompt_task

    if settings.project:
        from .spans import ProductionRun

        return ProductionRun
    if settings.benchmark:
        from .benchmark import JudgeBenchmark

        return JudgeBenchmark
    if is_prompt_task(settings.task):
        from .prompt import PromptTaskRun

        return PromptTaskRun
    from .dataset import DatasetRun

    return DatasetRun
