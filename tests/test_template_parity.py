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
