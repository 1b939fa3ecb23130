"""Where the user's code is: ``conftest.py:12`` for a function, and the line of it that raised,
so that an evaluator's error points at its source. Reads code objects only (no file is opened)."""

from __future__ import annotations

import functools
import inspect
import os
from types import CodeType
from typing import Any

# Our own package: an error raised in it points at no line of ours (the user cannot fix it
# there), only at the user's function.
_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _code(obj: Any) -> CodeType | None:
    """The code object of a function, a method, a partial's function, a decorated function
    (``functools.wraps``), or a callable object's ``__call__``."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    try:
        obj = inspect.unwrap(obj)
    except ValueError:  # a cycle of __wrapped__
        pass
    if inspect.ismethod(obj):
        obj = obj.__func__
    code = getattr(obj, "__code__", None)
    if code is None and not inspect.isroutine(obj) and not inspect.isclass(obj):
        code = getattr(getattr(type(obj), "__call__", None),  # noqa: B004  (its code, not a test)
                       "__code__", None)
    return code if isinstance(code, CodeType) else None


def shown(path: str) -> str:
    """A path relative to the working directory when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith(os.pardir) else relative


def defined_at(obj: Any) -> str | None:
    """``conftest.py:12``: where a callable is defined; None for what has no Python source
    of the user's (a builtin, or code of this plugin)."""
    code = _code(obj)
    if code is None or code.co_filename.startswith(_OURS) or code.co_filename.startswith("<"):
        return None
    return f"{shown(code.co_filename)}:{code.co_firstlineno}"


def raised_at(exc: BaseException, obj: Any) -> str | None:
    """The line of ``obj``'s source file where ``exc`` was raised or passed through last
    (the deepest frame in that file), else where ``obj`` is defined."""
    code = _code(obj)
    if code is None or code.co_filename.startswith(_OURS):
        return None
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == code.co_filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return defined_at(obj)
    return f"{shown(code.co_filename)}:{line}"
