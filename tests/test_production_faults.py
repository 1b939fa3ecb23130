"""Production judging keeps the promises of a dataset run under faults (issue 24): nothing lost,
never judged twice, a person's correction never overwritten, no traceback.

Real parts only: spans exported over OTLP into the worker's Phoenix (``span_app.emit``), the
plugin run by ``pytester``, faults from the fault proxy in front of the real server, and a
second real Phoenix server where a test needs "another server".
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fault_proxy import FaultProxy, Rule
from phoenix_server import start_server
from progress import start_saying
from span_app import annotate, emit, span_annotations, unique
from stand_in_judge import StandInJudge

CONVERSATIONS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "What is the capital of Spain?", "answer": "Barcelona"},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare"},
]
WRITE = r"^POST /v1/span_annotations"
IDENTIFIER = "pytest-phoenix-evals"

CONFTEST = """
from pytest_phoenix_evals import evaluator

@evaluator(name="known_wrong")
def known_wrong(output):
    return output != "Barcelona"

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [known_wrong]
"""


@pytest.fixture
def prod(pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
         monkeypatch: pytest.MonkeyPatch) -> str:
    judge.configure(rules=[["Barcelona", "incorrect"], ["<answer>", "correct"]])
    pytester.makeconftest(CONFTEST)
    # Four attempts per request, as in production, but with short waits between them.
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.05, 0.1, 0.2))
    # A cache folder of its own (the claims are on the server since issue 26).
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    return phoenix_env


def run(pytester: pytest.Pytester, project: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                              "-p", "no:cacheprovider", *args)


def upload_pending(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider", *args)


def journal_files(pytester: pytest.Pytester) -> list[Path]:
    return sorted((pytester.path / ".phoenix-evals" / "journal").glob("*.jsonl"))


def ours(url: str, project: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """This plugin's annotations (identifier ours, any kind) by span id."""
    return {r["span_id"]: r for r in span_annotations(url, project, ids)
            if r["identifier"] == IDENTIFIER}


def journaled_run(pytester: pytest.Pytester, url: str, project: str, *args: str
                  ) -> pytest.RunResult:
    """A run whose annotation writes all fail (503 before forwarding): all journaled."""
    with FaultProxy(url, [Rule(WRITE, "before")]) as proxy:
        result = run(pytester, project, f"--phoenix-url={proxy.url}", *args)
    assert result.ret == 1, result.stdout.str()
    assert len(journal_files(pytester)) == 1
    return result


