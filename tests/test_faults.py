"""Fault injection: a proxy in front of the real Phoenix fails a share of the requests.

- an answer that is not the Phoenix API (a login page): a usage error saying so;
- a 5xx after the server made the experiment: one experiment of that name, not two;
- the matrix: 20 % and 45 % of the run and evaluation posts fail before forwarding, after it
  (the server did the work) or as a dropped connection; besides, half of them answer slowly,
  all of them fail after forwarding, or a fifth answer with a login page. Every run ends with
  each result in Phoenix exactly once or journaled, a summary and exit status that say which,
  and ``--phoenix-upload-pending`` (the faults gone) completes it, exactly once.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
from pytest_phoenix_evals._run.sinks.journal import read_journal

from fault_proxy import FaultProxy, Rule
from phoenix_admin import PhoenixAdmin

RUNS = r"^POST /v1/experiments/[^/]+/runs"
EVALUATIONS = r"^POST /v1/experiment_evaluations"
CREATE = r"^POST /v1/datasets/[^/]+/experiments$"
# The attached built-ins of dataset 'qa' (conftest), by annotation name.
ANNOTATIONS = {"exact_match", "edit_distance", "contains"}

# Answers every case of 'qa' gets right: a run with no failing case exits 0 when all is in.
RIGHT_APP = '''
ANSWERS = {"What is the capital of France?": "Paris", "What is 2 + 2?": "4",
           "Who wrote Hamlet?": "Shakespeare", "What is the capital of Spain?": "Madrid"}

def answer(input):
    return ANSWERS[input["question"]]
'''


@pytest.fixture
def app(pytester: pytest.Pytester, phoenix_env: str, qa_dataset: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(app=RIGHT_APP)
    pytester.syspathinsert()
    # Four attempts per request, as in production, but with short waits between them.
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.05, 0.1, 0.2))
    return pytester


def run_qa(pytester: pytest.Pytester, url: str, name: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=app:answer",
                              f"--phoenix-url={url}", f"--phoenix-experiment-name={name}",
                              "-p", "no:cacheprovider", *args)


def named(admin: PhoenixAdmin, dataset_id: str, name: str) -> list[dict[str, Any]]:
    return [e for e in admin.experiments(dataset_id) if e.get("name") == name]


def pending_records(root: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((root / ".phoenix-evals" / "journal").glob("*.jsonl")):
        found, unreadable = read_journal(path)
        assert unreadable == 0, path
        records += found
    return records


def in_phoenix(admin: PhoenixAdmin, experiment_id: str) -> dict[str, set[str]]:
    """Each example's annotation names; asserts no example has two runs and no run two
    annotations of one name."""
    runs = admin.runs(experiment_id)
    per_example = collections.Counter(r["dataset_example_id"] for r in runs)
    assert all(n == 1 for n in per_example.values()), f"duplicate runs: {per_example}"
    names: dict[str, list[str]] = {r["dataset_example_id"]: [] for r in runs}
    for annotation in admin.annotations(experiment_id):
        names[annotation["example_id"]].append(annotation["name"])
    for example, found in names.items():
        assert len(found) == len(set(found)), f"duplicate annotations on {example}: {found}"
    return {example: set(found) for example, found in names.items()}


def test_an_answer_that_is_not_the_phoenix_api_is_a_usage_error(
        app: pytest.Pytester, phoenix_env: str) -> None:
    with FaultProxy(phoenix_env, [Rule(r".", "html")]) as proxy:
        result = run_qa(app, proxy.url, "login-page")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: Phoenix at {proxy.url} (from --phoenix-url) is not the Phoenix API: while "
        f"listing datasets it answered 200 (text/html; charset=utf-8): '<!DOCTYPE html> "
        f"<html><head><title>Sign in*'. Check --phoenix-url / PHOENIX_COLLECTOR_ENDPOINT: "
        f"is it the Phoenix server itself, or an SSO or proxy login page in front of it?"])
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "JSONDecodeError" not in output
    assert proxy.counts["forwarded"] == 0


def test_a_5xx_after_the_experiment_was_made_leaves_one_experiment(
        app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    with FaultProxy(phoenix_env, [Rule(CREATE, "after", limit=1)]) as proxy:
        result = run_qa(app, proxy.url, "made-twice")
    assert proxy.counts["after"] == 1
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    made = named(admin, qa_dataset["id"], "made-twice")
    assert len(made) == 1, made
    assert len(admin.runs(made[0]["id"])) == 4
    result.stdout.fnmatch_lines([f"experiment for qa: *experimentId={made[0]['id']}"])


MATRIX = [pytest.param(kind, share, id=f"{kind}-{int(share * 100)}pct")
          for share in (0.2, 0.45) for kind in ("before", "after", "reset")]


@pytest.mark.parametrize(("kind", "share"), [
    *MATRIX,
    pytest.param("slow", 0.5, id="slow-50pct"),
    # Every post's every attempt done by the server, never answered: all journaled.
    pytest.param("after", 1.0, id="after-100pct"),
    # A login page answering some posts: never taken for an upload, journaled, said.
    pytest.param("html", 0.2, id="html-20pct"),
])
def test_every_result_is_in_phoenix_once_or_journaled(
        app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any], kind: str, share: float) -> None:
    name = f"faults-{kind}-{int(share * 100)}"
    rules = [Rule(RUNS, kind, share, delay=1.0), Rule(EVALUATIONS, kind, share, delay=1.0)]
    with FaultProxy(phoenix_env, rules, seed=int(share * 100)) as proxy:
        result = run_qa(app, proxy.url, name)
        counts = dict(proxy.counts)
        pending = pending_records(app.path)
        journal_files = list((app.path / ".phoenix-evals" / "journal").glob("*.jsonl"))
        # The journal names the server it was meant for, by URL (the proxy's): the replay
        # goes there, with the faults gone (the same Phoenix behind it).
        proxy.rules = []
        replay = app.runpytest("--phoenix-upload-pending", f"--phoenix-url={proxy.url}",
                               "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert counts[kind] > 0, proxy.log  # the faults did happen
    result.assert_outcomes(passed=4)
    made = named(admin, qa_dataset["id"], name)
    assert len(made) == 1, made
    experiment_id = made[0]["id"]
    examples = {e["id"] for e in admin.http.get(
        f"/v1/datasets/{qa_dataset['id']}/examples").json()["data"]["examples"]}

    # Each example is complete in Phoenix, or journaled as pending (or both: the server
    # did the work but the plugin never heard it answer).
    found = in_phoenix(admin, experiment_id)
    journaled = {r["run"]["dataset_example_id"] for r in pending}
    assert all(r["experiment"]["id"] == experiment_id for r in pending)
    print(f"{name}: proxy {counts}; {len(pending)} case(s) journaled")  # for -s
    for example in examples:
        assert found.get(example) == ANNOTATIONS or example in journaled, (
            example, found.get(example), out)

    # The summary and the exit status say which.
    if pending:
        assert result.ret == pytest.ExitCode.TESTS_FAILED, out
        result.stdout.fnmatch_lines([
            "could not upload * item(s):",
            f"{len(pending)} result(s) are not all in Phoenix yet; they are kept in:",
            "exit status 1: results are not all in Phoenix"])
    else:
        assert result.ret == pytest.ExitCode.OK, out
        assert "could not upload" not in out and "not all in Phoenix" not in out
        assert not journal_files

    if kind == "after" and share == 1.0:
        assert len(pending) == 4
    if kind == "html":
        result.stdout.fnmatch_lines(["*is not the Phoenix API: while uploading *"])

    # Once the faults are gone, what was journaled goes up, and nothing twice.
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    assert pending_records(app.path) == []
    assert in_phoenix(admin, experiment_id) == {example: ANNOTATIONS for example in examples}


def test_upload_pending_never_adopts_another_sessions_run(
        app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    # Every run post fails before reaching Phoenix: every case is journaled.
    with FaultProxy(phoenix_env, [Rule(RUNS, "before")]) as proxy:
        result = run_qa(app, proxy.url, "adopted")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    pending = pending_records(app.path)
    assert len(pending) == 4
    # Meanwhile another session records its own run of the first example there.
    taken = pending[0]
    experiment_id = taken["experiment"]["id"]
    other = admin.http.post(f"/v1/experiments/{experiment_id}/runs", json={
        **taken["run"], "output": "another session's answer",
        "start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-01T00:00:01+00:00"})
    other.raise_for_status()

    replay = app.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    out = replay.stdout.str()
    assert replay.ret == 1, out
    assert "3 pending case(s) uploaded" in out
    assert f"already has another run in experiment {experiment_id}" in out
    assert "another session recorded it; this result was not uploaded" in out
    # The other session's run keeps its own output and gets none of our annotations.
    runs = {r["dataset_example_id"]: r for r in admin.runs(experiment_id)}
    assert runs[taken["run"]["dataset_example_id"]]["output"] == "another session's answer"
    assert in_phoenix(admin, experiment_id)[taken["run"]["dataset_example_id"]] == set()
    left = pending_records(app.path)
    assert [r["key"] for r in left] == [taken["key"]]  # kept, for a person to decide


def test_an_experiment_made_although_its_answer_was_lost_is_not_made_twice(
        app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    # The server makes the experiment but its answer never comes back, and looking for it
    # fails too: the session journals the experiment it meant, with the token it was made with.
    rules = [Rule(CREATE, "after"), Rule(r"^GET /v1/datasets/[^/]+/experiments", "before")]
    with FaultProxy(phoenix_env, rules) as proxy:
        result = run_qa(app, proxy.url, "answer-lost")
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
        assert len(named(admin, qa_dataset["id"], "answer-lost")) == 1  # made, unheard
        proxy.rules = []
        replay = app.runpytest("--phoenix-upload-pending", f"--phoenix-url={proxy.url}",
                               "-p", "no:cacheprovider")
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    made = named(admin, qa_dataset["id"], "answer-lost")
    assert len(made) == 1, made  # found by its token, not made again
    assert len(admin.runs(made[0]["id"])) == 4


# --- the pace of uploads: rises with latency, backs off on 429 and 503 -----------------------

PACED_APP = '''
def answer(input):
    return "answer " + input["n"]
'''
PACED_CONFTEST = '''
from pytest_phoenix_evals import evaluator

@evaluator(threshold=">=1")
def not_empty(output):
    return len(output)

def pytest_phoenix_evals_evaluators(config, dataset):
    return [not_empty]
'''
UPLOADS = f"{RUNS}|{EVALUATIONS}"


@pytest.fixture(scope="module")
def paced_dataset(admin: PhoenixAdmin) -> dict[str, Any]:
    """60 examples, no attached evaluator: a run and one evaluation each."""
    examples = [{"input": {"n": str(i)}, "output": {"answer": f"answer {i}"}, "metadata": {}}
                for i in range(60)]
    return {"id": admin.create_dataset("paced", examples), "name": "paced"}


def test_uploads_rise_with_latency_and_back_off_when_phoenix_is_over_capacity(
        app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        paced_dataset: dict[str, Any]) -> None:
    app.makepyfile(paced_app=PACED_APP)
    app.makeconftest(PACED_CONFTEST)

    def run(url: str, name: str) -> pytest.RunResult:
        return app.runpytest("--phoenix-dataset=paced", "--phoenix-task=paced_app:answer",
                             f"--phoenix-url={url}", f"--phoenix-experiment-name={name}",
                             "-p", "no:cacheprovider")

    # Every upload held 0.25 s (a far server, idle): more go at once than the 8 of before.
    with FaultProxy(phoenix_env, [Rule(UPLOADS, "slow", delay=0.25)]) as far:
        result = run(far.url, "paced-far")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (made,) = named(admin, paced_dataset["id"], "paced-far")
    assert len(in_phoenix(admin, made["id"])) == 60
    assert far.most_at_once > 12, far.most_at_once

    # The same, with a third of the upload attempts answered 429 or 503 at once: fewer go at
    # once, the summary says so, and every result is in Phoenix or journaled (then uploaded).
    rules = [Rule(UPLOADS, "busy", 0.2), Rule(UPLOADS, "before", 0.15),
             Rule(UPLOADS, "slow", delay=0.25)]
    with FaultProxy(phoenix_env, rules, seed=3) as busy:
        result = run(busy.url, "paced-busy")
        busy.rules = []
        pending = pending_records(app.path)
        replay = app.runpytest("--phoenix-upload-pending", f"--phoenix-url={busy.url}",
                               "-p", "no:cacheprovider")
    out = result.stdout.str()
    print(f"at once: far {far.most_at_once}, busy {busy.most_at_once}; {dict(busy.counts)}; "
          f"{len(pending)} journaled")  # for -s
    assert busy.counts["busy"] > 0 and busy.counts["before"] > 0, busy.counts
    assert busy.most_at_once < far.most_at_once, (busy.most_at_once, far.most_at_once)
    result.stdout.fnmatch_lines(["*Phoenix answered * upload request(s) with 429 or 503 (over "
                                 "capacity): uploads went fewer at once (down to *) and were "
                                 "retried*"])
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if pending else pytest.ExitCode.OK), out
    (made,) = named(admin, paced_dataset["id"], "paced-busy")
    found = in_phoenix(admin, made["id"])
    journaled = {r["run"]["dataset_example_id"] for r in pending}
    assert all(found.get(example) == {"not_empty"} or example in journaled
               for example in set(found) | journaled)
    assert len(set(found) | journaled) == 60
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    assert all(names == {"not_empty"} for names in in_phoenix(admin, made["id"]).values())
    assert len(in_phoenix(admin, made["id"])) == 60


def test_upload_pending_paces_itself_and_backs_off_an_overloaded_server(
        app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    # Every run refused: the four cases stay in the journal.
    with FaultProxy(phoenix_env, [Rule(RUNS, "before")]) as proxy:
        first = run_qa(app, proxy.url, "paced-replay")
    assert len(pending_records(app.path)) == 4, first.stdout.str()
    # The replay meets a server at capacity now and then: it goes fewer at once, retries,
    # says so, and everything goes up once.
    with FaultProxy(phoenix_env, [Rule(RUNS, "busy", share=0.5, limit=3),
                                  Rule(EVALUATIONS, "busy", share=0.2, limit=2)],
                    seed=3) as proxy:
        replay = app.runpytest("--phoenix-upload-pending", f"--phoenix-url={proxy.url}",
                               "-p", "no:cacheprovider")
    assert proxy.counts["busy"] > 0, proxy.log
    assert replay.ret == pytest.ExitCode.OK, replay.stdout.str()
    replay.stdout.fnmatch_lines([f"phoenix-evals: Phoenix answered {proxy.counts['busy']} "
                                 f"upload request(s) with 429 or 503 (over capacity)*",
                                 "phoenix-evals: 4 pending case(s) uploaded"])
    made = named(admin, qa_dataset["id"], "paced-replay")
    assert pending_records(app.path) == []
    found = in_phoenix(admin, made[0]["id"])  # (no run or annotation twice)
    assert len(found) == 4 and all(names == ANNOTATIONS for names in found.values())
