"""Input mappings against the server's own code, run in the Phoenix server's environment on the
jsonpath-ng it installs with and on the one Phoenix's Docker image pins (1.8.0): the syntax check
of paths in mappings written in code (``validate_jsonpath``, with its wording), the whole mapping
(paths, literals, keys from the context, the cast, the schema), and what the plugin says at
collection about paths the two versions read differently."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from pytest_phoenix_evals._evaluators.mapping import path_problem, version_dependent

from phoenix_server import LIGHT_IMPORT, PINNED_JSONPATH, ensure_server_venv, server_env

PATHS = [
    "$.input", "input.question", "$.output.answer", "$['@']", "$[\"@\"]", "$.items[0]",
    "$[-1]", "$.items[0:5]", "$.items[::2]", "$.a.b.c", "_private.x", "$.a1.b2",
    "$..answer", "..x", "@", "$.@", "a.@.b", "$.0abc", "field.0", "123", "123.foo",
    "$.a | $.b", "$.a & $.b", "$.a where $.b", "`this`", "$.a.`this`", "$.output[*]",
    "$.a[?(@.b)]", "", "a" * 1001, "$.", "$[", "$.a[", "$.'quoted'", "$['x y']",
    # the wildcard, quoted stars, slices and indices (the two jsonpath-ng versions differ)
    "$.output.*", "$.output['*']", "$[*]", "$.*", "$.a[*].b", "$.a[:]", "$.a[1:]", "$.a[::-1]",
    "$.a[0,1]", "$.a['b','c']", "$.a['*','b']", "$.a[*][0]", "$.a.b[*].c[1:3]",
    # names: unicode, dashes, quotes, spaces, escapes, keywords of the extended grammar
    "$.straße", "$.中文", "$.a-b", "$['a.b']", "$[\"it's\"]", "$['back\\\\slash']",
    "$.where", "$.a.wherenot", "$.`parent`", "$.a[0].`this`", "$ . a", "$.a.", "a..b",
    "$.a[0:1:2:3]", "$.a[-0]", "$.a[1.5]", "$.a[x]", "$.a()", "(a)", "$.(a.b)",
]

CHECK = LIGHT_IMPORT + """
import importlib.metadata, json, sys
import jsonpath_ng
from phoenix.db.types.evaluators import validate_jsonpath
print(json.dumps([importlib.metadata.version("jsonpath-ng"), jsonpath_ng.__file__]))
out = []
for path in json.load(sys.stdin):
    try:
        validate_jsonpath(path)
        out.append(None)
    except ValueError as exc:
        out.append(str(exc))
