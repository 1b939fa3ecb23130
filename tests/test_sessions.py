"""Sessions as a production target (``--phoenix-target=session``), against a real Phoenix with
real OTLP spans carrying OpenInference's ``session.id``, the stand-in judge over real HTTP, and
session annotations read back from the server.

Each test sends its own conversations into a project of its own (unique names), so tests pass
in any order and under xdist.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

from fault_proxy import FaultProxy, Rule
from span_app import unique
from stand_in_judge import StandInJudge

IDENTIFIER = "pytest-phoenix-evals"

# A code evaluator reading the session's context: it fails a conversation in which any turn
# answered "Barcelona", and records what it saw (one JSON line per session) for the test.
CONFTEST = """
import json, pathlib
from pytest_phoenix_evals import evaluator

@evaluator(name="no_wrong_turn")
def no_wrong_turn(input, output, metadata):
    seen = pathlib.Path(__file__).with_name("seen.jsonl")
    with seen.open("a") as f:
        f.write(json.dumps({"input": input, "output": output, "metadata": metadata}) + "\\n")
    return not any("Barcelona" in str(turn["output"]) for turn in output)

def pytest_phoenix_evals_evaluators(config, dataset, group, kind):
    assert group.kind == kind == "sessions", (group, kind)
    return [no_wrong_turn]
"""


def emit_sessions(url: str, project: str, sessions: Mapping[str, Sequence[tuple[str, str]]],
                  *, ago: float = 600.0) -> dict[str, list[str]]:
    """One trace per turn (a root CHAIN span and an LLM span, both with ``session.id``), the
    turns a second apart starting ``ago`` seconds back; session id -> its trace ids, in
    order. Waits until Phoenix lists every session with all its traces."""
    from openinference.semconv.trace import SpanAttributes as A
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import format_trace_id

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("session_app")
    start = time.time_ns() - int(ago * 1e9)
    sent: dict[str, list[str]] = {}
    try:
        for session_id, turns in sessions.items():
            for question, answer in turns:
                begin, start = start, start + 1_000_000_000
                common = {A.SESSION_ID: session_id, A.INPUT_VALUE: question,
                          A.OUTPUT_VALUE: answer}
                with tracer.start_as_current_span(
                        "turn", start_time=begin, end_on_exit=False,
                        attributes={A.OPENINFERENCE_SPAN_KIND: "CHAIN", **common}) as root:
                    llm = tracer.start_span("ChatCompletion", start_time=begin + 1000, attributes={
                        A.OPENINFERENCE_SPAN_KIND: "LLM", A.LLM_MODEL_NAME: "gpt-4o-mini",
                        A.LLM_TOKEN_COUNT_PROMPT: 10, A.LLM_TOKEN_COUNT_COMPLETION: 2,
                        A.LLM_TOKEN_COUNT_TOTAL: 12, **common})
                    llm.end(end_time=begin + 400_000_000)
                root.end(end_time=begin + 500_000_000)
                sent.setdefault(session_id, []).append(
                    format_trace_id(root.get_span_context().trace_id))
    finally:
        provider.shutdown()
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=10) as client:
        while True:
            listed = {}
            response = client.get(f"/v1/projects/{project}/sessions", params={"limit": 1000})
            if response.status_code == 200:
                listed = {s["session_id"]: [t["trace_id"] for t in s["traces"]]
                          for s in response.json()["data"]}
            if all(sorted(listed.get(k, ())) == sorted(v) for k, v in sent.items()):
                return sent
            if time.monotonic() > deadline:
                raise AssertionError(f"sessions did not arrive in {project!r}: {listed}")
            time.sleep(0.2)


def session_annotations(url: str, project: str, session_ids: Sequence[str]
                        ) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.get(f"/v1/projects/{project}/session_annotations",
                              params={"session_ids": list(session_ids), "limit": 1000})
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows


def ours(url: str, project: str, session_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """This plugin's session annotations by "session id/name"; asserts one of each."""
    rows = [r for r in session_annotations(url, project, session_ids)
            if r["identifier"] == IDENTIFIER]
    counted = Counter((r["session_id"], r["name"]) for r in rows)
    assert all(n == 1 for n in counted.values()), counted
    return {f"{r['session_id']}/{r['name']}": r for r in rows}


