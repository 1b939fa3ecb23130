"""Readable, stable names for cases (``ex12-what-is-2-2``) from an example's id and input."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from .types import Example, OutputConfig


def row_id(example_id: str) -> str:
    """``DatasetExample:17`` -> ``17``: the readable part of the example's GlobalID."""
    try:
        decoded = base64.b64decode(example_id, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return example_id
    return decoded.rsplit(":", 1)[-1] if ":" in decoded else example_id


def first_text(value: Any) -> str:
    """The first non-empty string in a JSON value, depth first."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for item in value.values():
            if text := first_text(item):
                return text
    if isinstance(value, list):
        for item in value:
            if text := first_text(item):
                return text
    return ""


def case_id(example: Example, repetition: int = 1) -> str:
    """A readable id, stable between runs: the example's row id and a slug of its input."""
    slug = re.sub(r"[^a-z0-9]+", "-", first_text(example.input).lower()).strip("-")
    if len(slug) > 40:
        slug = slug[:40].rsplit("-", 1)[0] or slug[:40]
    name = f"ex{row_id(example.id)}" + (f"-{slug}" if slug else "")
    return name + (f"-rep{repetition}" if repetition > 1 else "")


def annotation_names(configs: Sequence[OutputConfig]) -> list[str]:
    """Annotation names as the server's experiment runner gives them.

    The runner passes the first stored config's name as the evaluator name; one config gives an
    annotation of that name, several give ``<first config name>.<config name>``
    (``experiment_runner.py``: ``EvalWorkItem.execute``; ``evaluators.py``:
    ``BuiltInEvaluator.evaluate``).
    """
    if not configs:
        return []
    base = configs[0].name
    if len(configs) == 1:
        return [base]
    return [f"{base}.{config.name}" for config in configs]


#: The identifier of every annotation this plugin writes on a span, trace or session (never
#: empty, never starting with ``online:``, which the server keeps for itself).
IDENTIFIER = "pytest-phoenix-evals"
