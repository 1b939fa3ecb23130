"""Attached code evaluators run here: warm worker processes, a time limit on the evaluator's own
time. No Phoenix server needed."""

from __future__ import annotations

import asyncio
import json

import pytest
from pytest_phoenix_evals._core.types import OutputConfig
from pytest_phoenix_evals._evaluators.sandbox import LocalCode

BOOLEAN = OutputConfig(kind="CATEGORICAL", name="check", direction="MAXIMIZE",
                       values=(("True", 1.0), ("False", 0.0)))
FREE = OutputConfig(kind="FREEFORM", name="check")


def _run(code: LocalCode, output: str = "x") -> list[str | None]:
    context = {"input": {}, "reference": {}, "output": output, "metadata": {}}
    scores = asyncio.run(code.evaluate(context))
    return [s.error or s.label for s in scores]


def test_workers_stay_warm_and_the_limit_counts_only_the_evaluators_time() -> None:
    # 0.2 s is less than a Python process takes to start on a busy machine: calls pass only
    # because start-up is not counted, and the same process serves call after call.
    code = LocalCode(name="check", output_configs=[FREE], timeout=0.2, source=(
        "import os\nSEEN = []\ndef evaluate(output):\n    print('noise')\n"
        "    return str(os.getpid())\n"))
    try:
        pids = {_run(code)[0] for _ in range(5)}
    finally:
        asyncio.run(code.aclose())
    assert len(pids) == 1 and all(p and p.isdigit() for p in pids), pids


def test_a_slow_call_is_stopped_and_the_next_gets_a_fresh_worker() -> None:
    code = LocalCode(name="check", output_configs=[BOOLEAN], timeout=0.5, source=(
        "import time\ndef evaluate(output):\n    if output == 'slow':\n        time.sleep(30)\n"
        "    return True\n"))
    try:
        assert _run(code, "slow") == ["code evaluator 'check' timed out after 0.5 s "
                                      "(--phoenix-code-timeout)"]
        assert _run(code, "fast") == ["True"]
    finally:
        asyncio.run(code.aclose())


@pytest.mark.parametrize(("source", "expected"), [
    ("def evaluate(output):\n    raise ValueError('boom')\n", "ValueError: boom"),
    ("import os\ndef evaluate(output):\n    os._exit(3)\n",
     "code evaluator 'check' exited with code 3: no output"),
    ("def evaluate(output):\n    return {'label': 'True', 'extra': 1}\n",
     "Unrecognized keys in output dict: ['extra']. Accepted dict keys are: ['explanation', "
     "'label', 'score']"),
])
def test_failures_are_errors_that_say_what_happened(source: str, expected: str) -> None:
    code = LocalCode(name="check", output_configs=[BOOLEAN], timeout=5, source=source)
    try:
        assert _run(code) == [expected]
    finally:
        asyncio.run(code.aclose())


def test_the_worker_protocol_is_one_json_line_each_way() -> None:
    code = LocalCode(name="check", output_configs=[BOOLEAN], timeout=5,
                     source="def evaluate(output):\n    print('{}')\n    return output\n")
    try:
        assert code._workers.run(json.dumps({"source": code.source,
                                             "inputs": {"output": "True"}}), 5, "check") == "True"
    finally:
        asyncio.run(code.aclose())