def no_traceback(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text


def project_id(url: str, name: str) -> str:
    answer = httpx.get(f"{url}/v1/projects/{name}", timeout=10)
    answer.raise_for_status()
    return str(answer.json()["data"]["id"])


# --- item 1: another server with a project of the same id -----------------------------------


@pytest.fixture(scope="module")
def other_phoenix(tmp_path_factory: pytest.TempPathFactory,
                  pytestconfig: pytest.Config) -> Iterator[str]:
    """A second real Phoenix server (its database made now, after the worker's)."""
    workdir = tmp_path_factory.mktemp("phoenix-other")
    server = start_saying(pytestconfig, "starting a second Phoenix server",
                          lambda progress: start_server(workdir, progress=progress))
    try:
        yield server.url
    finally:
        server.stop()


def test_upload_pending_refuses_another_server_with_a_project_of_the_same_id(
        pytester: pytest.Pytester, prod: str, other_phoenix: str,
        request: pytest.FixtureRequest) -> None:
    project = unique("twin")
    sent = emit(prod, project, CONVERSATIONS)
    # Journaled through a proxy that refuses every write; it stays up (forwarding all) for
    # the printed command at the end, which names its URL.
    proxy = FaultProxy(prod, [Rule(WRITE, "before")]).__enter__()
    request.addfinalizer(lambda: proxy.__exit__(None, None, None))
    assert run(pytester, project, f"--phoenix-url={proxy.url}").ret == 1
    assert len(journal_files(pytester)) == 1
    # The other server gets a project of the same id, and even the same name.
    wanted = project_id(prod, project)
    rowid = int(base64.b64decode(wanted).decode().split(":")[1])
    with httpx.Client(base_url=other_phoenix, timeout=10) as client:
        last, made = 1, ""  # a new server holds only the project 'default' (row 1)
        while last < rowid:
            name = project if last == rowid - 1 else unique("filler")
            answer = client.post("/v1/projects", json={"name": name})
            answer.raise_for_status()
            made = answer.json()["data"]["id"]
            last = int(base64.b64decode(made).decode().split(":")[1])
    assert made == wanted and project_id(other_phoenix, project) == wanted

    elsewhere = upload_pending(pytester, f"--phoenix-url={other_phoenix}")
    text = elsewhere.stdout.str()
    assert elsewhere.ret == 1, text
    assert "journaled for another Phoenix server" in text
    # (journaled through the proxy: that URL is the one it names)
    printed = re.search(r"it was journaled for http://127\.0\.0\.1:\d+: run `(pytest "
                        r"--phoenix-upload-pending --phoenix-url=http://127\.0\.0\.1:\d+)` to "
                        r"write it there", text)
    assert printed, text
    assert "dropped" not in text
    no_traceback(elsewhere)
    assert len(journal_files(pytester)) == 1  # kept

    # The server it was meant for: the printed command, run as printed (the proxy now
    # forwards everything).
    assert printed[1].endswith(proxy.url)
    proxy.rules.clear()
    home = pytester.runpytest(*shlex.split(printed[1])[1:])
    assert home.ret == 0, home.stdout.str()
    assert "3 pending case(s) uploaded" in home.stdout.str()
    assert len(ours(prod, project, [s.llm_id for s in sent])) == 3
    assert not journal_files(pytester)


# --- item 2: a 404 that is not Phoenix's answer ----------------------------------------------


def test_a_404_from_a_proxy_is_not_taken_for_deleted_spans(
        pytester: pytest.Pytester, prod: str) -> None:
    project = unique("ingress")
    sent = emit(prod, project, CONVERSATIONS)
    with FaultProxy(prod, [Rule(WRITE, "not-found")]) as proxy:
        result = run(pytester, project, f"--phoenix-url={proxy.url}")
    text = result.stdout.str()
    assert proxy.counts["not-found"] >= 1
    assert result.ret == 1, text
    assert "deleted from Phoenix" not in text
    assert "annotations not written" in text
    assert "pytest --phoenix-upload-pending" in text
    assert len(journal_files(pytester)) == 1
    no_traceback(result)

    # The same 404 during upload-pending: still kept, exit 1.
    with FaultProxy(prod, [Rule(WRITE, "not-found")]) as proxy:
        still = upload_pending(pytester, f"--phoenix-url={proxy.url}")
    assert still.ret == 1, still.stdout.str()
    assert "dropped" not in still.stdout.str()
    assert len(journal_files(pytester)) == 1

    done = upload_pending(pytester)
    assert done.ret == 0, done.stdout.str()
    assert len(ours(prod, project, [s.llm_id for s in sent])) == 3


# --- item 6: journaled results count as judged; never written over newer ones ----------------


def test_results_waiting_in_the_journal_are_not_judged_again(
        pytester: pytest.Pytester, prod: str, judge: StandInJudge) -> None:
    project = unique("waiting")
    sent = emit(prod, project, CONVERSATIONS)
    journaled_run(pytester, prod, project, "--phoenix-evaluators=qa_correctness")
    calls = len(judge.requests)
    assert calls == 3

    again = run(pytester, project, "--phoenix-evaluators=qa_correctness")
    text = again.stdout.str()
    assert again.ret == 0, text
    assert f"project {project!r}: 0 span(s) to judge" in text
    assert "3 span(s) have results waiting in the journal, not judged again: " \
           "pytest --phoenix-upload-pending" in text
    assert len(judge.requests) == calls  # no paid call twice

    # Meanwhile a newer result of ours reached Phoenix for one span (another machine's run):
    # upload-pending leaves it, and writes the others.
    newer = sent[0].llm_id
    time.sleep(1.1)  # the server's clock keeps seconds
    annotate(prod, newer, "known_wrong", "newer", identifier=IDENTIFIER, kind="CODE")
    done = upload_pending(pytester)
    assert done.ret == 0, done.stdout.str()
    assert "Phoenix has a newer one" in done.stdout.str()
    rows = [r for r in span_annotations(prod, project, [s.llm_id for s in sent])
            if r["identifier"] == IDENTIFIER]
    labels = {(r["span_id"], r["name"]): r["result"].get("label") for r in rows}
    assert labels[(newer, "known_wrong")] == "newer"
    assert labels[(sent[1].llm_id, "known_wrong")] == "False"
    assert labels[(sent[1].llm_id, "qa_correctness")] == "incorrect"
    assert len(labels) == 6


# --- item 7: two runs at once, named differently ---------------------------------------------


def test_two_runs_at_once_named_differently_do_not_judge_the_same_spans(
        pytester: pytest.Pytester, prod: str, judge: StandInJudge) -> None:
    project = unique("claims")
    sent = emit(prod, project, CONVERSATIONS * 3)
    pytester.makeconftest(CONFTEST.replace('    return output != "Barcelona"',
                                           '    import time; time.sleep(0.5)\n'
                                           '    return output != "Barcelona"'))
    common = [sys.executable, "-m", "pytest", "--phoenix-settle=0s", "-p", "no:cacheprovider",
              "--phoenix-concurrency=1", "--phoenix-evaluators=qa_correctness", "-q"]
    tmp_a, tmp_b = pytester.mkdir("tmp-a"), pytester.mkdir("tmp-b")

    with FaultProxy(prod) as proxy:  # the same server by another URL
        first = subprocess.Popen(
            [*common, f"--phoenix-project={project}", f"--phoenix-url={prod}"],
            cwd=pytester.path, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "TMPDIR": str(tmp_a)})
        time.sleep(3)  # the first has listed and claimed, and is judging
        second = subprocess.run(
            [*common, f"--phoenix-project={project_id(prod, project)}",
             f"--phoenix-url={proxy.url}"],
            cwd=pytester.path, stdout=subprocess.PIPE, text=True, timeout=300,
            env={**os.environ, "TMPDIR": str(tmp_b)})
        out_first, _ = first.communicate(timeout=300)
    listed = [int(found.group(1)) for out in (out_first, second.stdout)
              if (found := re.search(r"(\d+) span\(s\) to judge", out))]
    assert len(listed) == 2, (out_first, second.stdout)
    assert sum(listed) == 9, (out_first, second.stdout)
    assert len(judge.requests) == 9  # every span judged once, by one of the runs
    assert len(ours(prod, project, [s.llm_id for s in sent])) == 9


