"""Prompt templates rendered as the Phoenix server renders an LLM evaluator's messages.

The server (``phoenix/utilities/template_formatters.py``) knows three template formats:

- ``MUSTACHE``: rendered by pystache with HTML escaping off; we use pystache too, the same way,
  so that sections, inverted sections and dotted names behave identically.
- ``F_STRING``: Python's ``str.format`` syntax. The server wraps dict and list values so that
  ``{user.name}`` and ``{items[0]}`` work, prints a whole dict or list as JSON, and refuses
  attribute names starting with ``_`` (no walking to ``__globals__``). No library does exactly
  this, so :class:`_FieldAccess` below is our own small equivalent.
- ``NONE``: the text as it is.

The variables of a template also give the evaluator's input schema: section variables
(``{{#x}}``, ``{{^x}}``) accept any JSON value, every other variable must be a string.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

FORMATS = ("MUSTACHE", "F_STRING", "NONE")


class TemplateError(ValueError):
    """A template that cannot be parsed or rendered (the message is the annotation's error)."""


# --- parsing ------------------------------------------------------------------------------


def variables(template: str, template_format: str) -> dict[str, str]:
    """Root variable name -> ``"section"`` or ``"string"``."""
    if template_format == "MUSTACHE":
        return _mustache_variables(template)
    if template_format == "F_STRING":
        return {name: "string" for name in _fstring_fields(template)}
    if template_format == "NONE":
        return {}
    raise TemplateError(f"unknown template format {template_format!r}; "
                        f"Phoenix knows {', '.join(FORMATS)}")


def _mustache_variables(template: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, kind in _mustache_keys(template):
        root = key if key == "." else key.split(".")[0]
        if kind == "section":
            found[root] = "section"
        else:
            found.setdefault(root, "string")
    return found


def _mustache_keys(template: str) -> list[tuple[str, str]]:
    """(name as written, ``"section"`` or ``"string"``) of each top-level tag."""
    import pystache

    # pystache has no public API for the tags of a template; its parse tree's node classes
    # are what the server reads too.
    from pystache.parser import ParsingError, _EscapeNode, _InvertedNode, _LiteralNode, _SectionNode

    try:
        parsed = pystache.parse(template, raise_on_mismatch=True)
    except ParsingError as exc:
        raise TemplateError(str(exc)) from None
    tree = getattr(parsed, "_parse_tree", parsed)
    found: list[tuple[str, str]] = []
    for node in tree if isinstance(tree, list) else ():
        key = getattr(node, "key", None)
        if not isinstance(key, str) or not key:
            continue
        if isinstance(node, (_SectionNode, _InvertedNode)):
            found.append((key, "section"))
        elif isinstance(node, (_EscapeNode, _LiteralNode)):
            found.append((key, "string"))
    return found


def _fstring_fields(template: str) -> set[str]:
    try:
        return {field for _, field, _, _ in string.Formatter().parse(template) if field}
    except ValueError as exc:
        raise TemplateError(str(exc)) from None


def _root(name: str, template_format: str) -> str:
    """The variable a name needs. Mustache names are cut at the first '.'; then both formats
    stop at the first '.' or '[' too, as the server's missing-variable check does (so
    ``{{a[0]}}`` needs ``a``, though pystache then looks up ``a[0]`` as one name)."""
    if template_format == "MUSTACHE" and name != ".":
        name = name.split(".")[0]
    match = re.match(r"^([^.\[]+)", name)
    return match.group(1) if match else name


def roots(template: str, template_format: str) -> set[str]:
    """The root names a template needs (``input`` for ``{{input.question}}``, ``{a[0]}``'s
    ``a``), as the server's missing-variable check reads them."""
    return {_root(name, template_format) for name in variables(template, template_format)
            if name != "."}


def input_schema(texts: Iterable[str], template_format: str) -> dict[str, Any]:
    """The JSON schema of a template's inputs, as the server infers it."""
    sections: set[str] = set()
    strings: set[str] = set()
    for text in texts:
        for name, kind in variables(text, template_format).items():
            (sections if kind == "section" else strings).add(name)
    properties: dict[str, Any] = {name: {} for name in sorted(sections)}
    properties.update({name: {"type": "string"} for name in sorted(strings - sections)})
    return {"type": "object", "properties": properties,
            "required": sorted(sections | strings)}


def unfilled(template: str, template_format: str, values: dict[str, Any]) -> list[str]:
    """The variables of ``template`` (as written) that ``values`` cannot fill.

    The server checks only that each variable's root is there; past it, pystache renders a
    dotted name that leads nowhere (``{{input.question}}`` when ``input`` is a string or has no
    ``question``) as an empty string, without a word. Here a Mustache name must lead to a value
    through objects, key by key, as pystache looks it up for JSON values (a list, a string or a
    number has no keys to it); a section needs only its root, since an empty or missing
    section is how Mustache says "nothing". An f-string field must resolve as the server's
    formatter resolves it."""
    if template_format == "NONE":
        return []
    missing: list[str] = []
    if template_format == "MUSTACHE":
        for key, kind in _mustache_keys(template):
            if key == ".":
                continue
            parts = key.split(".")[:1] if kind == "section" else key.split(".")
            if lookup(values, parts) is _MISSING and key not in missing:
                missing.append(key)
        return missing
    wrapped = {key: _wrap(value) for key, value in values.items()}
    for field in _fstring_fields(template):
        try:
            _SafeFormatter().get_field(field, (), wrapped)
        except (LookupError, AttributeError, TypeError, ValueError):
            if field not in missing:
                missing.append(field)
    return missing


_MISSING = object()


def lookup(values: Any, parts: Sequence[str]) -> Any:
    """The value at ``parts`` through objects only, else a marker of absence."""
    current = values
    for part in parts:
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def where_missing(name: str, values: dict[str, Any]) -> str:
    """What is there on the way to a variable that cannot be filled: the longest part of its
    name that leads somewhere, and the keys (or the kind of value) found there."""
    parts = [p for p in re.split(r"[.\[\]]", name) if p]
    at: list[str] = []
    current: Any = values
    for part in parts:
        if not isinstance(current, dict) or part not in current:
            break
        at.append(part)
        current = current[part]
    where = ".".join(at) or "the context"
    if isinstance(current, dict):
        return f"{where} has keys: {', '.join(map(str, current)) or 'none'}"
    return f"{where} is a {type(current).__name__}, with no keys"


# --- rendering ----------------------------------------------------------------------------


def render(template: str, template_format: str, values: dict[str, Any]) -> str:
    """The template with ``values`` filled in; TemplateError with the server's wording."""
    if template_format == "NONE":
        return template
    if template_format == "MUSTACHE":
        names: Iterable[str] = _mustache_variables(template)
    else:
        names = _fstring_fields(template)
    missing = {_root(name, template_format) for name in names} - set(values)
    if missing:
        raise TemplateError(f"Missing template variable(s): {', '.join(sorted(missing))}")
    if template_format == "MUSTACHE":
        import pystache

        return str(pystache.Renderer(escape=lambda text: text).render(template, values))
    if template_format == "F_STRING":
        wrapped = {key: _wrap(value) for key, value in values.items()}
        return _SafeFormatter().vformat(template, (), wrapped)
    raise TemplateError(f"unknown template format {template_format!r}")


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


class _FieldAccess:
    """A dict or list seen from an f-string: ``.key`` / ``[i]`` reach inside, str() is JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: dict[str, Any] | list[Any]) -> None:
        self._value = value

    def __getattr__(self, name: str) -> Any:
        value = object.__getattribute__(self, "_value")
        if isinstance(value, dict) and name in value:
            return _wrap(value[name])
        raise AttributeError(f"No attribute '{name}'")

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._value[key])

    def __str__(self) -> str:
        return _json_text(self._value)


# The two names are the ones the server's wrappers have: they appear in what a template with
# a format spec ("unsupported format string passed to DotDict.__format__") or a '!r'
# conversion renders, and so in annotations.


class DotDict(_FieldAccess):
    """A dict: ``{x!r}`` shows its public keys as ``DotDict(key=value, ...)``."""

    __slots__ = ()

    def __repr__(self) -> str:
        value = self._value
        assert isinstance(value, dict)
        items = ", ".join(f"{key}={_wrapped_repr(item)}"
                          for key, item in value.items() if not str(key).startswith("_"))
        return f"DotDict({items})"


class ListWrapper(_FieldAccess):
    """A list: ``{x!r}`` is ``ListWrapper([...])``, the items as Python shows them."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ListWrapper({self._value!r})"


def _wrapped_repr(value: Any) -> str:
    return repr(_wrap(value))


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return DotDict(value)
    return ListWrapper(value) if isinstance(value, list) else value


_PART = re.compile(r"\.([^.\[\]]+)|\[([^\[\]]+)\]")


class _SafeFormatter(string.Formatter):
    """``str.format`` that refuses ``_``-prefixed attributes, so templates cannot reach
    interpreter internals (and from there environment variables or keys)."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Any) -> Any:
        first = re.match(r"^[^.\[\]]*", field_name).group(0)  # type: ignore[union-attr]
        obj = self.get_value(int(first) if first.isdigit() else first, args, kwargs)
        for attribute, index in _PART.findall(field_name[len(first):]):
            if attribute:
                if attribute.startswith("_"):
                    raise TemplateError(
                        f"Access to attribute '{attribute}' is not permitted in templates")
                obj = getattr(obj, attribute)
            else:
                obj = obj[int(index) if index.lstrip("-").isdigit() else index]
        return obj, first