print(json.dumps(out))
"""


OURS = """
import importlib.metadata, json, sys
from pytest_phoenix_evals._evaluators.mapping import path_problem
print(json.dumps(importlib.metadata.version("jsonpath-ng")))
print(json.dumps([path_problem(path) for path in json.load(sys.stdin)]))
"""


def _answers(python: str, script: str, env: dict[str, str] | None = None
             ) -> tuple[list[str | None], list[str]]:
    """The answers, and what the script printed before them."""
    # Each side in a new process, the paths in the same order: jsonpath-ng's parser (ply)
    # keeps state between parses, so a shared history keeps the comparison fair.
    answer = subprocess.run([python, "-c", script], input=json.dumps(PATHS), env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    *before, last = answer.stdout.strip().splitlines()
    found: list[str | None] = json.loads(last)
    return found, before


def version_differences(ours: list[Any], theirs: list[Any], labels: list[str],
                        our_version: str, their_version: str) -> list[str]:
    """Where the plugin and the server answer differently. On one jsonpath-ng version they
    must not differ at all; across versions only where the plugin warns (version_dependent),
    and somewhere (so that the warning is known to be needed)."""
    differ = [label for label, o, t in zip(labels, ours, theirs, strict=True) if o != t]
    if our_version == their_version:
        assert not differ, f"jsonpath-ng {our_version} on both sides:\n" + "\n".join(
            f"{label}\n  server {t!r}\n  ours   {o!r}"
            for label, o, t in zip(labels, ours, theirs, strict=True) if o != t)
    else:
        assert differ, f"jsonpath-ng {our_version} and {their_version} agree everywhere"
    return differ


@pytest.mark.parametrize("jsonpath", [None, PINNED_JSONPATH], ids=["installed", "pinned"])
def test_code_mappings_get_the_servers_check_and_wording(jsonpath: str | None) -> None:
    """The server on each jsonpath-ng version against the plugin on each."""
    import sys

    import jsonpath_ng

    server, (printed,) = _answers(str(ensure_server_venv().parent / "python"), CHECK,
                                  env=server_env(jsonpath))
    their_version, module = json.loads(printed)
    if jsonpath is not None:  # the server's own code really runs on the pinned version
        assert their_version == jsonpath and "jsonpath-ng-" in module, (their_version, module)
    assert jsonpath_ng.__file__ != module
    assert path_problem("$.input") is None
    labels = [p[:40] for p in PATHS]
    for our_jsonpath in (None, PINNED_JSONPATH):
        ours, (version,) = _answers(sys.executable, OURS, env=server_env(our_jsonpath))
        our_version = json.loads(version)
        assert our_jsonpath is None or our_version == our_jsonpath
        assert ours[0] is None
        differ = version_differences(ours, server, labels, our_version, their_version)
        # Across versions: refused by both, in words that differ only by the name jsonpath-ng
        # gives a feature ('Union' on 1.8.0, '_Union' on the latest releases), or a path the
        # plugin warns about.
        unexplained = [(p, o, s) for p, o, s in zip(PATHS, ours, server, strict=True)
                       if p[:40] in differ and not version_dependent(p)
                       and not (o and s and o.replace("'_", "'") == s.replace("'_", "'"))]
        assert not unexplained, (our_version, their_version, unexplained)


@pytest.mark.parametrize(("judges", "message"), [
    ("qa_correctness(reference='$..answer')",
     "evaluator 'qa_correctness': Phoenix would refuse this mapping's path 'reference': "
     "'$..answer': JSONPath feature 'Descendants' is not supported"),
    ("phoenix_judge('correctness', mapping={'input': '$.a & $.b'})",
     "'input': '$.a & $.b': JSONPath feature '_Intersect' is not supported"),
    ("hallucination(question='$.0')", "'question': '$.0': Field names in dot notation must "
                                      "start with a letter or underscore"),
])
def test_a_bad_path_in_code_is_a_usage_error_before_anything_runs(
        pytester: pytest.Pytester, qa_app: None, judges: str, message: str) -> None:
    pytester.makeconftest(f"""
from pytest_phoenix_evals import qa_correctness, hallucination, phoenix_judge

def pytest_phoenix_evals_evaluators(config, dataset):
    return [{judges}]