@pytest.fixture
def sessions_env(pytester: pytest.Pytester, phoenix_env: str) -> str:
    pytester.makeconftest(CONFTEST)
    return phoenix_env


def run(pytester: pytest.Pytester, project: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--phoenix-project={project}", "--phoenix-target=session",
                              "-p", "no:cacheprovider", *args)


def seen(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    path = pytester.path / "seen.jsonl"
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {line["metadata"]["session_id"]: line for line in lines}


def test_settled_sessions_are_judged_once_as_conversations_and_annotated(
        pytester: pytest.Pytester, sessions_env: str) -> None:
    project = unique("sessions")
    good, bad, live = unique("good"), unique("bad"), unique("live")
    sent = emit_sessions(sessions_env, project, {
        good: [("Hi, what is the capital of France?", "Paris."), ("And of Italy?", "Rome.")],
        bad: [("What is the capital of Spain?", "Barcelona."), ("Sure?", "Yes."),
              ("Thanks", "You are welcome.")]})
    # A conversation still going on: its last turn is seconds old, inside --phoenix-settle.
    sent |= emit_sessions(sessions_env, project, {live: [("Hello", "Hi!")]}, ago=1)

    result = run(pytester, project, "--phoenix-settle=2m", "-v")
    text = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    assert f"project {project!r}: 2 session(s) to judge" in text
    assert f"phoenix:{project}::session-{bad} FAILED" in text
    assert f"phoenix:{project}::session-{good} PASSED" in text

    # The context: the turns in time order, the first turn's input, the session's metadata.
    contexts = seen(pytester)
    assert set(contexts) == {good, bad}
    judged = contexts[bad]
    assert judged["input"] == "What is the capital of Spain?"
    assert judged["output"] == [{"input": "What is the capital of Spain?", "output": "Barcelona."},
                                {"input": "Sure?", "output": "Yes."},
                                {"input": "Thanks", "output": "You are welcome."}]
    meta = judged["metadata"]
    assert meta["trace_ids"] == sent[bad] and meta["turns"] == 3
    assert meta["first_time"] < meta["last_time"]
    assert meta["token_count_total"] == 36 and meta["token_count_prompt"] == 30

    # Written back as session annotations with our identifier.
    written = ours(sessions_env, project, [good, bad, live])
    assert set(written) == {f"{good}/no_wrong_turn", f"{bad}/no_wrong_turn"}
    assert written[f"{bad}/no_wrong_turn"]["result"]["label"] == "False"
    assert written[f"{bad}/no_wrong_turn"]["annotator_kind"] == "CODE"
    assert written[f"{good}/no_wrong_turn"]["metadata"]["plugin"] == "pytest-phoenix-evals"

    # The next run judges nothing settled again (the live session waits for its settle) and
    # exits 0; with no settle, the live one alone is judged.
    (pytester.path / "seen.jsonl").unlink()
    again = run(pytester, project, "--phoenix-settle=2m")
    assert again.ret == 0, again.stdout.str()
    assert f"project {project!r}: 0 session(s) to judge" in again.stdout.str()
    again.stdout.fnmatch_lines(["phoenix-evals: 1 session(s) had a trace within "
                                "--phoenix-settle=120s: left until they settle; if none grows, "
                                "they can be judged from ??:??:?? UTC (in *)"])
    assert not seen(pytester)
    last = run(pytester, project, "--phoenix-settle=0s")
    assert last.ret == 0, last.stdout.str()
    assert set(seen(pytester)) == {live}
    assert len(ours(sessions_env, project, [good, bad, live])) == 3


def test_session_annotations_not_written_are_journaled_and_replayed_once(
        pytester: pytest.Pytester, sessions_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.05, 0.1))
    project = unique("sessions-journal")
    one, two = unique("one"), unique("two")
    emit_sessions(sessions_env, project, {one: [("a", "b")], two: [("c", "d"), ("e", "f")]})
    rules = [Rule(r"^POST /v1/session_annotations", "before", share=1.0)]
    with FaultProxy(sessions_env, rules, seed=1) as proxy:
        failed = run(pytester, project, f"--phoenix-url={proxy.url}", "--phoenix-settle=0s")
    assert failed.ret == 1
    text = failed.stdout.str()
    assert "annotations not written" in text and "pytest --phoenix-upload-pending" in text
    assert not ours(sessions_env, project, [one, two])
    journal = list((pytester.path / ".phoenix-evals" / "journal").glob(
        "annotations-session-*.jsonl"))
    assert len(journal) == 1

    # A run meanwhile counts them as judged: waiting in the journal, not judged again.
    (pytester.path / "seen.jsonl").unlink()
    meanwhile = run(pytester, project, "--phoenix-settle=0s")
    assert meanwhile.ret == 0, meanwhile.stdout.str()
    assert "2 session(s) have results waiting in the journal" in meanwhile.stdout.str()
    assert not seen(pytester)

    done = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    assert done.ret == 0, done.stdout.str()
    assert "2 pending case(s) uploaded" in done.stdout.str()
    assert set(ours(sessions_env, project, [one, two])) == {f"{one}/no_wrong_turn",
                                                            f"{two}/no_wrong_turn"}
    again = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    assert "nothing pending" in again.stdout.str()
    assert len(ours(sessions_env, project, [one, two])) == 2


