"""The server's built-in evaluators, run locally with the server's semantics.

Labels, scores, errors and annotation names equal what the Phoenix server computes
(``phoenix/server/api/evaluators.py``: ``ContainsEvaluator``, ``ExactMatchEvaluator``,
``RegexEvaluator``, ``LevenshteinDistanceEvaluator``, ``JSONDistanceEvaluator``); the parity test
in ``tests/test_builtin_parity.py`` checks that against a running server. Explanations are our
own words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rapidfuzz.distance import Levenshtein

from .._core.naming import annotation_names
from .._core.types import Example, OutputConfig, Score
from .mapping import MappingError, map_inputs


@dataclass(frozen=True)
class Outcome:
    """What a built-in found, before it is mapped onto an output config."""

    matched: bool | None = None
    distance: float | None = None
    error: str | None = None
    explanation: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _contains(inputs: dict[str, Any]) -> Outcome:
    words = [word.strip() for word in inputs.get("words", "").split(",") if word.strip()]
    text = inputs.get("text", "")
    case_sensitive = inputs.get("case_sensitive", False)
    require_all = inputs.get("require_all", False)
    details = {"words": words, "text": text, "case_sensitive": case_sensitive,
               "require_all": require_all}
    if not words:
        return Outcome(matched=False, explanation="no words to look for", details=details)
    haystack = text if case_sensitive else text.lower()
    found = [w for w in words if (w if case_sensitive else w.lower()) in haystack]
    missing = [w for w in words if w not in found]
    matched = not missing if require_all else bool(found)
    rule = "all of" if require_all else "any of"
    explanation = f"looked for {rule} [{', '.join(words)}]; found [{', '.join(found)}]"
    if missing:
        explanation += f", missing [{', '.join(missing)}]"
    return Outcome(matched=matched, explanation=explanation, details=details)


def _exact_match(inputs: dict[str, Any]) -> Outcome:
    expected = inputs.get("expected", "")
    actual = inputs.get("actual", "")
    case_sensitive = inputs.get("case_sensitive", True)
    matched = expected == actual if case_sensitive else expected.lower() == actual.lower()
    how = "" if case_sensitive else " (ignoring case)"
    explanation = f"actual {'equals' if matched else 'differs from'} expected{how}"
    details = {"expected": expected, "actual": actual, "case_sensitive": case_sensitive}
    return Outcome(matched=matched, explanation=explanation, details=details)


def _regex(inputs: dict[str, Any]) -> Outcome:
    pattern = inputs.get("pattern", "")
    text = inputs.get("text", "")
    full_match = inputs.get("full_match", False)
    details = {"pattern": pattern, "text": text, "full_match": full_match}
    try:
        found = re.fullmatch(pattern, text) if full_match else re.search(pattern, text)
    except re.error as exc:
        error = f"Invalid regex pattern: {exc}"
        return Outcome(matched=False, error=error, explanation=error, details=details)
    how = "the whole text" if full_match else "somewhere in the text"
    explanation = f"/{pattern}/ {'matches' if found else 'does not match'} {how}"
    return Outcome(matched=found is not None, explanation=explanation, details=details)


def _levenshtein_distance(inputs: dict[str, Any]) -> Outcome:
    expected = inputs.get("expected", "")
    actual = inputs.get("actual", "")
    case_sensitive = inputs.get("case_sensitive", True)
    if not case_sensitive:
        expected, actual = expected.lower(), actual.lower()
    distance = Levenshtein.distance(expected, actual)
    details = {"expected": inputs.get("expected", ""), "actual": inputs.get("actual", ""),
               "case_sensitive": case_sensitive}
    return Outcome(distance=float(distance), explanation=f"{distance} edit(s) apart",
                   details=details)


def json_diff_count(expected: Any, actual: Any) -> int:
    """Count structural differences the way the server's json_distance does.

    Written by hand because no JSON-diff library counts the same way: values of different
    Python types differ by one (so 1 and 1.0 differ), a key present on one side only counts
    one, list items are compared by position and each extra item counts one.
    """
    if type(expected) is not type(actual):
        return 1
    if isinstance(expected, dict):
        return sum(
            json_diff_count(expected[key], actual[key])
            if key in expected and key in actual
            else 1
            for key in expected.keys() | actual.keys()
        )
    if isinstance(expected, list):
        shared = min(len(expected), len(actual))
        return abs(len(expected) - len(actual)) + sum(
            json_diff_count(expected[i], actual[i]) for i in range(shared)
        )
    return 0 if expected == actual else 1


def _json_distance(inputs: dict[str, Any]) -> Outcome:
    values = {"expected": inputs.get("expected", ""), "actual": inputs.get("actual", "")}
    parse_strings = inputs.get("parse_strings", True)
    details = {
        key: value if isinstance(value, str) else
        json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        for key, value in values.items()
    }
    details["parse_strings"] = parse_strings
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if parse_strings and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                error = f"Invalid JSON in '{key}': {exc}"
                hint = (f"{error}. Set parse_strings to false in the evaluator's literal "
                        f"mapping to compare '{key}' as a plain string.")
                return Outcome(error=error, explanation=hint, details=details)
        parsed[key] = value
    distance = json_diff_count(parsed["expected"], parsed["actual"])
    return Outcome(distance=float(distance), explanation=f"{distance} JSON difference(s)",
                   details=details)


BUILTINS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "contains": _contains,
    "exact_match": _exact_match,
    "regex": _regex,
    "levenshtein_distance": _levenshtein_distance,
    "json_distance": _json_distance,
}


def label_and_score(outcome: Outcome, config: OutputConfig) -> tuple[str | None, float | None]:
    """Map an outcome onto a config as the server does.

    A boolean goes through the categorical values by position (values[0] when matched,
    values[1] when not); a non-categorical config gets 1.0 or 0.0. A distance is the score.
    """
    if outcome.error is not None:
        return None, None
    if outcome.matched is None:
        return None, outcome.distance
    if config.kind == "CATEGORICAL":
        index = 0 if outcome.matched else 1
        if index < len(config.values):
            return config.values[index]
    return None, 1.0 if outcome.matched else 0.0


@dataclass
class BuiltinEvaluator:
    """A dataset evaluator made from one of the server's built-ins."""

    name: str
    builtin: str
    input_schema: dict[str, Any]
    output_configs: Sequence[OutputConfig]
    path_mapping: dict[str, str] = field(default_factory=dict)
    literal_mapping: dict[str, Any] = field(default_factory=dict)
    project_name: str | None = None
    kind: str = "BUILTIN"

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        start = datetime.now(UTC)
        hint = None
        try:
            inputs = map_inputs(
                input_schema=self.input_schema,
                path_mapping=self.path_mapping,
                literal_mapping=self.literal_mapping,
                context=context,
            )
            run = BUILTINS.get(self.builtin)
            if run is None:
                outcome = Outcome(error=(
                    f"built-in evaluator '{self.builtin}' is not known to pytest-phoenix-evals; "
                    f"known: {', '.join(BUILTINS)}"))
            else:
                outcome = run(inputs)
        except MappingError as exc:
            outcome, hint = Outcome(error=str(exc)), exc.hint
        except Exception as exc:  # the server records any failure as the annotation's error
            outcome = Outcome(error=str(exc))
        end = datetime.now(UTC)
        scores = []
        for annotation, config in zip(annotation_names(self.output_configs), self.output_configs):
            label, score = label_and_score(outcome, config)
            scores.append(Score(
                name=annotation,
                evaluator=self.name,
                annotator_kind="CODE",
                label=label,
                score=score,
                explanation=outcome.explanation,
                error=outcome.error,
                metadata=dict(outcome.details) if outcome.error is None else {},
                config=config,
                hint=hint,
                start_time=start,
                end_time=end,
            ))
        return scores