""")
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                                "--phoenix-no-upload", "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert message in out, out
    assert "Traceback" not in out and "NotImplementedError" not in out
    result.assert_outcomes()  # nothing ran


def test_a_path_the_servers_read_differently_is_said_at_collection(
        pytester: pytest.Pytester, qa_app: None, admin: Any) -> None:
    """An index, a slice or a wildcard reads differently on jsonpath-ng 1.8.0 (Phoenix's Docker
    image) and the latest releases: the attached evaluators run here that use one are named, with
    the path and the way to the server's own reading; the others, and those the server runs,
    are not."""
    import importlib.metadata

    examples = [{"input": {"question": "What is the capital of France?"},
                 "output": {"answer": "Paris", "aliases": ["Paris", "Paname"]}, "metadata": {}}]
    dataset_id = admin.create_dataset("version-paths", examples)
    admin.attach_builtin(dataset_id, "exact_match", "first_alias",
                         {"expected": "$.reference.aliases[0]", "actual": "$.output"})
    admin.attach_builtin(dataset_id, "regex", "first_aliases",
                         {"text": "$.reference.aliases[0:1]"}, {"pattern": "^Par"})
    admin.attach_builtin(dataset_id, "contains", "plain",
                         {"expected": "$.reference.answer", "text": "$.output"},
                         {"words": "paris"})
    args = ["--phoenix-dataset=version-paths", "--phoenix-task=qa_app:answer",
            "--phoenix-no-upload", "-p", "no:cacheprovider"]
    result = pytester.runpytest(*args)
    out = result.stdout.str()
    version = importlib.metadata.version("jsonpath-ng")
    said = [line for line in out.splitlines() if "read differently" in line]
    assert (f"phoenix-evals: version-paths: evaluator 'first_alias': path "
            f"'$.reference.aliases[0]' (input 'expected') uses an index, which jsonpath-ng "
            f"1.8.0 (Phoenix's Docker image) and the latest releases (a pip-installed Phoenix) "
            f"read differently; it is evaluated here with jsonpath-ng {version}. To get the "
            f"server's own reading, run with --phoenix-evaluate-on=server") in said, out
    assert any("evaluator 'first_aliases': path '$.reference.aliases[0:1]' (input 'text') uses "
               "a slice, which" in line for line in said), out
    assert len(said) == 2 * 2, said  # said at collection, and again in the summary's notices
    assert out.index(said[0]) < out.index("collected 1 item") < out.rindex(said[2])
    result.assert_outcomes(passed=1)

    on_server = pytester.runpytest(*args, "--phoenix-evaluate-on=server")
    assert "read differently" not in on_server.stdout.str()
    on_server.assert_outcomes(passed=1)

    # Under xdist too: at the start and in the summary, once each (not once per worker).
    spread = pytester.runpytest(*args, "-n", "2")
    lines = [line for line in spread.stdout.str().splitlines() if "read differently" in line]
    assert lines == said, spread.stdout.str()
    spread.assert_outcomes(passed=1)


# --- the whole mapping: paths, literals, the context, the cast and the schema ---------------

APPLY = LIGHT_IMPORT + """
import importlib.metadata, json, sys
from phoenix.db.types.evaluators import InputMapping
from phoenix.server.api.evaluators import (
    apply_input_mapping, cast_template_variable_types, validate_template_variables)
print(json.dumps(importlib.metadata.version("jsonpath-ng")))
out = []
for schema, path, literal, context in json.load(sys.stdin):
    try:
        mapping = InputMapping(path_mapping=path, literal_mapping=literal)
    except Exception as exc:
        out.append({"refused": True})
        continue
    try:
        inputs = apply_input_mapping(input_schema=schema, input_mapping=mapping, context=context)
        inputs = cast_template_variable_types(template_variables=inputs, input_schema=schema)
        validate_template_variables(template_variables=inputs, input_schema=schema)
        out.append({"inputs": inputs})
    except Exception as exc:
        out.append({"error": f"{type(exc).__name__}: {exc}"})
