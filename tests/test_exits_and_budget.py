"""The same promises in every mode (issue 24): exit statuses, interrupts, the judges' budget
and text that UTF-8 cannot encode, against a real Phoenix, the stand-in judge over real HTTP
and, where a fault is involved, the fault proxy in front of the real server.

- a scheduled production run with a gate and nothing new to judge exits 0, the gate said to be
  not applicable; a dataset run that ran cases with a gate on a missing annotation still fails;
- SIGTERM while the session waits for its uploads ends as Ctrl-C does: the summary, the journal
  kept, exit status 2 (interrupted), no traceback;
- a duration too large for --phoenix-since, --phoenix-until or --phoenix-settle is a usage
  error naming the option and the largest value accepted;
- --phoenix-budget-usd holds when the judge answers 429: every attempt is checked, and a call
  in flight holds its estimate;
- spans whose text holds lone surrogates are judged (escaped as the dataset path escapes them)
  and the results file is written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_phoenix_evals._run.sinks.journal import read_journal

from fault_proxy import FaultProxy, Rule
from span_app import emit, span_annotations, unique, wait_for
from stand_in_judge import StandInJudge

PASSING = """
from pytest_phoenix_evals import evaluator

@evaluator(name="answered")
def answered(output):
    return bool(output)

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [answered]
"""

CONVERSATIONS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare"},
]


# --- 8: a gate over no cases ----------------------------------------------------------------

def test_a_gate_with_nothing_new_to_judge_is_not_applicable_and_the_run_exits_0(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    pytester.makeconftest(PASSING)
    project = unique("gated-schedule")
    emit(phoenix_env, project, CONVERSATIONS)
    args = (f"--phoenix-project={project}", "--phoenix-settle=0s",
            "--phoenix-fail-under=answered=0.9", "-p", "no:cacheprovider")
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=2)
    assert first.ret == 0, first.stdout.str()
    # The next scheduled run: nothing new, so the gate has no case to judge.
    again = pytester.runpytest(*args)
    text = again.stdout.str()
    assert f"project {project!r}: 0 span(s) to judge" in text
    assert "not applicable" in text and "no annotation named" not in text, text
    assert again.ret == 0, text


def test_a_gate_on_a_missing_annotation_still_fails_a_run_that_ran_cases(
        pytester: pytest.Pytester, qa_app: None) -> None:
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                                "--phoenix-no-upload", "--phoenix-fail-under=nosuch=0.5",
                                "-p", "no:cacheprovider")
    text = result.stdout.str()
    assert "no annotation named 'nosuch'" in text and "not applicable" not in text
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# --- 9: SIGTERM while the session waits for its uploads -------------------------------------

RUNS = r"^POST /v1/experiments/[^/]+/runs"


def _pump(process: subprocess.Popen[str], marker: str, seen: list[str]
          ) -> tuple[threading.Thread, threading.Event]:
    """Collect the process's output lines into ``seen`` (in a thread); the event is set once
    a line holds ``marker``."""
    found = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                found.set()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread, found


def test_a_sigterm_while_the_uploads_are_awaited_ends_as_ctrl_c_does(
        pytester: pytest.Pytester, qa_app: None, phoenix_env: str) -> None:
    # Every run post is held 60 s by the proxy: the cases finish, the session waits at its end.
    with FaultProxy(phoenix_env, [Rule(RUNS, "slow", delay=60)]) as proxy:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "--phoenix-dataset=qa",
             "--phoenix-task=qa_app:answer", f"--phoenix-url={proxy.url}",
             f"--phoenix-experiment-name={unique('sigterm-wait')}", "-p", "no:cacheprovider"],
            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        seen: list[str] = []
        reader, waiting = _pump(process, "upload(s) to finish", seen)
        try:
            assert waiting.wait(90), "".join(seen)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)  # a CI job's timeout
            process.wait(timeout=60)
        finally:
            process.kill()
            reader.join(10)
            assert process.stdout is not None
            process.stdout.close()
    out = "".join(seen)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert "phoenix evals" in out, out  # the summary came
    assert "interrupted (SIGTERM) while waiting for the uploads" in out, out
    # The server was named on the command line: the printed command names it too.
    assert "run `pytest --phoenix-upload-pending --phoenix-url=http://" in out, out
    records = [record for path in (pytester.path / ".phoenix-evals" / "journal").glob("*.jsonl")
               for record in read_journal(path)[0]]
    assert len(records) == 4, out  # every result kept for --phoenix-upload-pending


# --- 10: durations too large -------------------------------------------------------------------

@pytest.mark.parametrize(("option", "value"), [
    ("--phoenix-since", "999999999d"), ("--phoenix-since", "1000000000d"),
    ("--phoenix-until", "99999999h"), ("--phoenix-settle", "999999999d"),
    ("--phoenix-settle", "99999999999999999999")])
def test_a_duration_too_large_is_a_usage_error_naming_the_largest(
        pytester: pytest.Pytester, option: str, value: str) -> None:
    result = pytester.runpytest("--phoenix-project=somewhere", f"{option}={value}",
                                "-p", "no:cacheprovider")
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + err
    assert "INTERNALERROR" not in result.stdout.str() + err and "Traceback" not in err
    assert f"ERROR: {option}: {value!r} is too long: at most 36500d (100 years)" in err, err


# --- 11: the budget under 429s -----------------------------------------------------------------

JUDGES = """
from pytest_phoenix_evals import qa_correctness, hallucination

