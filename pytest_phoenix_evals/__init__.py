"""pytest-phoenix-evals: run an Arize Phoenix dataset as a pytest suite.

The public API is imported lazily: pytest imports this package in every run where it is
installed, and an unused plugin must cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core.types import Case, CaseResult, Example, Group, OutputConfig, Score, Verdict
    from ._evaluators.code import CodeEvaluator, evaluator
    from ._evaluators.llm.catalog import (
        conversation_resolution,
        hallucination,
        phoenix_judge,
        qa_correctness,
    )
    from ._evaluators.llm.judge import LLMJudge, PromptSpec
    from ._evaluators.remote import RemoteEvaluator, remote_evaluator
    from ._evaluators.tools import ToolCallsEvaluator, tool_calls

__all__ = ["Case", "CaseResult", "CodeEvaluator", "Example", "Group", "LLMJudge", "OutputConfig",
           "PromptSpec", "RemoteEvaluator", "Score", "ToolCallsEvaluator", "Verdict",
           "__version__", "conversation_resolution", "evaluator", "hallucination",
           "phoenix_judge", "qa_correctness", "remote_evaluator", "tool_calls"]

_EXPORTS = {
    "evaluator": "._evaluators.code", "CodeEvaluator": "._evaluators.code",
    "qa_correctness": "._evaluators.llm.catalog", "hallucination": "._evaluators.llm.catalog",
    "phoenix_judge": "._evaluators.llm.catalog",
    "conversation_resolution": "._evaluators.llm.catalog",
    "LLMJudge": "._evaluators.llm.judge", "PromptSpec": "._evaluators.llm.judge",
    "remote_evaluator": "._evaluators.remote", "RemoteEvaluator": "._evaluators.remote",
    "tool_calls": "._evaluators.tools", "ToolCallsEvaluator": "._evaluators.tools",
    "Case": "._core.types", "CaseResult": "._core.types", "Example": "._core.types",
    "Group": "._core.types",
    "OutputConfig": "._core.types", "Score": "._core.types", "Verdict": "._core.types",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._core.version import plugin_version

        return plugin_version()
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
