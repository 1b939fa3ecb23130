"""Our built-in evaluators against the server's own, through its evaluatorPreviews mutation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest_phoenix_evals._evaluators.builtins import BuiltinEvaluator
from pytest_phoenix_evals._phoenix.wire import output_config


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
]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 50
    assert {builtin for builtin, *_ in CORPUS} == {
        "contains", "exact_match", "regex", "levenshtein_distance", "json_distance"}


def _local(builtin: str, schema: dict[str, Any], configs: list[dict[str, Any]],
           context: dict[str, Any], path: dict[str, str], literal: dict[str, Any]) -> Any:
    evaluator = BuiltinEvaluator(name=builtin, builtin=builtin, input_schema=schema,
                                 output_configs=[output_config(c) for c in configs],
                                 path_mapping=path, literal_mapping=literal)
    (score,) = asyncio.run(evaluator.evaluate(context))
    return score


def test_builtins_equal_the_servers(admin: Any) -> None:
    builtins = admin.graphql(
        "{ builtInEvaluators { name inputSchema outputConfigs { __typename"
        " ... on CategoricalAnnotationConfig { name optimizationDirection values { label score } }"
        " ... on ContinuousAnnotationConfig { name optimizationDirection lowerBound upperBound }"
        " } } }")["builtInEvaluators"]
    specs = {b["name"]: b for b in builtins}
    server = admin.preview_builtins([
        {"builtin": b, "context": c, "path": p, "literal": lit} for b, c, p, lit in CORPUS])
    assert len(server) == len(CORPUS)
    mismatches = []
    for (builtin, context, path, literal), theirs in zip(CORPUS, server):
        spec = specs[builtin]
        ours = _local(builtin, spec["inputSchema"], spec["outputConfigs"], context, path,
                      literal)
        annotation = theirs["annotation"] or {}
        expected = (theirs["evaluatorName"], annotation.get("label"), annotation.get("score"),
                    theirs["error"])
        got = (ours.name, ours.label, ours.score, ours.error)
        if got != expected:
            mismatches.append(f"{builtin} {path} {literal} {context['output']!r}:\n"
                              f"  server {expected}\n  ours   {got}")
    assert not mismatches, "\n".join(mismatches)


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
