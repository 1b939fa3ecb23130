"""Paths in mappings written in code get the server's syntax check, with its wording: compared
here with the server's own ``validate_jsonpath``, run in the Phoenix server's environment."""

from __future__ import annotations

import json
import subprocess

import pytest
from pytest_phoenix_evals._evaluators.mapping import path_problem

from phoenix_server import ensure_server_venv

PATHS = [
    "$.input", "input.question", "$.output.answer", "$['@']", "$[\"@\"]", "$.items[0]",
    "$[-1]", "$.items[0:5]", "$.items[::2]", "$.a.b.c", "_private.x", "$.a1.b2",
    "$..answer", "..x", "@", "$.@", "a.@.b", "$.0abc", "field.0", "123", "123.foo",
    "$.a | $.b", "$.a & $.b", "$.a where $.b", "`this`", "$.a.`this`", "$.output[*]",
    "$.a[?(@.b)]", "", "a" * 1001, "$.", "$[", "$.a[", "$.'quoted'", "$['x y']",
]

CHECK = """
import json, sys
from phoenix.db.types.evaluators import validate_jsonpath
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
import json, sys
from pytest_phoenix_evals._evaluators.mapping import path_problem
print(json.dumps([path_problem(path) for path in json.load(sys.stdin)]))
"""


def _answers(python: str, script: str) -> list[str | None]:
    # Each side in a new process, the paths in the same order: jsonpath-ng's parser (ply)
    # keeps state between parses, so a shared history keeps the comparison fair.
    answer = subprocess.run([python, "-c", script], input=json.dumps(PATHS),
                            capture_output=True, text=True, timeout=300, check=True)
    found: list[str | None] = json.loads(answer.stdout.strip().splitlines()[-1])
    return found


def test_code_mappings_get_the_servers_check_and_wording() -> None:
    import sys

    server = _answers(str(ensure_server_venv().parent / "python"), CHECK)
    ours = _answers(sys.executable, OURS)
    assert ours[0] is None and path_problem("$.input") is None
    assert [(p[:30], o) for p, o in zip(PATHS, ours, strict=True)] == \
        [(p[:30], s) for p, s in zip(PATHS, server, strict=True)]


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