def test_a_session_judge_of_our_own_reads_the_conversation(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge) -> None:
    judge.configure(rules=[["never mind", "unresolved"], ["<conversation>", "resolved"]])
    project = unique("sessions-judge")
    solved, dropped = unique("solved"), unique("dropped")
    emit_sessions(phoenix_env, project, {
        solved: [("My order is late", "Sorry, it ships today."), ("Great, thanks", "Welcome!")],
        dropped: [("My order is late", "Which order?"), ("never mind", "OK.")]})
    result = run(pytester, project, "--phoenix-settle=0s",
                 "--phoenix-evaluators=conversation_resolution")
    result.assert_outcomes(passed=1, failed=1)
    prompts = json.dumps([r["body"]["messages"] for r in judge.requests])
    assert "Sorry, it ships today." in prompts and "Great, thanks" in prompts
    written = ours(phoenix_env, project, [solved, dropped])
    assert written[f"{dropped}/conversation_resolution"]["result"]["label"] == "unresolved"
    assert written[f"{solved}/conversation_resolution"]["result"]["label"] == "resolved"
    assert written[f"{solved}/conversation_resolution"]["annotator_kind"] == "LLM"


def test_a_refused_session_filter_is_a_usage_error(
        pytester: pytest.Pytester, sessions_env: str) -> None:
    project = unique("sessions-filter")
    emit_sessions(sessions_env, project, {unique("s"): [("a", "b")]})
    result = run(pytester, project, "--phoenix-settle=0s", "--phoenix-spans=num_turns >> 2")
    assert result.ret == 4
    err = result.stderr.str()
    assert "session filter" in err and "Traceback" not in err + result.stdout.str()


def dataset_examples(url: str, name: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=10) as client:
        datasets = client.get("/v1/datasets", params={"name": name}).json()["data"]
        assert len(datasets) == 1
        answer = client.get(f"/v1/datasets/{datasets[0]['id']}/examples").json()
        examples: list[dict[str, Any]] = answer["data"]["examples"]
        return examples


SECRET = "tok-planted-5e55-10n-secret"


