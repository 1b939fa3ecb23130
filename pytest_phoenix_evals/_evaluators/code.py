"""Tasks and evaluators written as Python callables, bound like Phoenix's ``run_experiment``.

Binding and result conversion follow arize-phoenix-client
(``resources/experiments/__init__.py``: ``_bind_task_signature``;
``resources/experiments/evaluators.py``: ``_bind_evaluator_signature``, ``_default_eval_scorer``)
so that a task or evaluator written for ``run_experiment`` works here unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from .._core.binding import (
    EVALUATOR_PARAMETERS,
    BindingError,
    bind,
    call,
    check_signature,
)
from .._core.types import Example, OutputConfig, Score, Verdict
from .._core.verdict import Threshold, callable_name, declared, parse_threshold
from .protocol import Evaluator

_KEYS = ("score", "label", "explanation")  # what an evaluation dict must have one of
_OPTIONAL = ("name", "metadata")


def _plain(value: Any) -> Any:
    """A numpy scalar (``np.float32``, ``np.int64``, ``np.bool_``) as the Python value it
    holds, found without importing numpy; anything else as it is."""
    if (type(value).__module__ == "numpy" and getattr(value, "shape", None) == ()
            and callable(getattr(value, "item", None))):
        return value.item()
    return value


def _number(value: Any) -> float | None:
    """A score as a float: a bool, an int, a float, a numpy number, any ``numbers.Real`` or a
    ``Decimal``; None for anything else (a complex number too)."""
    import numbers

    value = _plain(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex):
        try:
            return float(value)  # type: ignore[arg-type]  # a Decimal
        except (TypeError, ValueError):
            return None
    return None


def _is_score_object(value: Any) -> bool:
    return not isinstance(value, (dict, str, bytes, int, float, tuple, list)) and any(
        hasattr(value, attr) for attr in ("score", "label"))


def _from_score_object(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if (score := getattr(value, "score", None)) is not None:
        result["score"] = float(score)
    for attr in ("label", "explanation", "name", "metadata"):
        if item := getattr(value, attr, None):
            result[attr] = item
    return result


def _from_dict(value: dict[Any, Any]) -> dict[str, Any]:
    """An evaluation dict, its score a float. A dict with none of score, label and explanation
    is a mistake (a typo, or the wrong dict), not an empty annotation."""
    if not any(key in value for key in _KEYS):
        had = ("keys " + ", ".join(repr(key) for key in value)) if value else "no keys"
        raise ValueError(f"the result dict has {had}; it needs one of "
                         f"{', '.join(map(repr, _KEYS))} (and may have "
                         f"{' and '.join(map(repr, _OPTIONAL))})")
    result = dict(value)
    for key in ("label", "explanation", "name"):
        if (text := result.get(key)) is not None and not isinstance(text, str):
            raise TypeError(f"the result dict's {key!r} is {type(text).__name__} {text!r}, "
                            f"not a string")
    if (metadata := result.get("metadata")) is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"the result dict's 'metadata' is {type(metadata).__name__}, not a "
                        f"dict")
    if (score := result.get("score")) is not None:
        result["score"] = _number(score)
        if result["score"] is None:
            raise TypeError(f"the result dict's 'score' is {type(score).__name__} {score!r}, "
                            f"not a number")
    return result


def _check_finite(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for item in results:
        score = item.get("score")
        if score is not None and not math.isfinite(score):
            name = f" of {item['name']!r}" if item.get("name") else ""
            raise ValueError(f"the score{name} is {score}, which is not a finite number: "
                             f"Phoenix cannot store it")
    return results


def normalize_result(result: Any) -> list[dict[str, Any]]:
    """What an evaluator returned, as a list of {score, label, explanation, name, metadata}.

    Accepts what run_experiment accepts: a bool (score 1.0/0.0, label "True"/"False"), a number
    (score), a string (label), a tuple (score, label[, explanation]), a dict with those keys, a
    score object with those attributes, or a list of dicts or score objects. numpy scalars
    count as the bool or number they hold. Refused (ValueError or TypeError, saying why): a
    dict with none of score, label and explanation, and a score that is NaN or infinite.
    """
    return _check_finite(_normalize(_plain(result)))


def _normalize(result: Any) -> list[dict[str, Any]]:
    if _is_score_object(result):
        return [_from_score_object(result)]
    if isinstance(result, list) and result and all(_is_score_object(r) for r in result):
        return [_from_score_object(r) for r in result]
    if isinstance(result, dict):
        return [_from_dict(result)]
    if isinstance(result, list) and all(isinstance(r, dict) for r in result):
        return [_from_dict(r) for r in result]
    if isinstance(result, bool):
        return [{"score": float(result), "label": str(result)}]
    if (score := _number(result)) is not None:
        return [{"score": score}]
    if isinstance(result, str):
        return [{"label": result}]
    if isinstance(result, tuple) and len(result) >= 2:
        converted: dict[str, Any] = {}
        if result[0] is not None:
            converted["score"] = float(result[0])
        if result[1] is not None:
            converted["label"] = str(result[1])
        if len(result) > 2 and result[2] is not None:
            converted["explanation"] = str(result[2])
        return [converted]
    raise TypeError(
        f"unsupported evaluation result {type(result).__name__}: return a bool, a real number, "
        f"a label string, a (score, label[, explanation]) tuple, a dict with score/label/"
        f"explanation, or a list of such dicts")


@dataclass
class CodeEvaluator:
    """A Python callable used as an evaluator."""

    fn: Callable[..., Any]
    name: str
    threshold: Threshold | None = None
    pass_labels: frozenset[str] | None = None
    passes: Callable[[Score], bool] | None = None
    output_configs: Sequence[OutputConfig] = field(default_factory=tuple)
    kind: str = "CODE"

    def verdict(self, score: Score) -> Verdict | None:
        """The pass rule this evaluator declared, or None to use the default rules."""
        return declared(score, self.threshold, self.pass_labels, self.passes)

    async def evaluate(self, context: dict[str, Any], example: Example) -> list[Score]:
        start = datetime.now(UTC)
        values = {"input": context["input"], "output": context["output"],
                  "expected": context["reference"], "reference": context["reference"],
                  "metadata": context["metadata"], "example": example, "trace_id": None}
        try:
            raw = await call(self.fn, bind(self.fn, values, single="output"))
            results = normalize_result(raw)
        except Exception as exc:
            from .._core.where import raised_at

            end = datetime.now(UTC)
            where = raised_at(exc, self.fn)
            return [Score(name=self.name, evaluator=self.name, error=f"{type(exc).__name__}: "
                          f"{exc}" + (f" (evaluator {self.name}, {where})" if where else ""),
                          start_time=start, end_time=end)]
        end = datetime.now(UTC)
        scores = []
        for index, item in enumerate(results):
            name = item.get("name") or (self.name if len(results) == 1 else
                                        f"{self.name}.{index + 1}")
            scores.append(Score(
                name=name, evaluator=self.name, annotator_kind="CODE",
                label=item.get("label"), score=item.get("score"),
                explanation=item.get("explanation"), metadata=dict(item.get("metadata") or {}),
                start_time=start, end_time=end))
        return scores


def evaluator(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    threshold: str | None = None,
    pass_labels: Iterable[str] | None = None,
    passes: Callable[[Score], bool] | None = None,
) -> Any:
    """Declare a code evaluator and, optionally, its pass rule.

    Use it bare (``@evaluator``) or with options::

        @evaluator(threshold=">=0.8")              # the score must be at least 0.8
        def overlap(output, expected): ...

        @evaluator(pass_labels={"polite"})          # the label must be one of these
        def tone(output): ...

    Without a rule, a bool result passes when True and anything else is recorded only.
    """
    rules = sum(x is not None for x in (threshold, pass_labels, passes))
    if rules > 1:
        raise ValueError("give at most one of threshold=, pass_labels= and passes=")

    def wrap(func: Callable[..., Any]) -> CodeEvaluator:
        label = name or callable_name(func)
        check_signature(func, EVALUATOR_PARAMETERS, "evaluator")
        return CodeEvaluator(
            fn=func,
            name=label,
            threshold=parse_threshold(threshold, name=label) if threshold else None,
            pass_labels=frozenset(pass_labels) if pass_labels is not None else None,
            passes=passes,
        )

    return wrap(fn) if fn is not None else wrap


def reads_reference(evaluator: Any) -> bool:
    """A code evaluator whose function takes ``expected`` or ``reference`` by name."""
    import inspect

    fn = getattr(evaluator, "fn", None)
    if not isinstance(evaluator, CodeEvaluator) or fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return bool({"expected", "reference"} & set(params))


def as_evaluator(obj: Any, source: str) -> Evaluator:
    """Turn what a hook or marker supplied into an evaluator, or raise naming ``source``."""
    if isinstance(obj, CodeEvaluator):
        return obj
    if hasattr(obj, "evaluate") and hasattr(obj, "name") and hasattr(obj, "output_configs"):
        return cast("Evaluator", obj)  # one of ours, or the user's own class
    if callable(obj):
        try:
            return cast("Evaluator", evaluator(obj))
        except BindingError as exc:
            from .._core.where import defined_at

            where = defined_at(obj)
            raise BindingError(f"{exc} (from {source}"
                               + (f"; defined at {where})" if where else ")")) from None
    raise BindingError(f"{source} supplied {obj!r}, which is neither a callable nor an evaluator")
