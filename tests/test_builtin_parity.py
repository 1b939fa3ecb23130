"""Our built-in evaluators against the server's own, through its evaluatorPreviews mutation:
on a server with the jsonpath-ng it installs with, and on one with the jsonpath-ng that
Phoenix's Docker image pins (1.8.0)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from pytest_phoenix_evals._evaluators.mapping import version_dependent

from phoenix_server import PINNED_JSONPATH, ensure_server_venv, server_env


def ctx(output: Any, reference: Any = None, input: Any = None, metadata: Any = None
        ) -> dict[str, Any]:
    return {"input": input if input is not None else {"question": "q"},
            "reference": reference if reference is not None else {},
            "output": output, "metadata": metadata or {}}


# (builtin, context, path mapping, literal mapping): each one preview on the server.
CORPUS: list[tuple[str, dict[str, Any], dict[str, str], dict[str, Any]]] = [
    # contains: case sensitivity, require_all, unicode, numbers cast to strings, empty words
    ("contains", ctx("The capital is Paris."), {"text": "$.output"}, {"words": "paris"}),
    ("contains", ctx("The capital is Paris."), {"text": "$.output"},
     {"words": "paris", "case_sensitive": True}),
    ("contains", ctx("Paris and Rome"), {"text": "$.output"},
     {"words": "paris, rome ,berlin", "require_all": True}),
    ("contains", ctx("Paris and Rome"), {"text": "$.output"},
     {"words": "paris,rome", "require_all": True}),
    ("contains", ctx("Paris and Rome"), {"text": "$.output"}, {"words": "berlin,ROME"}),
    ("contains", ctx("Straße in München"), {"text": "$.output"}, {"words": "STRASSE"}),
    ("contains", ctx("Straße in München"), {"text": "$.output"}, {"words": "münchen"}),
    ("contains", ctx("ΣΊΣΥΦΟΣ"), {"text": "$.output"}, {"words": "σίσυφος"}),
    ("contains", ctx(42), {"text": "$.output"}, {"words": "4"}),
    ("contains", ctx(3.5), {"text": "$.output"}, {"words": "3.5"}),
    ("contains", ctx(True), {"text": "$.output"}, {"words": "True"}),
    ("contains", ctx(None), {"text": "$.output"}, {"words": "None"}),
    ("contains", ctx("anything"), {"text": "$.output"}, {"words": " , ,"}),
    ("contains", ctx({"a": "Paris"}), {"text": "$.output"}, {"words": "'a'"}),
    ("contains", ctx("x", {"answer": "Paris"}), {"text": "$.output", "words": "$.reference.nope"},
     {}),
    ("contains", ctx(["Paris", "Rome"]), {"text": "$.output[0:2]"}, {"words": "Rome"}),
    ("contains", ctx("text"), {"text": "$.output"}, {"words": "t", "require_all": "yes"}),
    ("contains", ctx("text"), {}, {"words": "t"}),
    # exact_match
    ("exact_match", ctx("Paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {}),
    ("exact_match", ctx("paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {}),
    ("exact_match", ctx("paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {"case_sensitive": False}),
    ("exact_match", ctx(4, {"answer": "4"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {}),
    ("exact_match", ctx(4.0, {"answer": 4}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {}),
    ("exact_match", ctx("STRASSE", {"answer": "straße"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {"case_sensitive": False}),
    ("exact_match", ctx(["a", "b"], {"answer": "['a', 'b']"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {}),
    ("exact_match", ctx({"k": [1, 2]}, {"answer": "x"}),
     {"expected": "$.reference.answer", "actual": "$.output.k[0:2]"}, {}),
    ("exact_match", ctx("Paris", {"answer": "Paris"}),
     {"expected": "$.reference.missing", "actual": "$.output"}, {}),
    ("exact_match", ctx("Paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {"expected": "Paris"}),
    ("exact_match", ctx("Paris"), {"actual": "$.output"}, {}),
    ("exact_match", ctx({"a": "x", "b": "y"}, {"answer": "['x', 'y']"}),
     {"expected": "$.reference.answer", "actual": "$.output['a','b']"}, {}),
    ("exact_match", ctx("Paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {"case_sensitive": "no"}),
    # regex: full_match, invalid patterns, unicode
    ("regex", ctx("Order 12345 shipped"), {"text": "$.output"}, {"pattern": r"\d{5}"}),
    ("regex", ctx("Order 12345 shipped"), {"text": "$.output"},
     {"pattern": r"\d{5}", "full_match": True}),
    ("regex", ctx("12345"), {"text": "$.output"}, {"pattern": r"\d{5}", "full_match": True}),
    ("regex", ctx("abc"), {"text": "$.output"}, {"pattern": "([a-"}),
    ("regex", ctx("abc"), {"text": "$.output"}, {"pattern": "(?P<x>a)(?P<x>b)"}),
    ("regex", ctx("abc"), {"text": "$.output"}, {"pattern": "*abc"}),
    ("regex", ctx("Grüße"), {"text": "$.output"}, {"pattern": r"^\w+$"}),
    ("regex", ctx("naïve café"), {"text": "$.output"}, {"pattern": "CAFÉ"}),
    ("regex", ctx(2024), {"text": "$.output"}, {"pattern": r"^20\d\d$", "full_match": True}),
    ("regex", ctx("x"), {"text": "$.nothing"}, {"pattern": "x"}),
    # levenshtein_distance
    ("levenshtein_distance", ctx("kitten", {"a": "sitting"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {}),
    ("levenshtein_distance", ctx("KITTEN", {"a": "kitten"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {}),
    ("levenshtein_distance", ctx("KITTEN", {"a": "kitten"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {"case_sensitive": False}),
    ("levenshtein_distance", ctx("", {"a": "abc"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {}),
    ("levenshtein_distance", ctx("日本語テキスト", {"a": "日本語のテキスト"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {}),
    ("levenshtein_distance", ctx("🙂 smile", {"a": "🙃 smile"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {}),
    ("levenshtein_distance", ctx(1234, {"a": 1243}),
     {"expected": "$.reference.a", "actual": "$.output"}, {}),
    ("levenshtein_distance", ctx("x", {"a": "y"}),
     {"expected": "$.reference.b", "actual": "$.output"}, {}),
    # json_distance: nested and list JSON, parse_strings, type differences, several matches
    ("json_distance", ctx({"a": 1, "b": {"c": [1, 2, 3]}}, {"a": 1, "b": {"c": [1, 2, 4]}}),
     {"expected": "$.reference", "actual": "$.output"}, {}),
    ("json_distance", ctx({"a": 1, "x": 2}, {"a": 1.0, "y": 2}),
     {"expected": "$.reference", "actual": "$.output"}, {}),
    ("json_distance", ctx([1, 2, 3, 4], {"v": [1, 2]}),
     {"expected": "$.reference.v", "actual": "$.output"}, {}),
    ("json_distance", ctx('{"a": [1, {"b": null}]}', {"v": '{"a": [1, {"b": false}]}'}),
     {"expected": "$.reference.v", "actual": "$.output"}, {}),
    ("json_distance", ctx('{"a": 1}', {"v": '{"a": 1}'}),
     {"expected": "$.reference.v", "actual": "$.output"}, {"parse_strings": False}),
    ("json_distance", ctx('{"a": 1}', {"v": {"a": 1}}),
     {"expected": "$.reference.v", "actual": "$.output"}, {"parse_strings": False}),
    ("json_distance", ctx("{'a': 1}", {"v": '{"a": 1}'}),
     {"expected": "$.reference.v", "actual": "$.output"}, {}),
    ("json_distance", ctx('{"a": 1}', {"v": "not json"}),
     {"expected": "$.reference.v", "actual": "$.output"}, {}),
    ("json_distance", ctx({"items": [{"p": 1}, {"p": 2}]}, {"v": [1, 3]}),
     {"expected": "$.reference.v", "actual": "$.output.items[0:2].p"}, {}),
    ("json_distance", ctx({"ü": "ß"}, {"v": {"ü": "ss"}}),
     {"expected": "$.reference.v", "actual": "$.output"}, {}),
    ("json_distance", ctx(True, {"v": 1}), {"expected": "$.reference.v", "actual": "$.output"},
     {}),
    ("json_distance", ctx(None, {"v": None}), {"expected": "$.reference.v", "actual": "$.output"},
     {}),
    ("json_distance", ctx({"a": 1}, {"v": 1}), {"expected": "$.reference.zz", "actual": "$.output"},
     {}),
    ("json_distance", ctx("5", {"v": 5}), {"expected": "$.reference.v", "actual": "$.output"}, {}),
    # a literal wins over a path to the same key, whatever the path's value; the path is still
    # evaluated first, so one that matches nothing is an error even under a literal
    ("exact_match", ctx("Paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {"expected": "Rome"}),
    ("exact_match", ctx("Rome", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output"}, {"expected": "Rome"}),
    ("exact_match", ctx("Paris", {"answer": "Paris"}),
     {"expected": "$.reference.answer", "actual": "$.output", "case_sensitive": "$.metadata.cs"},
     {"case_sensitive": False}),
    ("contains", ctx("Paris", metadata={"words": "paris"}),
     {"text": "$.output", "words": "$.metadata.words"}, {"words": "rome"}),
    ("contains", ctx("Rome", metadata={"words": "paris"}),
     {"text": "$.output", "words": "$.metadata.words"}, {"words": "rome", "text": "in Rome"}),
    ("regex", ctx("abc", metadata={"p": "^a"}), {"text": "$.output", "pattern": "$.metadata.p"},
     {"pattern": "^b"}),
    ("regex", ctx("abc"), {"text": "$.output", "pattern": "$.metadata.missing"},
     {"pattern": "^a"}),
    ("levenshtein_distance", ctx("abc", {"a": "abc"}),
     {"expected": "$.reference.a", "actual": "$.output"}, {"expected": "abd"}),
    ("json_distance", ctx({"a": 1}, {"v": {"a": 1}}),
     {"expected": "$.reference.v", "actual": "$.output"}, {"expected": {"a": 2, "b": 3}}),
    ("json_distance", ctx({"a": 1}, {"v": {"a": 1}}),
     {"expected": "$.reference.v", "actual": "$.output", "parse_strings": "$.metadata.ps"},
     {"parse_strings": True}),
    # keys outside the input schema are ignored, paths (even unmatched ones) and literals alike
    ("exact_match", ctx("x", {"answer": "x"}),
     {"expected": "$.reference.answer", "actual": "$.output", "bogus": "$.nothing.here"},
     {"other": 1}),
    ("contains", ctx("x"), {"text": "$.output", "Words": "$.output"}, {"words": "x", "TEXT": "y"}),
    # schema keys left unmapped are taken from the context by name (a path or literal first)
    ("contains", {"text": "Paris in spring", "words": "spring"}, {}, {}),
    ("contains", {"text": "Paris", "words": "rome", "output": "Rome"}, {"text": "$.output"}, {}),
    ("contains", {"text": "Paris", "words": "rome"}, {}, {"words": "paris"}),
    ("contains", {"text": "Paris", "words": "paris", "case_sensitive": True}, {}, {}),
    ("contains", {"text": 42, "words": 4}, {}, {}),
    ("exact_match", {"expected": "a", "actual": "a", "output": "b"}, {}, {}),
    ("exact_match", {"expected": "a", "actual": "A", "case_sensitive": "false"}, {}, {}),
    ("exact_match", {"expected": "a"}, {}, {}),
    ("regex", {"pattern": "^P", "text": "Paris", "full_match": False}, {}, {}),
    ("levenshtein_distance", {"expected": "abc", "actual": "abd"}, {}, {}),
    ("json_distance", {"expected": {"a": [1, 2]}, "actual": {"a": [1, 3]}}, {}, {}),
    ("json_distance", {"expected": '{"a": 1}', "actual": {"a": 1}, "parse_strings": False},
     {}, {}),
    # parse_strings: every variant (default True; False; not a boolean)
    *[("json_distance", ctx(actual, {"v": expected}),
       {"expected": "$.reference.v", "actual": "$.output"}, literal)
      for expected, actual in [
          ('{"a": 1}', '{"a": 1}'), ('{"a": 1}', {"a": 1}), ({"a": 1}, '{"a": 1}'),
          ('{"a": 1}', '{"a": 2}'), ("[1, 2]", [1, 2]), ("[1, 2]", "[1, 3, 4]"),
          ("5", "5"), ("5", 5), ("5.0", 5), ("null", None), ("true", True),
          ('"quoted"', "quoted"), ("", ""), ("not json", "not json"), ("{bad", "{bad"),
          ('{"a": {"b": [1, {"c": 2}]}}', '{"a": {"b": [1, {"c": 3}]}}'),
          ("NaN", "NaN"), ('{"a": 1, "a": 2}', '{"a": 2}')]
      for literal in ({}, {"parse_strings": True}, {"parse_strings": False})],
    ("json_distance", ctx('{"a": 1}', {"v": '{"a": 1}'}),
     {"expected": "$.reference.v", "actual": "$.output"}, {"parse_strings": "no"}),
    ("json_distance", ctx('{"a": 1}', {"v": '{"a": 1}'}),
     {"expected": "$.reference.v", "actual": "$.output"}, {"parse_strings": 0}),
    # indices and slices: jsonpath-ng 1.8.0 and the latest releases differ on strings, objects and
    # out-of-range indices (mapping.version_dependent)
    ("exact_match", ctx("abc"), {"actual": "$.output[0]"}, {"expected": "a"}),
    ("exact_match", ctx(["a", "b"]), {"actual": "$.output[0]"}, {"expected": "a"}),
    ("exact_match", ctx(["a", "b"]), {"actual": "$.output[-1]"}, {"expected": "b"}),
    ("exact_match", ctx(["a", "b"]), {"actual": "$.output[-5]"}, {"expected": "b"}),
    ("exact_match", ctx(["a", "b"]), {"actual": "$.output[5]"}, {"expected": "b"}),
    ("exact_match", ctx({"k": "v"}), {"actual": "$.output[0]"}, {"expected": "v"}),
    ("exact_match", ctx(["a", "b", "c"]), {"actual": "$.output[0,2]"}, {"expected": "['a', 'c']"}),
    ("contains", ctx("Paris"), {"text": "$.output[0:2]"}, {"words": "paris"}),
    ("contains", ctx({"t": "Paris"}), {"text": "$.output[1:]"}, {"words": "paris"}),
    ("contains", ctx(["x", "Paris", "y"]), {"text": "$.output[1:]"}, {"words": "paris"}),
    ("contains", ctx(["x", "Paris", "y"]), {"text": "$.output[::-1]"}, {"words": "paris"}),
    ("contains", ctx({"*": "star", "a": "Paris"}), {"text": "$.output['*']"}, {"words": "paris"}),
    ("contains", ctx({"a": "Paris", "b": "Rome"}), {"text": "$.output['*']"}, {"words": "rome"}),
]

# Paths that one jsonpath-ng accepts in a mapping and the other refuses ('[*]' is a slice on
# 1.8.0 and the feature 'Wildcard' on the latest releases), or both do ('.*': not a name): each in
# a preview of its own, since a refused path fails the whole request.
ONE_VERSION: list[tuple[str, dict[str, Any], dict[str, str], dict[str, Any]]] = [
    ("contains", ctx({"a": "Paris", "b": "Rome"}), {"text": "$.output[*]"}, {"words": "rome"}),
    ("contains", ctx("Paris"), {"text": "$.output[*]"}, {"words": "paris"}),
    ("contains", ctx(["x", "Paris"]), {"text": "$.output[*]"}, {"words": "paris"}),
    ("contains", ctx({"a": "Paris"}), {"text": "$.output.*"}, {"words": "paris"}),
]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 150
    assert {builtin for builtin, *_ in CORPUS} == {
        "contains", "exact_match", "regex", "levenshtein_distance", "json_distance"}


def server_jsonpath(jsonpath: str | None) -> str:
    """The jsonpath-ng version the server's code runs on: the one it installs with (None), or
    ``jsonpath`` put ahead of it."""
    done = subprocess.run(
        [str(ensure_server_venv().parent / "python"), "-c",
         "import importlib.metadata as m; print(m.version('jsonpath-ng'))"],
        env=server_env(jsonpath), capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


REFUSED = ("refused",)


# The plugin's side run in a process of its own, where jsonpath-ng may be another version.
OURS = """
import asyncio, importlib.metadata, json, sys
from pytest_phoenix_evals._evaluators.builtins import BuiltinEvaluator
from pytest_phoenix_evals._evaluators.mapping import path_problem
from pytest_phoenix_evals._phoenix.wire import output_config
print(json.dumps(importlib.metadata.version("jsonpath-ng")))
out = []
for builtin, schema, configs, context, path, literal in json.load(sys.stdin):
    if any(path_problem(p) for p in path.values()):
        out.append(None)  # our check of the path (mappings in code)
        continue
    evaluator = BuiltinEvaluator(name=builtin, builtin=builtin, input_schema=schema,
                                 output_configs=[output_config(c) for c in configs],
                                 path_mapping=path, literal_mapping=literal)
    (score,) = asyncio.run(evaluator.evaluate(context))
    out.append([score.name, score.label, score.score, score.error])
