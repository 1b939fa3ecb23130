"""The task under test and evaluators written in code, checked before anything runs: a bad
task or evaluator is a :class:`~.._core.errors.UsageProblem` naming what to fix."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from .._evaluators.protocol import Evaluator

Task = Callable[..., Any]


def check_task(task: Task, source: str) -> None:
    from .._core.binding import TASK_PARAMETERS, BindingError, check_signature

    try:
        check_signature(task, TASK_PARAMETERS, "task")
    except BindingError as exc:
        raise UsageProblem(f"{source}: {exc}") from None


def import_task(spec: str, rootpath: Path) -> Task:
    """``module:function``, importable from the rootdir or the working directory."""
    module_name, _, attribute = spec.partition(":")
    for path in (str(rootpath), str(Path.cwd())):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageProblem(f"--phoenix-task {spec!r}: cannot import module "
                           f"{module_name!r}: {exc}") from None
    except Exception as exc:
        where = ""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
        raise UsageProblem(f"--phoenix-task {spec!r}: importing {module_name!r} raised "
                           f"{type(exc).__name__}: {exc}{where}") from None
    task = getattr(module, attribute, None)
    if task is None:
        names = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise UsageProblem(f"--phoenix-task {spec!r}: module {module_name!r} has no "
                           f"attribute {attribute!r}; its functions: "
                           f"{', '.join(names) or 'none'}")
    if not callable(task):
        raise UsageProblem(f"--phoenix-task {spec!r}: {attribute!r} is a "
                           f"{type(task).__name__}, not a callable")
    check_task(task, f"--phoenix-task {spec!r}")
    return task  # type: ignore[no-any-return]


def evaluators_from(objs: Sequence[Any], source: str) -> list[Evaluator]:
    """Evaluators from what a hook or marker supplied; UsageError naming ``source`` if not."""
    from .._core.binding import BindingError
    from .._evaluators.code import as_evaluator

    try:
        return [as_evaluator(obj, source) for obj in objs]
    except BindingError as exc:
        raise UsageProblem(str(exc)) from None
