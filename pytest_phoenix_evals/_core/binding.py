"""Binding a task or evaluator to an example by parameter name, as Phoenix's ``run_experiment``
does (arize-phoenix-client ``_bind_task_signature`` / ``_bind_evaluator_signature``)."""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .types import Example
from .verdict import callable_name

TASK_PARAMETERS = ("input", "expected", "reference", "metadata", "example")
EVALUATOR_PARAMETERS = ("input", "output", "expected", "reference", "metadata", "example",
                        "trace_id")


class BindingError(TypeError):
    """A callable's parameters cannot be bound; the message names the callable and the fix."""


def check_signature(fn: Callable[..., Any], allowed: Sequence[str], what: str) -> None:
    """Reject a signature that ``bind`` could not fill, at collection time."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError) as exc:
        raise BindingError(
            f"{what} {callable_name(fn)!r} has no inspectable signature: {exc}") from None
    if not params:
        raise BindingError(f"{what} {callable_name(fn)!r} takes no parameters; give it one "
                           f"of: {', '.join(allowed)}")
    if len(params) == 1:
        return
    unknown = [
        name for name, param in params.items()
        if name not in allowed and param.default is inspect.Parameter.empty
        and param.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    if unknown:
        raise BindingError(
            f"{what} {callable_name(fn)!r} has parameter(s) {', '.join(unknown)} that cannot "
            f"be filled; with several parameters, their names must be among: "
            f"{', '.join(allowed)}")


def bind(fn: Callable[..., Any], values: Mapping[str, Any], single: str) -> inspect.BoundArguments:
    """Bind by parameter name; a lone parameter of another name gets ``values[single]``."""
    sig = inspect.signature(fn)
    params = sig.parameters
    if len(params) == 1:
        (name,) = params
        return sig.bind(copy.deepcopy(values[name] if name in values else values[single]))
    return sig.bind_partial(**{
        name: copy.deepcopy(value) if name != "example" else value
        for name, value in values.items() if name in params
    })


def task_arguments(example: Example) -> dict[str, Any]:
    return {"input": example.input, "expected": example.reference,
            "reference": example.reference, "metadata": example.metadata, "example": example}


async def call(fn: Callable[..., Any], arguments: inspect.BoundArguments,
               clock: list[datetime] | None = None) -> Any:
    """Call sync callables in a worker thread and await async ones.

    ``clock``, when given, receives when the call began and ended. For a sync callable both
    are read in its own thread, so that the event loop being busy elsewhere (another case, an
    upload) never counts as the callable's time."""
    __tracebackhide__ = True
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)):  # noqa: B004  (an object whose __call__ is async)
        if clock is not None:
            clock.append(datetime.now(UTC))
        try:
            return await fn(*arguments.args, **arguments.kwargs)
        finally:
            if clock is not None:
                clock.append(datetime.now(UTC))

    def timed() -> Any:
        __tracebackhide__ = True
        if clock is not None:
            clock.append(datetime.now(UTC))
        try:
            return fn(*arguments.args, **arguments.kwargs)
        finally:
            if clock is not None:
                clock.append(datetime.now(UTC))

    result = await asyncio.to_thread(timed)
    if inspect.isawaitable(result):
        result = await result
        if clock is not None:
            clock[-1] = datetime.now(UTC)
    return result