print(json.dumps(out))
"""

STRINGS = {"type": "object", "properties": {"question": {"type": "string"},
                                            "answer": {"type": "string"}},
           "required": ["question", "answer"]}
TEMPLATE = {"type": "object", "properties": {"docs": {}, "question": {"type": "string"}},
            "required": ["docs", "question"]}
TYPED = {"type": "object", "properties": {"n": {"type": "number"}, "i": {"type": "integer"},
                                          "b": {"type": "boolean"}, "l": {"type": "array"},
                                          "o": {"type": "object"}, "s": {"type": "string"}}}
OPEN = {"type": "object", "properties": {"question": {"type": "string"}},
        "additionalProperties": True}
CONTEXT = {"input": {"question": "What?", "tags": ["a", "b"], "n": 3},
           "reference": {"answer": "Paris", "list": [{"x": 1}, {"x": 2}], "empty": {}},
           "output": "Paris!", "metadata": {"lang": "fr", "score": 0.5, "flag": True,
                                            "none": None, "ü": "umlaut", "a.b": "dotted"}}

MAPPINGS: list[tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, Any]]] = [
    # paths, then literals over paths (other values), then the context by name
    (STRINGS, {"question": "$.input.question", "answer": "$.output"}, {}, CONTEXT),
    (STRINGS, {"question": "$.input.question", "answer": "$.output"}, {"answer": "literal"},
     CONTEXT),
    (STRINGS, {"question": "$.input.question", "answer": "$.nothing"}, {"answer": "literal"},
     CONTEXT),
    (STRINGS, {"question": "$.input.question"}, {"question": None, "answer": 42}, CONTEXT),
    (STRINGS, {}, {}, {"question": "from the context", "answer": ["by", "name"]}),
    (STRINGS, {"question": "$.input.question"}, {}, {**CONTEXT, "answer": {"k": "v"}}),
    (STRINGS, {}, {"answer": "literal"}, {"question": "q", "answer": "context"}),
    (STRINGS, {"answer": "$.output"}, {}, {"output": "o", "answer": "context"}),
    (STRINGS, {}, {}, CONTEXT),
    (STRINGS, {"question": "$.input.question"}, {}, CONTEXT),
    # keys outside the schema: ignored (an unmatched path too), unless it accepts any key
    (STRINGS, {"question": "$.input.question", "answer": "$.output", "extra": "$.none"},
     {"other": 1}, CONTEXT),
    (OPEN, {"question": "$.input.question", "extra": "$.metadata.lang"}, {"more": [1]},
     CONTEXT),
    (OPEN, {"extra": "$.none.here"}, {}, CONTEXT),
    ({}, {"anything": "$.reference.list", "n": "$.input.n"}, {"lit": {"a": 1}}, CONTEXT),
    ({"type": "object"}, {"x": "$.output"}, {}, CONTEXT),
    ({"type": "object", "properties": {}}, {"x": "$.output"}, {"y": 1}, CONTEXT),
    # several matches give a list (cast to its str() for a string input); no match an error
    (STRINGS, {"question": "$.reference.list[0:2].x", "answer": "$.input.tags[0,1]"}, {},
     CONTEXT),
    (TEMPLATE, {"docs": "$.reference.list[0:2].x", "question": "$.input.question"}, {},
     CONTEXT),
    (TEMPLATE, {"docs": "$.reference.list", "question": "$.reference.list[1]"}, {}, CONTEXT),
    (TEMPLATE, {"docs": "$.reference.empty", "question": "$.metadata.none"}, {}, CONTEXT),
    (TEMPLATE, {"question": "$.input.question"}, {}, CONTEXT),
    (STRINGS, {"question": "$.reference.answer.deeper", "answer": "$.output"}, {}, CONTEXT),
    (STRINGS, {"question": "$.input.tags[7]", "answer": "$.output"}, {}, CONTEXT),
    # the cast: str() of every JSON type for string inputs, nothing for the others
    (STRINGS, {"question": "$.metadata.score", "answer": "$.metadata.flag"}, {}, CONTEXT),
    (STRINGS, {"question": "$.metadata.none", "answer": "$.reference"}, {}, CONTEXT),
    (STRINGS, {"question": "$.metadata['ü']", "answer": "$.metadata['a.b']"}, {}, CONTEXT),
    (TYPED, {"n": "$.metadata.score", "i": "$.input.n", "b": "$.metadata.flag",
             "l": "$.input.tags", "o": "$.reference", "s": "$.input.n"}, {}, CONTEXT),
    (TYPED, {"n": "$.output"}, {}, CONTEXT),
    (TYPED, {"i": "$.metadata.score"}, {}, CONTEXT),
    (TYPED, {"b": "$.metadata.lang"}, {}, CONTEXT),
    (TYPED, {"l": "$.reference.empty"}, {}, CONTEXT),
    (TYPED, {"o": "$.input.tags"}, {}, CONTEXT),
    (TYPED, {}, {"i": 2.0, "n": "1", "b": 0}, CONTEXT),
    (TYPED, {}, {}, {"n": 1, "i": True, "s": None}),
    # more of what jsonschema says: enums, bounds, nested schemas, several problems at once
    ({"type": "object", "properties": {"tone": {"type": "string", "enum": ["calm", "angry"]}},
      "required": ["tone"]}, {"tone": "$.metadata.lang"}, {}, CONTEXT),
    ({"type": "object", "properties": {"k": {"type": "integer", "minimum": 5}}},
     {"k": "$.input.n"}, {}, CONTEXT),
    ({"type": "object", "properties": {"o": {"type": "object", "required": ["z"]}}},
     {"o": "$.reference"}, {}, CONTEXT),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "required": ["a", "b", "c"]}, {"a": "$.output", "b": "$.output"}, {}, CONTEXT),
    ({"type": "object", "properties": {"a": {"type": "string", "maxLength": 3}}},
     {"a": "$.output"}, {}, CONTEXT),
    # indices and slices (jsonpath-ng 1.8.0 and the latest releases differ on these)
    (STRINGS, {"question": "$.output[0]", "answer": "$.output[0:3]"}, {}, CONTEXT),
    (STRINGS, {"question": "$.reference[0]", "answer": "$.reference['*']"}, {}, CONTEXT),
    (TEMPLATE, {"docs": "$.input[1:]", "question": "$.input.tags[-1]"}, {}, CONTEXT),
    (TEMPLATE, {"docs": "$.input.tags[-3]", "question": "$.input.question"}, {}, CONTEXT),
    (TEMPLATE, {"docs": "$.output[*]", "question": "$.input.question"}, {}, CONTEXT),
    (TEMPLATE, {"docs": "$.reference[*]", "question": "$.input.question"}, {}, CONTEXT),
]


OURS_APPLY = """
import importlib.metadata, json, sys
from pytest_phoenix_evals._evaluators.mapping import MappingError, map_inputs, path_problem
print(json.dumps(importlib.metadata.version("jsonpath-ng")))
out = []
for schema, path, literal, context in json.load(sys.stdin):
    if any(path_problem(p) for p in path.values()):
        out.append({"refused": True})
        continue
    try:
        out.append({"inputs": map_inputs(input_schema=schema, path_mapping=path,
                                         literal_mapping=literal, context=context)})
    except Exception as exc:  # what jsonpath-ng 1.8.0 raises too (an evaluator error)
        kind = "ValueError" if isinstance(exc, MappingError) else type(exc).__name__
        out.append({"error": f"{kind}: {exc}"})
