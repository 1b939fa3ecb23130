"""Input mapping: from the evaluation context to an evaluator's inputs, as the server does it.

The server (``phoenix/server/api/evaluators.py``: ``apply_input_mapping``,
``cast_template_variable_types``, ``validate_template_variables``) parses each path mapping with
jsonpath-ng's base parser, lets literal mappings win over paths, fills schema keys still unmapped
from the context by name, casts string-typed inputs with ``str()`` and validates against the
input schema with jsonschema. We use the same libraries and the same order so that results and
error texts are equal; the error texts are the server's because they are uploaded as the
annotation's error.
"""

from __future__ import annotations

from typing import Any

from jsonpath_ng.jsonpath import Child
from jsonpath_ng.parser import JsonPathParser
from jsonschema import ValidationError, validate


class MappingError(ValueError):
    """An input could not be mapped; ``hint`` says what exists instead (not uploaded)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def apply_input_mapping(
    *,
    input_schema: dict[str, Any],
    path_mapping: dict[str, str] | None,
    literal_mapping: dict[str, Any] | None,
    context: dict[str, Any],
) -> dict[str, Any]:
    declared = input_schema.get("properties") or {}
    accepts_any = not declared or input_schema.get("additionalProperties") is True
    inputs: dict[str, Any] = {}
    for key, expression in (path_mapping or {}).items():
        if not accepts_any and key not in declared:
            continue
        try:
            path = JsonPathParser().parse(expression)
        except Exception as exc:
            raise MappingError(
                f"Invalid JSONPath expression '{expression}' for key '{key}': {exc}"
            ) from None
        matches = path.find(context)
        if not matches:
            raise MappingError(
                f"JSONPath expression '{expression}' for key '{key}' did not match any values",
                hint=_what_exists(path, context),
            )
        inputs[key] = matches[0].value if len(matches) == 1 else [m.value for m in matches]
    for key, value in (literal_mapping or {}).items():
        if accepts_any or key in declared:
            inputs[key] = value
    for key in declared:
        if key not in inputs and key in context:
            inputs[key] = context[key]
    return inputs


def cast_and_validate(inputs: dict[str, Any], input_schema: dict[str, Any]) -> dict[str, Any]:
    """Cast string-typed inputs with ``str()``, then validate against the schema."""
    cast = dict(inputs)
    for key, schema in (input_schema.get("properties") or {}).items():
        if key in cast and schema.get("type") == "string" and not isinstance(cast[key], str):
            cast[key] = str(cast[key])
    try:
        validate(instance=cast, schema=input_schema)
    except ValidationError as exc:
        raise MappingError(f"Input validation failed: {exc.message}") from None
    return cast


def map_inputs(
    *,
    input_schema: dict[str, Any],
    path_mapping: dict[str, str] | None,
    literal_mapping: dict[str, Any] | None,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Mapping, cast and validation in one step; raises :class:`MappingError`."""
    inputs = apply_input_mapping(
        input_schema=input_schema,
        path_mapping=path_mapping,
        literal_mapping=literal_mapping,
        context=context,
    )
    return cast_and_validate(inputs, input_schema)


def _what_exists(path: Any, context: dict[str, Any]) -> str:
    """Describe the longest prefix of ``path`` that does match, and the keys found there."""
    prefix = path
    while isinstance(prefix, Child):
        prefix = prefix.left
        matches = prefix.find(context)
        if matches:
            return f"'{_render(prefix)}' exists and holds {_describe(matches[0].value)}"
    return f"the context has keys: {', '.join(sorted(context))}"


def _render(path: Any) -> str:
    text = str(path)
    return text if text.startswith("$") else f"$.{text}"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "an empty object"
        return "an object with keys: " + ", ".join(sorted(map(str, value)))
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None:
        return "null"
    return f"a {type(value).__name__}, not an object"
