"""Our template rendering against the Phoenix server's own formatters, run in the server's venv.

The server's formatters are imported in a subprocess of the server's virtual environment (never
in ours: see phoenix-notes), fed the same corpus, and their variables, renderings and errors must
equal ours.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from pytest_phoenix_evals._evaluators.templates import (
    TemplateError,
    input_schema,
    render,
    variables,
)

from phoenix_server import LIGHT_IMPORT, ensure_server_venv

SERVER_SIDE = LIGHT_IMPORT + r"""
import json, sys
from phoenix.db.types.prompts import PromptTemplateFormat
from phoenix.server.api.helpers.prompts.template_helpers import get_template_formatter
out = []
for template, fmt, values in json.load(sys.stdin):
    formatter = get_template_formatter(PromptTemplateFormat(fmt))
    entry = {}
    try:
        parsed = formatter.parse_with_types(template)
        entry["variables"] = {v.name: v.variable_type for v in parsed.variables}
    except Exception as exc:
        entry["variables"] = "error"
    try:
        entry["rendered"] = formatter.format(template, **values)
    except Exception as exc:
        entry["error"] = str(exc)
    out.append(entry)
json.dump(out, sys.stdout)
"""

PERSON = {"name": "Ada", "langs": ["en", "fr"], "age": 36, "address": {"city": "Paris"}}
CORPUS: list[tuple[str, str, dict[str, Any]]] = [
    ("Hello {{name}}", "MUSTACHE", {"name": "world"}),
    ("{{a}} and {{{b}}} and {{& c}}", "MUSTACHE", {"a": "<x>", "b": "&y", "c": '"z"'}),
    ("{{#items}}- {{.}}\n{{/items}}", "MUSTACHE", {"items": ["one", "two"]}),
    ("{{^missing}}nothing{{/missing}}", "MUSTACHE", {"missing": []}),
    ("{{person.name}} lives in {{person.address.city}}", "MUSTACHE", {"person": PERSON}),
    ("{{person}}", "MUSTACHE", {"person": PERSON}),
    ("{{n}} / {{f}} / {{t}} / {{z}}", "MUSTACHE", {"n": 3, "f": 2.5, "t": True, "z": None}),
    ("Q: {{question}}", "MUSTACHE", {}),
    ("{{#open}}unclosed", "MUSTACHE", {"open": True}),
    ("no variables at all", "MUSTACHE", {}),
    ("Hello {name}", "F_STRING", {"name": "world"}),
    ("{person.name} speaks {person.langs[1]}", "F_STRING", {"person": PERSON}),
    ("{person}", "F_STRING", {"person": PERSON}),
    ("{items}", "F_STRING", {"items": [1, "two", {"three": 3}]}),
    ("{n:>5}|{f:.1f}", "F_STRING", {"n": 7, "f": 2.345}),
    ("{{literal braces}} {x}", "F_STRING", {"x": "ok"}),
    ("{missing}", "F_STRING", {}),
    ("{person.__class__}", "F_STRING", {"person": PERSON}),
    ("{0}", "F_STRING", {"0": "zero"}),
    ("unbalanced {", "F_STRING", {}),
    ("kept {as} {{is}}", "NONE", {"as": "x"}),
    # Mustache sections: lists, dicts, booleans, empty values, nesting, '.' and dotted keys
    ("{{#people}}{{name}} ({{age}}); {{/people}}", "MUSTACHE",
     {"people": [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]}),
    ("{{#person}}{{name}} in {{address.city}}{{/person}}", "MUSTACHE", {"person": PERSON}),
    ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", "MUSTACHE", {"flag": True}),
    ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", "MUSTACHE", {"flag": False}),
    ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", "MUSTACHE", {"flag": None}),
    ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", "MUSTACHE", {"flag": 0}),
    ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", "MUSTACHE", {"flag": ""}),
    ("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", "MUSTACHE", {"flag": {}}),
    ("{{#flag}}[{{.}}]{{/flag}}", "MUSTACHE", {"flag": "text"}),
    ("{{#outer}}{{#inner}}{{.}},{{/inner}}|{{/outer}}", "MUSTACHE",
     {"outer": [{"inner": [1, 2]}, {"inner": []}, {"inner": ["x"]}]}),
    ("{{#items}}{{.}}{{/items}}", "MUSTACHE", {"items": [1, 2.5, True, None, "s"]}),
    ("{{#items}}{{name}}{{/items}} {{name}}", "MUSTACHE",
     {"items": [{"name": "inner"}, {}], "name": "outer"}),
    ("{{#a.b}}{{c}}{{/a.b}}", "MUSTACHE", {"a": {"b": {"c": "deep"}}}),
    ("{{^a.b}}none{{/a.b}}", "MUSTACHE", {"a": {}}),
    ("{{#docs}}{{/docs}}", "MUSTACHE", {"docs": ["x"]}),
    ("{{#a}}{{/b}}", "MUSTACHE", {"a": 1, "b": 2}),
    ("{{/closed}}", "MUSTACHE", {"closed": 1}),
    ("{{^inverted}}x", "MUSTACHE", {"inverted": 0}),
    # Mustache escaping, comments, delimiters, whitespace, partials
    ("{{html}} {{{html}}} {{&html}}", "MUSTACHE", {"html": "<b>&amp;\"'</b>"}),
    ("a {{! a comment }} b", "MUSTACHE", {}),
    ("{{=<% %>=}}<% name %> {{name}}", "MUSTACHE", {"name": "Ada"}),
    ("{{  spaced  }}|{{#  s  }}x{{/  s  }}", "MUSTACHE", {"spaced": "ok", "s": True}),
    ("line one\n  {{#s}}\n  inside\n  {{/s}}\nlast", "MUSTACHE", {"s": True}),
    ("{{> partial}}", "MUSTACHE", {}),
    ("{{{unclosed}}", "MUSTACHE", {"unclosed": "x"}),
    ("{{}}", "MUSTACHE", {}),
    ("{{ }}", "MUSTACHE", {}),
    ("{{#}}{{/}}", "MUSTACHE", {}),
    # Mustache: missing and dotted variables, values of every JSON type
    ("{{a}} {{b}}", "MUSTACHE", {"a": "only a"}),
    ("{{a.b.c}}", "MUSTACHE", {"a": {"b": {}}}),
    ("{{a.b.c}}", "MUSTACHE", {"a": "not an object"}),
    ("{{a.b}}", "MUSTACHE", {}),
    ("{{a.0}} {{a.1.x}}", "MUSTACHE", {"a": ["first", {"x": "second"}]}),
    ("{{a[0]}}", "MUSTACHE", {"a": ["first"]}),
    ("{{a[0]}}", "MUSTACHE", {}),
    ("{{.}}", "MUSTACHE", {}),
    ("{{items}} {{empty}} {{zero}} {{false}}", "MUSTACHE",
     {"items": [1, "two", {"three": 3}], "empty": "", "zero": 0, "false": False}),
    ("{{ü}} {{日本}} {{emoji}}", "MUSTACHE", {"ü": "umlaut", "日本": "nihon", "emoji": "🙂"}),
    ("{{a-b}} {{a_b}} {{a b}}", "MUSTACHE", {"a-b": "dash", "a_b": "under", "a b": "space"}),
    ("{{__class__}} {{n.__class__}}", "MUSTACHE", {"__class__": "own", "n": 1}),
    ("{{big}} {{small}} {{neg}}", "MUSTACHE", {"big": 10**20, "small": 1e-7, "neg": -0.0}),
    # F-strings: dotted and indexed access, JSON for containers, specs, conversions
    ("{person.address.city}, {person.langs[0]}/{person.langs[-1]}", "F_STRING",
     {"person": PERSON}),
    ("{person.address}", "F_STRING", {"person": PERSON}),
    ("{person.langs}", "F_STRING", {"person": PERSON}),
    ("{items[0].name} {items[1][0]}", "F_STRING", {"items": [{"name": "n"}, ["x"]]}),
    ("{d[key]} {d[0]}", "F_STRING", {"d": {"key": "by key", "0": "zero"}}),
    ("{d[key]}", "F_STRING", {"d": {"other": 1}}),
    ("{d.missing}", "F_STRING", {"d": {"other": 1}}),
    ("{person.langs[5]}", "F_STRING", {"person": PERSON}),
    ("{s.missing}", "F_STRING", {"s": "a string"}),
    ("{s[0]}{s[-1]}", "F_STRING", {"s": "abc"}),
    ("{n.real} {n.imag}", "F_STRING", {"n": 3}),
    ("{x!r} {x!s} {x!a}", "F_STRING", {"x": "wörld"}),
    ("{n!r}", "F_STRING", {"n": 5}),
    ("{person!r}", "F_STRING", {"person": PERSON}),
    ("{person.langs!r} {person.address!r} {e!r}", "F_STRING", {"person": PERSON, "e": {}}),
    ("{d!r}", "F_STRING", {"d": {"_hidden": 1, "shown": [{"a": None}], "t": True}}),
    ("{f:08.3f} {n:+d} {n:x} {s:^9} {s:*<6}", "F_STRING", {"f": 3.14159, "n": 255, "s": "mid"}),
    ("{p:>10}", "F_STRING", {"p": {"a": 1}}),
    ("{p:>10}", "F_STRING", {"p": [1]}),
    ("{n:d}", "F_STRING", {"n": "not a number"}),
    ("{x:{width}}", "F_STRING", {"x": "pad", "width": 6}),
    ("{x:{width}}", "F_STRING", {"x": "pad"}),
    ("{z} {t} {f}", "F_STRING", {"z": None, "t": True, "f": 0.1}),
    ("{d}", "F_STRING", {"d": {"ü": "ß", "n": None, "nested": {"l": [1, 2.5, False]}}}),
    ("{empty_d}{empty_l}", "F_STRING", {"empty_d": {}, "empty_l": []}),
    ("{u}", "F_STRING", {"u": "日本語 🙂"}),
    ("{}", "F_STRING", {}),
    ("{} {x}", "F_STRING", {"x": 1}),
    ("{a}{b}", "F_STRING", {"b": 2}),
    ("{a.b}", "F_STRING", {}),
    ("{items[0]}", "F_STRING", {}),
    ("{{escaped}} {{{x}}} }}{{", "F_STRING", {"x": "in braces"}),
    ("}", "F_STRING", {}),
    ("{x!z}", "F_STRING", {"x": 1}),
    ("{x", "F_STRING", {"x": 1}),
    ("{ x }", "F_STRING", {" x ": "spaced"}),
    ("{x[}", "F_STRING", {"x": 1}),
    # F-strings: attributes starting with '_' are refused at every depth
    ("{person.__class__.__init__.__globals__}", "F_STRING", {"person": PERSON}),
    ("{person._value}", "F_STRING", {"person": PERSON}),
    ("{person._data}", "F_STRING", {"person": PERSON}),
    ("{person.address.__dict__}", "F_STRING", {"person": PERSON}),
    ("{items[0].__class__}", "F_STRING", {"items": [{"a": 1}]}),
    ("{s.__len__}", "F_STRING", {"s": "text"}),
    ("{n.__class__.__mro__}", "F_STRING", {"n": 1}),
    ("{_private}", "F_STRING", {"_private": "top-level names may start with _"}),
    ("{d[_x]}", "F_STRING", {"d": {"_x": "an index may start with _"}}),
    ("{person.name.__class__}", "F_STRING", {"person": PERSON}),
    # NONE: nothing is substituted, whatever the values
    ("{{a}} {b} {{#c}}{{/c}}", "NONE", {}),
    ("", "NONE", {"a": 1}),
    ("", "MUSTACHE", {}),
    ("", "F_STRING", {}),
]


@pytest.fixture(scope="module")
def server_results() -> list[dict[str, Any]]:
    python = ensure_server_venv().parent / "python"
    done = subprocess.run([str(python), "-c", SERVER_SIDE], input=json.dumps(CORPUS),
                          capture_output=True, text=True, timeout=300, check=True)
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_same_rendering_as_server(index: int, server_results: list[dict[str, Any]]) -> None:
    template, fmt, values = CORPUS[index]
    expected = server_results[index]
    try:
        ours: Any = variables(template, fmt)
    except TemplateError:
        ours = "error"
    if expected["variables"] != "error" or ours != "error":
        assert ours == expected["variables"]
    if "error" in expected:
        with pytest.raises(Exception) as raised:
            render(template, fmt, values)
        assert str(raised.value) == expected["error"]
    else:
        assert render(template, fmt, values) == expected["rendered"]


def test_input_schema_marks_sections_as_any_and_the_rest_as_strings() -> None:
    schema = input_schema(["{{#docs}}{{.}}{{/docs}} {{question}}", "{{docs}} {{answer}}"],
                          "MUSTACHE")
    assert schema == {"type": "object",
                      "properties": {"docs": {}, "answer": {"type": "string"},
                                     "question": {"type": "string"}},
                      "required": ["answer", "docs", "question"]}
