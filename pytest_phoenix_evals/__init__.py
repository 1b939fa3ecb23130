"""pytest-phoenix-evals: run an Arize Phoenix dataset as a pytest suite.

The public API is imported lazily: pytest imports this package in every run where it is
installed, and an unused plugin must cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._catalog import hallucination, phoenix_judge, qa_correctness
    from ._code import CodeEvaluator, evaluator
    from ._llm import LLMJudge, PromptSpec
    from ._remote import RemoteEvaluator, remote_evaluator
    from ._types import Case, CaseResult, Example, OutputConfig, Score, Verdict

__all__ = ["Case", "CaseResult", "CodeEvaluator", "Example", "LLMJudge", "OutputConfig",
           "PromptSpec", "RemoteEvaluator", "Score", "Verdict", "__version__", "evaluator",
           "hallucination", "phoenix_judge", "qa_correctness", "remote_evaluator"]

_EXPORTS = {
    "evaluator": "._code", "CodeEvaluator": "._code",
    "qa_correctness": "._catalog", "hallucination": "._catalog", "phoenix_judge": "._catalog",
    "LLMJudge": "._llm", "PromptSpec": "._llm",
    "remote_evaluator": "._remote", "RemoteEvaluator": "._remote",
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
