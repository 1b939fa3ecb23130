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

import functools
import json
from typing import Any

from jsonpath_ng.jsonpath import Child
from jsonpath_ng.parser import JsonPathParser
from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for


class MappingError(ValueError):
    """An input could not be mapped; ``hint`` says what exists instead (not uploaded)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@functools.lru_cache(maxsize=1024)
def _parsed(expression: str) -> Any:
    """A path parsed once (parsing builds a whole parser: a third of a judge's own CPU time in
    a run over many cases); the parsed path is never changed, so sharing it is safe."""
    return JsonPathParser().parse(expression)


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
            path = _parsed(expression)
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
    error = best_match(_validator(input_schema).iter_errors(cast))
    if isinstance(error, ValidationError):
        raise MappingError(f"Input validation failed: {error.message}")
    return cast


#: Checked validators by schema (its JSON): ``jsonschema.validate``, which the server calls,
#: checks the schema itself on every call (3 ms a case, a fifth of a case's CPU here). The
#: same validator class and the same best match of the errors give the same message.
_VALIDATORS: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True, default=repr)
    found = _VALIDATORS.get(key)
    if found is None:
        cls = validator_for(schema)
        cls.check_schema(schema)  # a bad schema raises SchemaError, as validate() does
        if len(_VALIDATORS) >= 256:
            _VALIDATORS.clear()
        found = _VALIDATORS[key] = cls(schema)
    return found


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


# --- the server's syntax check for stored paths ---------------------------------------------
# Phoenix stores an evaluator's path mapping only when each path passes ``validate_jsonpath``
# (phoenix/db/types/evaluators.py). Mappings written in code never reach that check, so it is
# done here, when the evaluator is built, with the server's messages. Our own code: the rules
# are the server's (not empty, at most 1,000 characters, no bare '@', dot-notation names that
# start with a letter or '_', and only the root, child, field, index and slice nodes of
# jsonpath-ng's base grammar: no '..', '|', '&', 'where', '`this`' or filters).

_MAX_PATH = 1000


def _bare_at(path: str) -> bool:
    """'@' used as a name: at the start, or after '.' or '[', and followed by '.', '[' or the
    end ('$['@']' names a field called '@' and is fine)."""
    for at, char in enumerate(path):
        if char == "@" and (at == 0 or path[at - 1] in ".[") and \
                (at + 1 == len(path) or path[at + 1] in ".["):
            return True
    return False


def _bad_name_start(path: str) -> bool:
    """A dot-notation name (at the start or after a single '.') starting with anything but a
    letter or '_' (the root '$', a bracket, a backtick and '..' are left to the parser)."""
    for at, char in enumerate(path):
        if (at == 0 or (path[at - 1] == "." and char != ".")) and char not in "$[`." and \
                not (char.isascii() and (char.isalpha() or char == "_")):
            return True
    return False


def mapping_problems(path_mapping: dict[str, str | None] | Any) -> list[str]:
    """Each path of a mapping written in code that the server would refuse, and why."""
    return [f"{key!r}: {path!r}: {problem}" for key, path in dict(path_mapping or {}).items()
            if path is not None and (problem := path_problem(str(path)))]


def path_problem(path: str) -> str | None:
    """Why the server would refuse to store ``path`` as a path mapping (None: it would not)."""
    from jsonpath_ng.jsonpath import Fields, Index, Root, Slice

    if not path:
        return "JSONPath cannot be empty"
    if len(path) > _MAX_PATH:
        return "JSONPath exceeds maximum length of 1000 characters"
    if _bare_at(path):
        return "Bare '@' is not supported. Use bracket notation ['@'] for fields named '@'"
    if _bad_name_start(path):
        return ("Field names in dot notation must start with a letter or underscore. Use "
                "bracket notation like ['123'] for other field names")
    try:
        tree = _parsed(path)
    except Exception as exc:  # the lexer's and the parser's errors (and ply's own)
        return f"Invalid JSONPath syntax: {exc}"
    allowed = (Root, Child, Fields, Index, Slice)
    nodes = [tree]
    while nodes:
        node = nodes.pop()
        if not isinstance(node, allowed):
            return f"JSONPath feature '{type(node).__name__}' is not supported"
        if isinstance(node, Child):
            nodes += [node.left, node.right]
    return None


# --- paths whose meaning depends on the server's jsonpath-ng --------------------------------
# Phoenix's lock file and Docker image pin jsonpath-ng 1.8.0; a pip-installed server gets the
# newest release. The two agree on names ('$.output.answer', "$['x y']") and differ on the
# rest of what the server lets a mapping use (tests/test_builtin_parity.py runs both):
# - an index reads a string's characters on 1.8.0, fails on an object, a number or a negative
#   index past the start; the latest releases match list items only, and nothing otherwise;
# - a slice of a value that is not a list is that value on 1.8.0, nothing on the latest releases
#   (a step of 0 fails on 1.8.0);
# - '[*]' is the value itself on 1.8.0 when it is an object or a single value; the latest
#   releases read it as every member of an object or list (and refuse it in a stored mapping;
#   '.*' is refused by both);
# - a field named '*' ("['*']") is every field on 1.8.0, only that field on the latest releases.
# The plugin evaluates with whatever jsonpath-ng it is installed with, so such a path is said
# at collection, with the way to the server's own reading.


def version_dependent(path: str) -> str | None:
    """What in ``path`` jsonpath-ng 1.8.0 and the latest releases read differently (None:
    nothing, or the path does not parse)."""
    from jsonpath_ng.jsonpath import Fields, Index, Slice

    try:
        tree = _parsed(path)
    except Exception:
        return None
    found: list[str] = []
    nodes = [tree]
    while nodes:
        node = nodes.pop()
        if isinstance(node, Child):
            nodes += [node.right, node.left]  # left first: the path's own order
            continue
        if type(node).__name__ == "Wildcard" or (isinstance(node, Fields) and "*" in node.fields) \
                or (isinstance(node, Slice) and node.start is None and node.end is None
                    and node.step is None and "[*]" in path):
            what = "the wildcard '*'"
        elif isinstance(node, Index):
            what = "an index"
        elif isinstance(node, Slice):
            what = "a slice"
        else:
            continue
        if what not in found:
            found.append(what)
    return " and ".join(found) or None
