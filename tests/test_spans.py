"""Production traces: a project's spans judged as test cases, against a real Phoenix with spans
ingested over OTLP, the stand-in judge over real HTTP, and annotations written back.

Each test sends its own spans into a project of its own (``span_app.emit``) and runs pytest with
``--phoenix-project`` in a pytester directory; what the plugin wrote is read back from Phoenix.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_phoenix_evals._core.window import in_sample

from fault_proxy import FaultProxy, Rule
from phoenix_admin import PhoenixAdmin
from span_app import annotate, emit, span_annotations, unique
from stand_in_judge import StandInJudge
from usage import assert_usage_errors

CONVERSATIONS = [
    {"question": "What is the capital of France?", "answer": "Paris",
     "documents": ["Paris is the capital of France."], "metadata": {"user": "u1"}},
    {"question": "What is the capital of Spain?", "answer": "Barcelona",
     "documents": ["Madrid is the capital of Spain."], "metadata": {"user": "u2"}},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare",
     "documents": ["Hamlet is a tragedy by William Shakespeare."]},
]

# The stand-in judge: an answer naming Barcelona is wrong, every other answer right.
RULES = [["Barcelona", "incorrect"], ["Barcelona", "hallucinated"], ["<answer>", "correct"],
         ["<answer>", "factual"]]

# A code evaluator: fails on a short list of wrong answers; raises for spans the file
# ``raise-for`` (in the test directory) names, to test that errors are judged again.
CONFTEST = """
import pathlib
from pytest_phoenix_evals import evaluator

WRONG = {"Barcelona"}

@evaluator(name="known_wrong")
def known_wrong(output, metadata):
    flaky = pathlib.Path(__file__).with_name("raise-for")
    if flaky.exists() and metadata["span_id"] in flaky.read_text().split():
        raise RuntimeError("the checker is down")
    return output not in WRONG

def pytest_phoenix_evals_evaluators(config, dataset, group):
    assert group.kind in ("spans", "traces"), group
    return [known_wrong]
"""


@pytest.fixture
def spans_env(pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge) -> str:
    judge.configure(rules=RULES)
    pytester.makeconftest(CONFTEST)
    return phoenix_env


def run(pytester: pytest.Pytester, project: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                              "-p", "no:cacheprovider", *args)


def ours(url: str, project: str, ids: list[str], target: str = "span"
         ) -> dict[str, dict[str, Any]]:
    """This plugin's annotations by (subject id, name); asserts there is one of each."""
    key = f"{target}_id"
    rows = [r for r in span_annotations(url, project, ids, target)
            if r["identifier"] == "pytest-phoenix-evals"]
    counted = Counter((r[key], r["name"]) for r in rows)
    assert all(n == 1 for n in counted.values()), counted
    return {f"{r[key]}/{r['name']}": r for r in rows}


def test_spans_are_judged_once_and_the_results_written_back(
        pytester: pytest.Pytester, spans_env: str, judge: StandInJudge) -> None:
    project = unique("support-bot")
    sent = emit(spans_env, project, CONVERSATIONS)
    result = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                 "--phoenix-reference=$.metadata.documents", "-v")
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    wrong = sent[1]
    # One item per LLM span, named by the span; selectable with -k.
    assert f"phoenix:{project}::ChatCompletion-{wrong.llm_id} FAILED" in text
    assert f"project {project!r}: 3 span(s) to judge" in text
    assert "3 judge call(s)" in text
    assert f"project {project!r}, span {wrong.llm_id}" in text
    assert "input:     What is the capital of Spain?" in text
    assert "output:    Barcelona" in text
    assert "reference: Madrid is the capital of Spain." in text
    assert f"annotations written in project {project}" in text
    assert result.ret == 1

    # The judge read the span's context: the user's question, the assistant's answer, and the
    # documents its trace retrieved as the reference.
    prompts = json.dumps([r["body"]["messages"] for r in judge.requests])
    assert "Madrid is the capital of Spain." in prompts and "<answer>\\nBarcelona" in prompts

    written = ours(spans_env, project, [s.llm_id for s in sent])
    assert set(written) == {f"{s.llm_id}/{n}" for s in sent
                            for n in ("qa_correctness", "known_wrong")}
    judged = written[f"{wrong.llm_id}/qa_correctness"]
    assert judged["annotator_kind"] == "LLM"
    assert judged["result"]["label"] == "incorrect" and judged["result"]["score"] == 0
    assert "the answer" in judged["result"]["explanation"] or judged["result"]["explanation"]
    assert judged["metadata"]["plugin"] == "pytest-phoenix-evals"
    assert judged["metadata"]["model"] == "gpt-4o-mini"
    assert written[f"{wrong.llm_id}/known_wrong"]["annotator_kind"] == "CODE"
    # Only LLM spans are cases by default: the CHAIN and RETRIEVER spans got nothing.
    assert not ours(spans_env, project, [s.root_id for s in sent])

    # The next run judges nothing, calls no judge, and exits 0 (a scheduled job's success).
    calls = len(judge.requests)
    again = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                "--phoenix-reference=$.metadata.documents")
    assert again.ret == 0, again.stdout.str()
    assert f"project {project!r}: 0 span(s) to judge" in again.stdout.str()
    assert len(judge.requests) == calls
    assert len(ours(spans_env, project, [s.llm_id for s in sent])) == 6