# --- item 10 (part): clear messages, no traceback --------------------------------------------


def test_a_journal_file_of_the_other_kind_is_named_and_skipped(
        pytester: pytest.Pytester, prod: str) -> None:
    project = unique("kinds")
    sent = emit(prod, project, CONVERSATIONS)
    journaled_run(pytester, prod, project)
    [real] = journal_files(pytester)
    folder = real.parent
    # Annotation records in a file named as an experiment's; an experiment's in one named
    # as annotations.
    misnamed = folder / "RXhwZXJpbWVudDoxMjM0NQ==-copy.jsonl"
    misnamed.write_bytes(real.read_bytes())
    experiment = folder / "annotations-span-elsewhere.jsonl"
    experiment.write_text(json.dumps({
        "type": "case", "key": "ex1", "experiment": {"id": "RXhwZXJpbWVudDoxMjM0NQ==",
                                                     "url": "http://x"},
        "run": {}, "evaluations": []}) + "\n")

    done = upload_pending(pytester)
    text = done.stdout.str()
    no_traceback(done)
    assert done.ret == 1, text
    assert f"{misnamed}: holds 3 record(s) of span or trace annotations" in text
    assert f"{experiment}: holds 1 record(s) of experiment results" in text
    assert "skipped and kept" in text
    assert misnamed.exists() and experiment.exists() and not real.exists()
    assert len(ours(prod, project, [s.llm_id for s in sent])) == 3  # the others went in


# --- item 14: a person's correction is never rejudged ----------------------------------------


def test_rejudge_never_overwrites_a_persons_correction_of_ours(
        pytester: pytest.Pytester, prod: str) -> None:
    project = unique("corrected")
    sent = emit(prod, project, CONVERSATIONS)
    first = run(pytester, project)
    assert first.ret == 1, first.stdout.str()  # Barcelona is wrong
    corrected = sent[1].llm_id
    # The UI's editor keeps our identifier and makes the annotation a person's.
    annotate(prod, corrected, "known_wrong", "actually fine", identifier=IDENTIFIER,
             kind="HUMAN")

    again = run(pytester, project, "--phoenix-rejudge", "-v")
    text = again.stdout.str()
    assert corrected not in text.replace(f"project {project!r}", "")  # not a case
    again.assert_outcomes(passed=2)
    assert "1 span(s) carry a person's correction of this plugin's annotation " \
           "(annotator kind HUMAN): never judged again" in text
    row = ours(prod, project, [corrected])[corrected]
    assert row["annotator_kind"] == "HUMAN" and row["result"]["label"] == "actually fine"


# --- issue 28: a judge's trace that cannot be delivered is said, and fails the run ----------


def test_judge_spans_that_cannot_reach_phoenix_are_counted_and_fail_the_exit_status(
        pytester: pytest.Pytester, prod: str) -> None:
    """The trace endpoint refuses every post (a proxy's 404): the annotations are all
    written, the judge calls' spans are counted as lost in the summary, and the exit status is
    not 0 (a judgment whose trace is missing cannot be audited in Phoenix)."""
    project = unique("untraced")
    sent = emit(prod, project, CONVERSATIONS)
    with FaultProxy(prod, [Rule(r"^POST /v1/traces", "not-found")]) as proxy:
        result = run(pytester, project, f"--phoenix-url={proxy.url}",
                     "--phoenix-evaluators=qa_correctness")
    text = result.stdout.str()
    assert proxy.counts["not-found"] >= 1
    assert result.ret == 1, text
    # 3 judge calls x 2 spans (Evaluator, ChatCompletion), refused and not retried
    assert "6 of 6 trace span(s) of tasks and judges did not reach Phoenix" in text, text
    assert "exit status 1: trace spans are not all in Phoenix" in text, text
    no_traceback(result)
    written = ours(prod, project, [s.llm_id for s in sent])
    assert len(written) == 3  # the annotations are not affected
    assert not journal_files(pytester)
