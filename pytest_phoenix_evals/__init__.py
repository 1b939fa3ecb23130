"""pytest-phoenix-evals: run an Arize Phoenix dataset as a pytest suite.

The public API is imported lazily: pytest imports this package in every run where it is
installed, and an unused plugin must cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._code import CodeEvaluator, evaluator
    from ._types import Case, CaseResult, Example, OutputConfig, Score, Verdict

__all__ = ["Case", "CaseResult", "CodeEvaluator", "Example", "OutputConfig", "Score", "Verdict",
           "__version__", "evaluator"]

_EXPORTS = {
    "evaluator": "._code", "CodeEvaluator": "._code",
    "Case": "._types", "CaseResult": "._types", "Example": "._types",
    "OutputConfig": "._types", "Score": "._types", "Verdict": "._types",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._session import plugin_version

        return plugin_version()
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