def test_selection_by_filter_window_sample_and_max_spans(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project = unique("selection")
    first = emit(spans_env, project, CONVERSATIONS[:2])
    other = emit(spans_env, project, [{**CONVERSATIONS[2], "name": "Summarise"}])

    # The server's filter language picks the spans (here by name and by metadata).
    named = run(pytester, project, "--phoenix-spans=span_kind == 'LLM' and name == 'Summarise'",
                "--collect-only", "-q")
    assert "ChatCompletion-" not in named.stdout.str()
    assert f"Summarise-{other[0].llm_id}" in named.stdout.str()
    assert "1 case(s), 1 judge call(s)" not in named.stdout.str()  # no judge: code only
    assert "1 case(s), 0 judge call(s)" in named.stdout.str()
    by_user = run(pytester, project, "--phoenix-spans=metadata['user'] == 'u2'",
                  "--collect-only", "-q")
    assert f"ChatCompletion-{first[1].llm_id}" in by_user.stdout.str()
    assert f"ChatCompletion-{first[0].llm_id}" not in by_user.stdout.str()

    # A filter the server refuses is a usage error quoting the server.
    bad = run(pytester, project, "--phoenix-spans=span_kind === 'LLM'")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "Phoenix refuses this span filter" in bad.stderr.str()
    assert "Traceback" not in bad.stderr.str() + bad.stdout.str()

    # A window that ends before the spans lists none; one around them lists them all.
    earlier = run(pytester, project, "--phoenix-since=2020-01-01T00:00:00Z",
                  "--phoenix-until=2020-01-02T00:00:00", "--collect-only", "-q")
    assert "0 span(s) to judge, from 2020-01-01T00:00:00+00:00 to 2020-01-02T00:00:00+00:00" \
        in earlier.stdout.str()
    around = run(pytester, project, "--phoenix-since=1h", "--collect-only", "-q")
    assert "3 span(s) to judge" in around.stdout.str()
    # The default settle delay (a minute) leaves spans this fresh for a later run.
    settling = pytester.runpytest(f"--phoenix-project={project}", "--collect-only", "-q",
                                  "-p", "no:cacheprovider")
    assert "0 span(s) to judge" in settling.stdout.str()

    # --phoenix-max-spans takes the oldest first and says the rest wait.
    oldest = run(pytester, project, "--phoenix-max-spans=1", "--collect-only", "-q")
    assert f"ChatCompletion-{first[0].llm_id}" in oldest.stdout.str()
    assert "1 span(s) to judge" in oldest.stdout.str()
    assert "the next run takes them (oldest first)" in oldest.stdout.str()

    # A sample is decided by span id: the same spans every run, a smaller one inside a larger.
    ids = [s.llm_id for s in first + other]
    samples = {}
    for fraction in ("0.3", "0.7"):
        listed = run(pytester, project, f"--phoenix-sample={fraction}", "--collect-only",
                     "-q").stdout.str()
        samples[fraction] = {i for i in ids if i in listed}
        assert samples[fraction] == {i for i in ids if in_sample(i, float(fraction))}
    assert samples["0.3"] <= samples["0.7"]


def test_a_human_annotation_counts_and_rejudge_overwrites_only_ours(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project = unique("humans")
    sent = emit(spans_env, project, CONVERSATIONS)
    human = sent[1]
    annotate(spans_env, human.llm_id, "known_wrong", "reviewed", identifier="alice")
    first = run(pytester, project, "-v")
    # The span a human annotated is not a case: it has an annotation of that name.
    assert human.llm_id not in first.stdout.str()
    first.assert_outcomes(passed=2)
    assert first.ret == 0

    again = run(pytester, project, "--phoenix-rejudge", "-v")
    again.assert_outcomes(passed=2)
    assert human.llm_id not in again.stdout.str()  # a human's annotation is never shadowed
    rows = span_annotations(spans_env, project, [s.llm_id for s in sent])
    mine = Counter(r["span_id"] for r in rows if r["identifier"] == "pytest-phoenix-evals")
    assert mine == {sent[0].llm_id: 1, sent[2].llm_id: 1}  # upserted, never doubled
    alice = [r for r in rows if r["identifier"] == "alice"]
    assert [(a["span_id"], a["result"]["label"]) for a in alice] == [(human.llm_id, "reviewed")]


def test_an_evaluator_error_writes_nothing_and_the_span_is_judged_next_run(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project = unique("retry")
    sent = emit(spans_env, project, CONVERSATIONS)
    flaky = sent[0]
    pytester.path.joinpath("raise-for").write_text(flaky.llm_id)
    first = run(pytester, project)
    first.assert_outcomes(passed=1, failed=2)
    assert "1 case(s) had an evaluator error and got no annotation from it: they are judged " \
           "again by the next run" in first.stdout.str()
    assert "the checker is down" in first.stdout.str()
    assert set(ours(spans_env, project, [s.llm_id for s in sent])) == {
        f"{sent[1].llm_id}/known_wrong", f"{sent[2].llm_id}/known_wrong"}

    pytester.path.joinpath("raise-for").unlink()
    second = run(pytester, project, "-v")
    second.assert_outcomes(passed=1)
    assert f"ChatCompletion-{flaky.llm_id} PASSED" in second.stdout.str()
    assert len(ours(spans_env, project, [s.llm_id for s in sent])) == 3


def test_the_trace_target_judges_root_spans_and_writes_trace_annotations(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project = unique("traces")
    sent = emit(spans_env, project, CONVERSATIONS)
    result = run(pytester, project, "--phoenix-target=trace", "--phoenix-spans=name == 'qa'",
                 "--phoenix-evaluators=hallucination",
                 "--phoenix-reference=$.metadata.documents", "-v")
    result.assert_outcomes(passed=2, failed=1)
    assert f"qa-{sent[1].trace_id} FAILED" in result.stdout.str()
    assert f"project {project!r}, trace {sent[1].trace_id}" in result.stdout.str()
    written = ours(spans_env, project, [s.trace_id for s in sent], target="trace")
    assert written[f"{sent[1].trace_id}/hallucination"]["result"]["label"] == "hallucinated"
    assert written[f"{sent[0].trace_id}/hallucination"]["result"]["label"] == "factual"
    assert len(written) == 6
    assert not span_annotations(spans_env, project, [s.root_id for s in sent])

    again = run(pytester, project, "--phoenix-target=trace", "--phoenix-spans=name == 'qa'",
                "--phoenix-evaluators=hallucination",
                "--phoenix-reference=$.metadata.documents")
    assert again.ret == 0 and "0 trace(s) to judge" in again.stdout.str()
    assert "3 trace(s) listed already have every evaluation" in again.stdout.str()

    # A sample of traces is decided by the trace id, on the server as here.
    sampled = run(pytester, project, "--phoenix-target=trace", "--phoenix-spans=name == 'qa'",
                  "--phoenix-rejudge", "--phoenix-sample=0.5", "--collect-only", "-q")
    listed = {s.trace_id for s in sent if s.trace_id in sampled.stdout.str()}
    assert listed == {s.trace_id for s in sent if in_sample(s.trace_id, 0.5)}


def test_failing_spans_grow_a_regression_dataset_once(
        pytester: pytest.Pytester, spans_env: str, admin: PhoenixAdmin,
        judge: StandInJudge) -> None:
    project, dataset = unique("grow"), unique("regressions")
    sent = emit(spans_env, project, CONVERSATIONS)
    result = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                 "--phoenix-reference=$.metadata.documents",
                 f"--phoenix-add-failures-to={dataset}:triage")
    result.assert_outcomes(passed=2, failed=1)
    assert f"added 1 failing span(s) to dataset {dataset!r} (split triage)" in \
        result.stdout.str()
    printed = re.search(r"judge them again with (pytest .+?) \(add --phoenix-task",
                        result.stdout.str())
    assert printed, result.stdout.str()
    # The command says what the dataset needs (the judges), not what chose the spans.
    assert printed[1] == (f"pytest --phoenix-dataset={dataset} "
                          f"--phoenix-evaluators=qa_correctness")

    examples = dataset_examples(spans_env, dataset)
    assert len(examples) == 1
    example = examples[0]
    # The server's own example shape for the span, never the judge's label as reference.
    assert "Barcelona" in json.dumps(example["output"])
    assert "incorrect" not in json.dumps(example["output"])
    assert "What is the capital of Spain?" in json.dumps(example["input"])
    failed = example["metadata"]["failed_evaluations"]
    assert {f["name"] for f in failed} == {"qa_correctness", "known_wrong"}
    assert any(f["label"] == "incorrect" and f["explanation"] for f in failed)
    assert linked_span(spans_env, dataset) == [sent[1].llm_id]

    # Judged again, failing again: nothing is added twice.
    again = run(pytester, project, "--phoenix-evaluators=qa_correctness", "--phoenix-rejudge",
                f"--phoenix-add-failures-to={dataset}:triage")
    again.assert_outcomes(passed=2, failed=1)
    assert "every failing span is in it already" in again.stdout.str()
    assert len(dataset_examples(spans_env, dataset)) == 1

    # The printed command runs as printed, with no task: the recorded output is judged again
    # by the judges that failed it (the conftest's too), in the context they saw it in.
    # (The conftest's hook, which checks it is asked for spans here, now gives its evaluator
    # to the dataset too.)
    pytester.makeconftest(CONFTEST.replace('("spans", "traces")', '("spans", "traces", '
                                           '"dataset")'))
    before = len(judge.requests)
    again = pytester.runpytest(*shlex.split(printed[1])[1:])
    again.assert_outcomes(failed=1)
    out = again.stdout.str()
    assert "could not upload" not in out and "Usage" not in again.stderr.str()
    assert "qa_correctness" in out and "known_wrong" in out and "Barcelona" in out
    bodies = json.dumps([r["body"] for r in judge.requests[before:]])
    assert "What is the capital of Spain?" in bodies
    assert "Madrid is the capital of Spain." in bodies  # the reference it was judged with

    # The regression suite of the app, fixed: the same command with the app as the task.
    pytester.makepyfile(app="def answer(input):\n    return 'Madrid'\n")
    pytester.syspathinsert()
    suite = pytester.runpytest(*shlex.split(printed[1])[1:], "--phoenix-task=app:answer")
    suite.assert_outcomes(passed=1)
    assert suite.ret == 0, suite.stdout.str()  # its run is in Phoenix too


def dataset_examples(url: str, name: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=10) as client:
        datasets = client.get("/v1/datasets", params={"name": name}).json()["data"]
        assert len(datasets) == 1
        answer = client.get(f"/v1/datasets/{datasets[0]['id']}/examples").json()
        examples: list[dict[str, Any]] = answer["data"]["examples"]
        return examples


def linked_span(url: str, dataset: str) -> list[str]:
    """The span ids the dataset's examples are linked to (as the server records them)."""
    query = """query($name: String!) { datasets(filter: {col: name, value: $name}) { edges {
      node { examples { edges { example: node { span { context { spanId } } } } } } } } }"""
    with httpx.Client(base_url=url, timeout=10) as client:
        body = client.post("/graphql", json={"query": query,
                                             "variables": {"name": dataset}}).json()
    assert "errors" not in body, body
    found = []
    for edge in body["data"]["datasets"]["edges"]:
        for example in edge["node"]["examples"]["edges"]:
            span = example["example"]["span"]
            found.append(span["context"]["spanId"] if span else None)
    return found


def test_annotations_not_written_are_journaled_and_uploaded_later_once(
        pytester: pytest.Pytester, spans_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.05, 0.1))
    project = unique("journal")
    sent = emit(spans_env, project, CONVERSATIONS)
    rules = [Rule(r"^POST /v1/span_annotations", "before", share=1.0)]
    with FaultProxy(spans_env, rules, seed=1) as proxy:
        failed = run(pytester, project, f"--phoenix-url={proxy.url}")
    assert failed.ret == 1
    text = failed.stdout.str()
    assert "annotations not written" in text
    assert "pytest --phoenix-upload-pending" in text
    assert not ours(spans_env, project, [s.llm_id for s in sent])
    journal = list((pytester.path / ".phoenix-evals" / "journal").glob("annotations-*.jsonl"))
    assert len(journal) == 1

    done = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    assert done.ret == 0, done.stdout.str()
    assert "3 pending case(s) uploaded" in done.stdout.str()
    assert len(ours(spans_env, project, [s.llm_id for s in sent])) == 3
    again = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    assert "nothing pending" in again.stdout.str()
    assert len(ours(spans_env, project, [s.llm_id for s in sent])) == 3


def test_a_span_deleted_meanwhile_does_not_sink_the_batch(
        pytester: pytest.Pytester, spans_env: str) -> None:
    # The server refuses a synchronous batch whole when one span is unknown; a span deleted in
    # Phoenix between listing and writing must not cost the others their annotations.
    project = unique("gone")
    sent = emit(spans_env, project, CONVERSATIONS)
    doomed = sent[2].llm_id
    pytester.makeconftest(CONFTEST + f"""
import httpx

@evaluator(name="deletes")
def deletes(metadata):
    if metadata["span_id"] == {doomed!r}:  # deleted in Phoenix while its case runs
        httpx.delete({spans_env!r} + "/v1/spans/" + metadata["span_id"]).raise_for_status()
    return True

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [known_wrong, deletes]
""")
    result = run(pytester, project)
    result.assert_outcomes(passed=2, failed=1)
    assert "could not upload" not in result.stdout.str()
    assert "1 span(s) were deleted from Phoenix before their annotations could be written" \
        in result.stdout.str()
    assert len(ours(spans_env, project, [s.llm_id for s in sent[:2]])) == 4
    assert not list((pytester.path / ".phoenix-evals" / "journal").glob("*.jsonl"))


def test_a_span_deleted_after_the_listing_errors_its_case_alone(
        pytester: pytest.Pytester, spans_env: str) -> None:
    # The listing keeps only ids and names; a page's attributes are read as its cases start.
    # A span deleted in Phoenix in between: its case errors, saying so, and the others are
    # judged and written.
    project = unique("vanished")
    sent = emit(spans_env, project, CONVERSATIONS)
    doomed = sent[1].llm_id
    pytester.makeconftest(CONFTEST + f"""
import httpx

def pytest_collection_finish(session):  # listed by now; no context is built yet
    httpx.delete({spans_env!r} + "/v1/spans/" + {doomed!r}).raise_for_status()
""")
    result = run(pytester, project)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert f"span {doomed} ('ChatCompletion') of project {project!r} was listed but is no " \
        "longer on the server" in out
    assert "Traceback" not in out
    assert set(ours(spans_env, project, [s.llm_id for s in sent])) == {
        f"{s.llm_id}/known_wrong" for s in sent if s.llm_id != doomed}


def test_xdist_lists_the_spans_once_and_every_span_is_judged_once(
        pytester: pytest.Pytester, spans_env: str) -> None:
    project = unique("xdist")
    sent = emit(spans_env, project, CONVERSATIONS * 2)
    result = run(pytester, project, "-n", "2", "--phoenix-evaluators=qa_correctness")
    result.assert_outcomes(passed=4, failed=2)
    assert result.stdout.str().count(f"project {project!r}: 6 span(s) to judge") == 1
    assert "could not upload" not in result.stdout.str()
    assert len(ours(spans_env, project, [s.llm_id for s in sent])) == 12


def test_two_runs_at_once_on_one_host_do_not_judge_the_same_spans(
        pytester: pytest.Pytester, spans_env: str) -> None:
    import subprocess
    import sys

    project = unique("claims")
    sent = emit(spans_env, project, CONVERSATIONS * 3)
    # The first run's evaluator waits, so that both runs list while the other is running.
    pytester.makeconftest(CONFTEST.replace("    return output not in WRONG",
                                           "    import time; time.sleep(0.5)\n"
                                           "    return output not in WRONG"))
    command = [sys.executable, "-m", "pytest", f"--phoenix-project={project}",
               "--phoenix-settle=0s", "-p", "no:cacheprovider", "--phoenix-concurrency=1", "-q"]
    first = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, text=True)
    import time

    time.sleep(2.5)  # the first has listed and claimed, and is judging
    second = subprocess.run(command, cwd=pytester.path, stdout=subprocess.PIPE, text=True,
                            timeout=300)
    out_first, _ = first.communicate(timeout=300)
    listed = [int(found.group(1)) for out in (out_first, second.stdout)
              if (found := re.search(r"(\d+) span\(s\) to judge", out))]
    assert len(listed) == 2, (out_first, second.stdout)
    assert sum(listed) == 9, (out_first, second.stdout)
    rows = span_annotations(spans_env, project, [s.llm_id for s in sent])
    assert Counter(r["span_id"] for r in rows) == {s.llm_id: 1 for s in sent}


def test_usage_errors_name_what_to_fix(pytester: pytest.Pytester, spans_env: str) -> None:
    project = unique("usage")
    emit(spans_env, project, CONVERSATIONS[:1])
    cases = [
        (["--phoenix-spans=span_kind == 'LLM'"], "only with --phoenix-project"),
        ([f"--phoenix-project={project}", "--phoenix-dataset=qa"], "--phoenix-project"),
        ([f"--phoenix-project={project}", "--phoenix-since=yesterday"], "is neither a duration"),
        ([f"--phoenix-project={project}", "--phoenix-sample=1.5"], "is not a fraction"),
        ([f"--phoenix-project={project}", "--phoenix-target=conversation"],
         "is not 'span', 'trace' or 'session'"),
        ([f"--phoenix-project={project}", "--phoenix-evaluators=nonesuch"],
         "is none of this plugin's judges"),
        (["--phoenix-project=no-such-project"], "has no project 'no-such-project'"),
        ([f"--phoenix-project={project}", "--phoenix-since=1m", "--phoenix-until=2h"],
         "the window is empty"),
        ([f"--phoenix-project={project}", "--phoenix-budget-usd=1"], "needs the judges' prices"),
        (["--phoenix-project=pytest-phoenix-evals judges", "--phoenix-evaluators=qa_correctness"],
         "judging it would judge the judges"),
    ]
    emit(spans_env, "pytest-phoenix-evals judges", CONVERSATIONS[:1])
    assert_usage_errors(pytester, cases)


def test_the_budget_stops_judge_calls_and_leaves_the_rest_for_later(
        pytester: pytest.Pytester, spans_env: str, judge: StandInJudge) -> None:
    project = unique("budget")
    sent = emit(spans_env, project, CONVERSATIONS)
    # Any price: the first judge call spends more than the budget.
    result = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                 "--phoenix-judge-price=gpt-4o-mini=1000/1000", "--phoenix-budget-usd=0.01",
                 "--phoenix-concurrency=1")
    assert len(judge.requests) == 1
    assert "2 stopped by --phoenix-budget-usd" in result.stdout.str()
    written = ours(spans_env, project, [s.llm_id for s in sent])
    assert sum(name.endswith("/qa_correctness") for name in written) == 1
    assert sum(name.endswith("/known_wrong") for name in written) == 3
    later = run(pytester, project, "--phoenix-evaluators=qa_correctness", "--collect-only",
                "-q")
    assert "2 span(s) to judge" in later.stdout.str()
    assert "2 judge call(s)" in later.stdout.str()