print(json.dumps(out))
"""


def _applied(python: str, script: str, jsonpath: str | None) -> tuple[str, list[Any]]:
    done = subprocess.run([python, "-c", script], input=json.dumps(MAPPINGS),
                          env=server_env(jsonpath), capture_output=True, text=True,
                          timeout=300, check=True)
    printed, answers = done.stdout.strip().splitlines()[-2:]
    return json.loads(printed), json.loads(answers)


@pytest.fixture(scope="module")
def plugin_mappings() -> dict[str, list[Any]]:
    """The plugin's answers on MAPPINGS by jsonpath-ng version: its own, and the pinned one."""
    import sys

    found = dict([_applied(sys.executable, OURS_APPLY, None),
                  _applied(sys.executable, OURS_APPLY, PINNED_JSONPATH)])
    assert PINNED_JSONPATH in found, list(found)
    return found


@pytest.mark.parametrize("jsonpath", [None, PINNED_JSONPATH], ids=["installed", "pinned"])
def test_whole_mappings_equal_the_servers(jsonpath: str | None,
                                          plugin_mappings: dict[str, list[Any]]) -> None:
    """Paths, literals, keys from the context, the cast and the schema, against the server's
    apply_input_mapping, cast_template_variable_types and validate_template_variables; the
    plugin on each jsonpath-ng version against the server on each."""
    their_version, server = _applied(str(ensure_server_venv().parent / "python"), APPLY,
                                     jsonpath)
    assert jsonpath is None or their_version == jsonpath
    labels = [json.dumps(m[1:3])[:90] for m in MAPPINGS]
    for our_version, ours in plugin_mappings.items():
        differ = version_differences(ours, server, labels, our_version, their_version)
        unexplained = [label for label, m in zip(labels, MAPPINGS, strict=True) if label in
                       differ and not any(version_dependent(p) for p in m[1].values())]
        assert not unexplained, (our_version, their_version, unexplained)
        assert sum("inputs" in o for o in ours) >= 15 and sum("error" in o for o in ours) >= 10