print(json.dumps(out))
"""


def plugin_results(jsonpath: str | None, cases: list[list[Any]]
                   ) -> tuple[str, list[tuple[Any, ...]]]:
    """The plugin's results on ``cases`` with jsonpath-ng ``jsonpath`` (None: its own)."""
    import sys

    done = subprocess.run([sys.executable, "-c", OURS], input=json.dumps(cases),
                          env=server_env(jsonpath), capture_output=True, text=True,
                          timeout=300, check=True)
    printed, answers = done.stdout.strip().splitlines()[-2:]
    return json.loads(printed), [REFUSED if a is None else tuple(a)
                                 for a in json.loads(answers)]


@pytest.fixture(scope="module")
def plugin_on_both(admin: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The plugin's results on the corpus, by the jsonpath-ng version it ran on: its own and
    the pinned one."""
    builtins = admin.graphql(
        "{ builtInEvaluators { name inputSchema outputConfigs { __typename"
        " ... on CategoricalAnnotationConfig { name optimizationDirection values { label score } }"
        " ... on ContinuousAnnotationConfig { name optimizationDirection lowerBound upperBound }"
        " } } }")["builtInEvaluators"]
    specs = {b["name"]: b for b in builtins}
    cases = [[b, specs[b]["inputSchema"], specs[b]["outputConfigs"], c, p, lit]
             for b, c, p, lit in [*CORPUS, *ONE_VERSION]]
    found = dict([plugin_results(None, cases), plugin_results(PINNED_JSONPATH, cases)])
    assert PINNED_JSONPATH in found, list(found)  # the pinned run really ran on it
    return found


@pytest.mark.parametrize("jsonpath", [None, PINNED_JSONPATH], ids=["installed", "pinned"])
def test_builtins_equal_the_servers(jsonpath: str | None, request: pytest.FixtureRequest,
                                    plugin_on_both: dict[str, list[tuple[Any, ...]]]) -> None:
    """Each server (jsonpath-ng as installed, and 1.8.0) against the plugin on each version:
    on one version nothing may differ; across versions only paths the plugin warns about at
    collection, and some do (or the warning would not be needed)."""
    admin = request.getfixturevalue("admin" if jsonpath is None else "pinned_admin")
    their_version = server_jsonpath(jsonpath)
    # The server really runs that version: an index reads a string's characters on 1.8.0 only.
    (probe,) = admin.preview_builtins([{"builtin": "exact_match", "context": ctx("abc"),
                                        "path": {"actual": "$.output[0]"},
                                        "literal": {"expected": "a"}}])
    assert (probe["error"] is None) == (their_version == "1.8.0"), (their_version, probe)

    server = admin.preview_builtins([
        {"builtin": b, "context": c, "path": p, "literal": lit} for b, c, p, lit in CORPUS])
    assert len(server) == len(CORPUS)
    for builtin, context, path, literal in ONE_VERSION:
        try:
            server += admin.preview_builtins([{"builtin": builtin, "context": context,
                                               "path": path, "literal": literal}])
        except RuntimeError as exc:  # the server's validate_jsonpath refused the path
            assert "Invalid JSONPath expression for key" in str(exc), exc
            server.append({"refused": True})
    expected: list[tuple[Any, ...]] = []
    for theirs in server:
        annotation = theirs.get("annotation") or {}
        expected.append(REFUSED if theirs.get("refused") else (
            theirs["evaluatorName"], annotation.get("label"), annotation.get("score"),
            theirs["error"]))
    for our_version, ours in plugin_on_both.items():
        same, differ = [], []
        for (builtin, context, path, literal), got, want in zip(
                [*CORPUS, *ONE_VERSION], ours, expected, strict=True):
            if got != want:
                line = (f"{builtin} {path} {literal} {context.get('output')!r}:\n"
                        f"  server {want}\n  ours   {got}")
                (differ if any(version_dependent(p) for p in path.values()) else same).append(
                    line)
        where = f"plugin on jsonpath-ng {our_version}, server on {their_version}"
        assert not same, f"{where}:\n" + "\n".join(same)
        if our_version == their_version:
            assert not differ, f"{where}:\n" + "\n".join(differ)
        else:
            assert differ, f"{where}: they agree everywhere"


@pytest.mark.parametrize(("configs", "names"), [
    ([("exact_match", "CATEGORICAL")], ["exact_match"]),
    ([("renamed", "CATEGORICAL")], ["renamed"]),
    ([("first", "CATEGORICAL"), ("second", "CONTINUOUS")], ["first.first", "first.second"]),
])
def test_annotation_names_follow_the_servers_runner(configs: list[tuple[str, str]],
                                                    names: list[str]) -> None:
    from pytest_phoenix_evals._core.naming import annotation_names
    from pytest_phoenix_evals._core.types import OutputConfig

    stored = [OutputConfig(kind=kind, name=name) for name, kind in configs]  # type: ignore
    assert annotation_names(stored) == names


def _categorical(name: str, *values: tuple[str, float], direction: str = "MAXIMIZE"
                 ) -> dict[str, Any]:
    return {"categorical": {"name": name, "optimizationDirection": direction,
                            "values": [{"label": label, "score": score}
                                       for label, score in values]}}


def _continuous(name: str, direction: str = "MAXIMIZE", **bounds: float) -> dict[str, Any]:
    return {"continuous": {"name": name, "optimizationDirection": direction, **bounds}}


ANSWER = "$.output.messages[0].content"
# (built-in, dataset evaluator name, path mapping, literal mapping, output configs as stored:
# None keeps the built-in's own).
CONFIGURED: list[tuple[str, str, dict[str, str], dict[str, Any], list[dict[str, Any]] | None]] = [
    ("exact_match", "kept", {"expected": "$.reference.answer", "actual": ANSWER}, {}, None),
    ("exact_match", "verdict", {"expected": "$.reference.answer", "actual": ANSWER}, {},
     [_categorical("same_answer", ("same", 1.0), ("different", 0.25))]),
    ("exact_match", "inverted", {"expected": "$.reference.answer", "actual": ANSWER}, {},
     [_categorical("inverted", ("no", 0.0), ("yes", 1.0), direction="MINIMIZE")]),
    ("exact_match", "one_label", {"expected": "$.reference.answer", "actual": ANSWER}, {},
     [_categorical("one_label", ("only", 1.0))]),
    ("exact_match", "three_labels", {"expected": "$.reference.answer", "actual": ANSWER}, {},
     [_categorical("three_labels", ("first", 1.0), ("second", 0.5), ("third", 0.1))]),
    ("contains", "hits", {"text": ANSWER, "words": "$.reference.answer"}, {},
     [_continuous("hits", lowerBound=0, upperBound=1)]),
    ("contains", "found", {"text": ANSWER, "words": "$.reference.answer"}, {},
     [_categorical("found", ("yes", 1.0), ("no", 0.0)), _continuous("found_score")]),
    ("regex", "format", {"text": ANSWER}, {"pattern": "^[A-Z]"},
     [_categorical("starts_upper", ("upper", 1.0), ("lower", 0.0)),
      _continuous("upper_score", lowerBound=0),
      _categorical("third", ("a", 2.0), ("b", -1.0), direction="NONE")]),
    ("regex", "broken", {"text": ANSWER}, {"pattern": "(["},
     [_categorical("broken", ("ok", 1.0), ("bad", 0.0))]),
    ("levenshtein_distance", "edits", {"expected": "$.reference.answer", "actual": ANSWER}, {},
     [_continuous("edits", "MINIMIZE", lowerBound=0)]),
    ("levenshtein_distance", "edit_labels", {"expected": "$.reference.answer", "actual": ANSWER},
     {}, [_categorical("edit_labels", ("close", 1.0), ("far", 0.0))]),
    ("json_distance", "json_kept", {"expected": "$.reference", "actual": "$.reference"}, {},
     None),
    ("json_distance", "json_two", {"expected": "$.reference", "actual": "$.output"}, {},
     [_continuous("diffs", "MINIMIZE"), _continuous("diffs_again", "MAXIMIZE", upperBound=9)]),
    ("exact_match", "unmatched", {"expected": "$.reference.nope", "actual": ANSWER}, {},
     [_categorical("unmatched", ("same", 1.0), ("different", 0.0))]),
]


def test_configured_builtins_equal_the_servers_runner(admin: Any, judge: Any) -> None:
    """Built-ins attached with renamed, customised, several or kept output configs, run by the
    server's own experiment runner over a dataset (a prompt task answered by the stand-in
    model), against the plugin's evaluators built from the same stored nodes on the same
    contexts, run here and with --phoenix-evaluate-on=server (the server's preview runs a
    built-in on its own config only): equal annotation names, labels, scores and errors."""
    from pytest_phoenix_evals._evaluators.attached import AttachedEvaluators
    from pytest_phoenix_evals._phoenix.gateway import Gateway

    judge.configure(answers=[["France", "Paris"], ["2 + 2", "four"], ["Hamlet", "shakespeare"]])
    examples = [
        {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"},
         "metadata": {}},
        {"input": {"question": "What is 2 + 2?"}, "output": {"answer": "4"}, "metadata": {}},
        {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"},
         "metadata": {}},
    ]
    dataset_id = admin.create_dataset("configured-builtins", examples)
    ids = [admin.attach_builtin(dataset_id, builtin, name, path, literal, output_configs=configs)
           for builtin, name, path, literal, configs in CONFIGURED]
    try:
        experiment = admin.run_server_experiment(
            dataset_id, ids, [{"role": "user", "content": "{{question}}"}])
    finally:
        judge.reset()  # the stand-in is shared by the session's tests
    theirs = sorted((a["example_id"], a["name"], a["label"], a["score"], a["error"])
                    for a in admin.annotations(experiment))

    gateway = Gateway(str(admin.http.base_url).rstrip("/"), "test")
    runs = admin.runs(experiment)

    async def evaluate(evaluate_on: str) -> list[tuple[Any, ...]]:
        evaluators = AttachedEvaluators(gateway, evaluate_on=evaluate_on).for_dataset(dataset)
        assert sorted(e.name for e in evaluators) == sorted(name for _, name, *_ in CONFIGURED)
        found = []
        for run in runs:
            example = by_id[run["dataset_example_id"]]
            context = {"input": example.input, "reference": example.reference,
                       "output": run["output"], "metadata": example.metadata}
            for evaluator in evaluators:
                for score in await evaluator.evaluate(context, example):
                    found.append((example.id, score.name, score.label, score.score,
                                  score.error))
        await gateway.aclose()  # on the loop that used it
        return sorted(found)

    try:
        dataset = gateway.load_dataset("configured-builtins")
        by_id = {example.id: example for example in dataset.examples}
        here = asyncio.run(evaluate("local"))
        on_server = asyncio.run(evaluate("server"))  # --phoenix-evaluate-on=server
    finally:
        gateway.close()
    assert len(theirs) == 3 * 18  # every config of every evaluator, for each example
    assert here == theirs
    assert on_server == theirs
    # The corpus reaches what it is meant to: renamed, customised and several configs.
    names = {name for _, name, *_ in theirs}
    assert {"exact_match", "json_distance", "same_answer", "found.found", "found.found_score",
            "starts_upper.third", "diffs.diffs_again"} <= names
    assert {label for *_, label, _, _ in theirs} >= {"same", "different", "yes", "upper", "a",
                                                     "only", "second", None}