LOOP_CONFTEST = """
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

# The app's own instrumentation, installed in the pytest process (as in a conftest that
# imports the app): every openai call would be traced into the app's project.
provider = TracerProvider(resource=Resource({{"openinference.project.name": {project!r}}}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint={url!r})))
OpenAIInstrumentor().instrument(tracer_provider=provider)

def pytest_unconfigure(config):
    OpenAIInstrumentor().uninstrument()
    provider.shutdown()
"""


def test_judge_calls_never_trace_into_the_judged_project(
        pytester: pytest.Pytester, spans_env: str, judge: StandInJudge) -> None:
    project = unique("loop")
    emit(spans_env, project, CONVERSATIONS)
    pytester.makeconftest(LOOP_CONFTEST.format(project=project, url=f"{spans_env}/v1/traces"))
    result = run(pytester, project, "--phoenix-evaluators=qa_correctness")
    result.assert_outcomes(passed=2, failed=1)
    assert len(judge.requests) == 3
    with httpx.Client(base_url=spans_env, timeout=10) as client:
        spans = client.get(f"/v1/projects/{project}/spans", params={"limit": 1000}).json()
    assert len(spans["data"]) == 3 * 3  # the app's own, and not one judge call
    again = run(pytester, project, "--phoenix-evaluators=qa_correctness")
    assert again.ret == 0 and "0 span(s) to judge" in again.stdout.str()