def pytest_phoenix_evals_evaluators(config, dataset):
    return [qa_correctness(), hallucination()]
"""


def _cost(body: dict[str, Any], price: float) -> float:
    """What the stand-in judge's answer to ``body`` costs at ``price`` USD per 1M tokens."""
    usage = StandInJudge.completion(0, body, [])["usage"]
    return float(usage["total_tokens"]) * price / 1_000_000


def test_the_budget_holds_when_the_judge_answers_429(
        pytester: pytest.Pytester, qa_app: None, judged_dataset: dict[str, Any],
        judge: StandInJudge) -> None:
    pytester.makeconftest(JUDGES)
    run = ("--phoenix-dataset=judged", "--phoenix-task=qa_app:answer", "--phoenix-no-upload",
           "--phoenix-judge-model=m", "--phoenix-judge-price=m=1000/1000",
           "--phoenix-judge-concurrency=2", "-p", "no:cacheprovider")
    pytester.runpytest(*run)  # what each of the six calls costs, unhindered
    costs = [_cost(r["body"], 1000) for r in judge.requests]
    assert len(costs) == 6
    budget = 2 * min(costs)  # worth two calls
    judge.reset()
    judge.configure(fail_429=6, retry_after="0.2")  # every call's first attempt
    result = pytester.runpytest(*run, f"--phoenix-budget-usd={budget}")
    paid = [_cost(r["body"], 1000) for r in judge.requests if r["outcome"] == "ok"]
    assert "is spent" in result.stdout.str(), result.stdout.str()
    # At most the budget and the one call that crossed it; never a call per waiting case.
    assert sum(paid) <= budget + max(costs), (paid, budget)
    assert len(paid) <= 3, paid


# --- 13: lone surrogates in spans --------------------------------------------------------------

def _emit_json_input(url: str, project: str, question: str, answer: str) -> str:
    """One LLM span whose input is JSON (``input.value`` with its mime type), sent over OTLP;
    its id once Phoenix lists it."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import format_span_id

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    try:
        with provider.get_tracer("surrogates").start_as_current_span("ChatCompletion", attributes={
                "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                # json.dumps escapes the lone surrogate (\\ud83d): valid UTF-8 on the wire.
                "input.value": json.dumps({"question": question}),
                "input.mime_type": "application/json", "output.value": answer}) as span:
            span_id = format_span_id(span.get_span_context().span_id)
    finally:
        provider.shutdown()
    wait_for(url, project, [span_id])
    return span_id


def test_spans_with_lone_surrogates_are_judged_and_the_results_file_written(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge) -> None:
    judge.configure(rules=[["<answer>", "correct"]])
    project = unique("surrogates")
    # A UTF-16 pair cut in half: a lone surrogate once the span's JSON input is read.
    span_id = _emit_json_input(phoenix_env, project, "What is the capital of France? \ud83d",
                               "Paris")
    result = pytester.runpytest(
        f"--phoenix-project={project}", "--phoenix-settle=0s", "-p", "no:cacheprovider",
        "--phoenix-evaluators=qa_correctness", "--phoenix-reference=$.output",
        "--phoenix-results=out.jsonl")
    text = result.stdout.str()
    assert "UnicodeEncodeError" not in text, text
    assert len(judge.requests) == 1, text
    assert "\\ud83d" in json.dumps(judge.requests[0]["body"]), judge.requests[0]["body"]
    result.assert_outcomes(passed=1)
    written = [r for r in span_annotations(phoenix_env, project, [span_id])
               if r["name"] == "qa_correctness"]
    assert len(written) == 1 and written[0]["result"]["label"] == "correct", written
    out = Path(pytester.path / "out.jsonl")
    assert out.is_file(), text
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert any("\\ud83d" in row["input"] for row in rows), rows