def test_a_failing_session_becomes_one_example_once(
        pytester: pytest.Pytester, sessions_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPORT_BOT_API_TOKEN", SECRET)
    project, dataset = unique("sessions-failures"), unique("session-regressions")
    good, bad = unique("good"), unique("bad")
    emit_sessions(sessions_env, project, {
        good: [("Capital of France?", "Paris.")],
        bad: [("Capital of Spain?", "Barcelona."),
              (f"My token is {SECRET}", "Noted.")]})
    result = run(pytester, project, "--phoenix-settle=0s", f"--phoenix-add-failures-to={dataset}")
    assert result.ret == 1
    assert f"added 1 failing span(s) to dataset {dataset!r}" in result.stdout.str()
    examples = dataset_examples(sessions_env, dataset)
    assert len(examples) == 1
    example = examples[0]
    turns = example["input"]["turns"]
    assert [t["output"] for t in turns] == ["Barcelona.", "Noted."]
    assert SECRET not in json.dumps(example) and "***" in json.dumps(turns)  # the filter
    assert example["metadata"]["session_id"] == bad and example["metadata"]["turns"] == 2
    assert example["metadata"]["failed_evaluations"][0]["name"] == "no_wrong_turn"
    # Judged again (--phoenix-rejudge), the same session adds nothing twice.
    again = run(pytester, project, "--phoenix-settle=0s", "--phoenix-rejudge",
                f"--phoenix-add-failures-to={dataset}")
    assert again.ret == 1
    assert len(dataset_examples(sessions_env, dataset)) == 1


def test_gates_over_a_window_of_sessions_read_our_annotations_alone(
        pytester: pytest.Pytester, sessions_env: str) -> None:
    project = unique("sessions-window")
    good, bad, other = unique("good"), unique("bad"), unique("other")
    emit_sessions(sessions_env, project, {good: [("a", "b")], bad: [("c", "Barcelona")]})
    judged = run(pytester, project, "--phoenix-settle=0s")
    assert judged.ret == 1
    emit_sessions(sessions_env, project, {other: [("e", "f")]})  # not judged yet
    (pytester.path / "seen.jsonl").unlink()
    strict = run(pytester, project, "--phoenix-regate=window", "--phoenix-since=1h",
                 "--phoenix-settle=0s", "--phoenix-fail-under=no_wrong_turn=0.9")
    out = strict.stdout.str()
    assert strict.ret == 1, out
    assert "2 session(s) judged earlier; no judge called" in out
    assert "50.0%" in out
    assert "1 session(s) of the window have no annotation from this plugin yet" in out
    assert not seen(pytester)  # no evaluator ran
    lenient = run(pytester, project, "--phoenix-regate=window", "--phoenix-since=1h",
                  "--phoenix-settle=0s", "--phoenix-fail-under=no_wrong_turn=0.5")
    assert lenient.ret == 0, lenient.stdout.str()


def test_under_xdist_each_session_is_judged_once(
        pytester: pytest.Pytester, sessions_env: str) -> None:
    project = unique("sessions-xdist")
    ids = [unique(f"s{n}") for n in range(4)]
    emit_sessions(sessions_env, project, {i: [(f"q {i}", "a"), ("more", "b")] for i in ids})
    result = run(pytester, project, "--phoenix-settle=0s", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=4)
    lines = (pytester.path / "seen.jsonl").read_text().splitlines()
    judged = Counter(json.loads(line)["metadata"]["session_id"] for line in lines)
    assert judged == dict.fromkeys(ids, 1)
    assert set(ours(sessions_env, project, ids)) == {f"{i}/no_wrong_turn" for i in ids}


def test_the_example_bots_conversation_is_judged_as_one_session(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge) -> None:
    """The example suite's traced bot (openai through openinference-instrumentation-openai)
    holding a three-turn conversation: one session, its turns in order, judged whole."""
    import subprocess
    import sys
    from pathlib import Path

    project, session = unique("bot-sessions"), unique("support-chat")
    judge.configure(answers=[["Thanks", "You are welcome."], ["sure", "Yes, it is Madrid."],
                             ["Spain", "Madrid"]],
                    rules=[["<conversation>", "resolved"]])
    app = Path(__file__).resolve().parent.parent / "example_suite" / "traced_app.py"
    subprocess.run([sys.executable, str(app), "--project", project, "--phoenix-url", phoenix_env,
                    "--model-url", judge.url, "--session", session,
                    "What is the capital of Spain?", "Are you sure?", "Thanks!"],
                   check=True, timeout=120)
    pytester.makeconftest("")
    calls = len(judge.requests)
    result = run(pytester, project, "--phoenix-settle=0s",
                 "--phoenix-evaluators=conversation_resolution", "-v")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert f"phoenix:{project}::session-{session} PASSED" in out
    assert len(judge.requests) == calls + 1  # one judge call for the whole conversation
    prompt = json.dumps(judge.requests[-1]["body"]["messages"])
    turns = ["What is the capital of Spain?", "Madrid", "Are you sure?", "Yes, it is Madrid.",
             "Thanks!", "You are welcome."]
    assert all(t in prompt for t in turns)
    assert [prompt.index(t) for t in turns] == sorted(prompt.index(t) for t in turns)
    written = ours(phoenix_env, project, [session])
    assert written[f"{session}/conversation_resolution"]["result"]["label"] == "resolved"


def test_a_session_deleted_meanwhile_does_not_sink_the_batch(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    # The server refuses a synchronous batch of session annotations whole when one session is
    # unknown; a session deleted between listing and writing must not cost the others theirs.
    project = unique("sessions-gone")
    keep, doomed = unique("keep"), unique("doomed")
    emit_sessions(phoenix_env, project, {keep: [("a", "b")], doomed: [("c", "d"), ("e", "f")]})
    pytester.makeconftest(f"""
import httpx
from pytest_phoenix_evals import evaluator

@evaluator(name="deletes")
def deletes(metadata):
    if metadata["session_id"] == {doomed!r}:  # deleted in Phoenix while its case runs
        httpx.delete({phoenix_env!r} + "/v1/sessions/" + metadata["session_id"]
                     ).raise_for_status()
    return True

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [deletes]
""")
    result = run(pytester, project, "--phoenix-settle=0s")
    out = result.stdout.str()
    result.assert_outcomes(passed=2)
    assert result.ret == 0, out
    assert "could not upload" not in out
    assert "1 session(s) were deleted from Phoenix before their annotations could be written" \
        in out
    assert set(ours(phoenix_env, project, [keep])) == {f"{keep}/deletes"}
    assert not list((pytester.path / ".phoenix-evals" / "journal").glob("*.jsonl"))


def test_rejudge_overwrites_only_our_session_annotations(
        pytester: pytest.Pytester, sessions_env: str) -> None:
    project = unique("sessions-rejudge")
    ours_only, human = unique("ours"), unique("human")
    emit_sessions(sessions_env, project, {ours_only: [("a", "b")], human: [("c", "d")]})
    assert run(pytester, project, "--phoenix-settle=0s").ret == 0
    # A person's annotation of the same name (another identifier) on one session.
    with httpx.Client(base_url=sessions_env, timeout=10) as client:
        client.post("/v1/session_annotations", params={"sync": "true"}, json={"data": [{
            "session_id": human, "name": "no_wrong_turn", "annotator_kind": "HUMAN",
            "result": {"label": "False"}, "identifier": "alice"}]}).raise_for_status()
    (pytester.path / "seen.jsonl").unlink()
    again = run(pytester, project, "--phoenix-settle=0s", "--phoenix-rejudge")
    assert again.ret == 0, again.stdout.str()
    assert set(seen(pytester)) == {ours_only}  # the person's session is left alone
    assert set(ours(sessions_env, project, [ours_only, human])) == {
        f"{ours_only}/no_wrong_turn", f"{human}/no_wrong_turn"}  # one row each, no double
    theirs = [r for r in session_annotations(sessions_env, project, [human])
              if r["identifier"] == "alice"]
    assert len(theirs) == 1 and theirs[0]["result"]["label"] == "False"


def test_since_keeps_the_sessions_that_started_in_the_window(
        pytester: pytest.Pytester, sessions_env: str) -> None:
    project = unique("sessions-since")
    old, new = unique("old"), unique("new")
    emit_sessions(sessions_env, project, {old: [("a", "b"), ("c", "d")]}, ago=7200)
    emit_sessions(sessions_env, project, {new: [("e", "f")]}, ago=600)
    result = run(pytester, project, "--phoenix-since=1h", "--phoenix-settle=0s")
    assert result.ret == 0, result.stdout.str()
    assert f"project {project!r}: 1 session(s) to judge" in result.stdout.str()
    assert set(seen(pytester)) == {new}
    assert set(ours(sessions_env, project, [old, new])) == {f"{new}/no_wrong_turn"}