def test_an_app_instrumented_with_openinference_is_judged(
        pytester: pytest.Pytester, spans_env: str, judge: StandInJudge) -> None:
    """The real thing: an app calling the (stand-in) model through openai, traced by
    openinference-instrumentation-openai, judged from the spans it produced."""
    import subprocess
    import sys

    project = unique("instrumented")
    judge.configure(answers=[["France", "Paris"], ["Spain", "Barcelona"]])
    app = Path(__file__).resolve().parent.parent / "example_suite" / "traced_app.py"
    subprocess.run([sys.executable, str(app), "--project", project, "--phoenix-url", spans_env,
                    "--model-url", judge.url], check=True, timeout=120)
    result = run(pytester, project, "--phoenix-evaluators=qa_correctness", "-v")
    out = result.stdout.str()
    assert "ChatCompletion-" in out
    result.assert_outcomes(passed=1, failed=1)
    assert "output:    Barcelona" in out
    assert "input:     What is the capital of Spain?" in out



def test_gates_over_a_window_are_decided_from_our_annotations_alone(
        pytester: pytest.Pytester, spans_env: str, judge: StandInJudge) -> None:
    project = unique("window")
    sent = emit(spans_env, project, CONVERSATIONS)
    judged = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                 "--phoenix-fail-under=qa_correctness=0.6")
    assert judged.ret == 0, judged.stdout.str()  # 2 of 3: the gate decides
    # Someone else's annotation of the same name (a human saying all is well) is not read.
    annotate(spans_env, sent[1].llm_id, "qa_correctness", "correct", identifier="alice")
    late = emit(spans_env, project, [CONVERSATIONS[0]])  # not judged yet
    calls = len(judge.requests)
    strict = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                 "--phoenix-regate=window", "--phoenix-since=1h",
                 "--phoenix-fail-under=qa_correctness=0.9")
    out = strict.stdout.str()
    assert strict.ret == 1, out
    assert "3 span(s) judged earlier; no judge called" in out
    assert "66.7%" in out
    assert "1 span(s) of the window have no annotation from this plugin yet" in out
    assert len(judge.requests) == calls
    lenient = run(pytester, project, "--phoenix-evaluators=qa_correctness",
                  "--phoenix-regate=window", "--phoenix-since=1h",
                  "--phoenix-fail-under=qa_correctness=0.6")
    assert lenient.ret == 0, lenient.stdout.str()
    assert late[0].llm_id not in lenient.stdout.str()
    no_gate = run(pytester, project, "--phoenix-regate=window")
    assert no_gate.ret == pytest.ExitCode.USAGE_ERROR
    assert "add one, for example" in no_gate.stderr.str()


def test_a_datasets_attached_evaluators_judge_spans_here_and_on_the_server_alike(
        pytester: pytest.Pytester, spans_env: str, admin: PhoenixAdmin) -> None:
    dataset = unique("guards")
    dataset_id = admin.create_dataset(dataset, [{"input": {"q": "-"}, "output": {},
                                                 "metadata": {}}])
    admin.attach_builtin(dataset_id, "contains", "mentions_a_capital", {"text": "$.output"},
                         literal_mapping={"words": "Paris,Madrid"})
    pytester.makeconftest("")
    labels = {}
    for where in ("local", "server"):
        project = unique(f"attached-{where}")
        sent = emit(spans_env, project, CONVERSATIONS)
        result = run(pytester, project, f"--phoenix-evaluators=dataset:{dataset}",
                     f"--phoenix-evaluate-on={where}")
        result.assert_outcomes(passed=1, failed=2)
        written = ours(spans_env, project, [s.llm_id for s in sent])
        labels[where] = [written[f"{s.llm_id}/contains"]["result"]["label"] for s in sent]
    assert labels["local"] == labels["server"] == ["true", "false", "false"]
