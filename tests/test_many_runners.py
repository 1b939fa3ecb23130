"""Many runners, each subject judged once (issue 26, item 4): claims on the Phoenix server, and
``--phoenix-shard=K/N``.

Real parts only: spans exported over OTLP into the worker's Phoenix (``span_app.emit``), runs of
pytest in processes of their own that share nothing but the server (each its own working
folder, ``HOME``, ``XDG_CACHE_HOME`` and ``TMPDIR``), the stand-in judge over real HTTP counting
the judge calls, and what the runs wrote read back from Phoenix.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_phoenix_evals._core.window import id_range, in_selection

from fault_proxy import FaultProxy, Rule
from span_app import emit, span_annotations, unique
from stand_in_judge import StandInJudge
from usage import assert_usage_errors

CLAIM = "pytest-phoenix-evals.claim"
IDENTIFIER = "pytest-phoenix-evals"
CONVERSATIONS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "What is the capital of Spain?", "answer": "Madrid"},
    {"question": "Who wrote Hamlet?", "answer": "Shakespeare"},
]
# The stand-in judge finds every answer right.
RULES = [["<answer>", "correct"]]
# A code evaluator, for the tests that count annotations rather than judge calls.
CONFTEST = """
from pytest_phoenix_evals import evaluator

@evaluator(name="answered")
def answered(output):
    return bool(output)

def pytest_phoenix_evals_evaluators(config, dataset, group):
    return [answered]
"""


def isolated(base: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A run's own working folder and environment: nothing on disk shared with another run
    (no rootdir, home, cache or temporary folder in common); the server and the judge's URL
    come from the environment, as on another machine."""
    root = base / name
    for sub in ("work", "home", "cache", "tmp"):
        (root / sub).mkdir(parents=True)
    env = {**os.environ, "HOME": str(root / "home"), "XDG_CACHE_HOME": str(root / "cache"),
           "TMPDIR": str(root / "tmp")}
    return root / "work", env


def start(work: Path, env: dict[str, str], project: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--phoenix-project={project}", "--phoenix-settle=0s",
         "-p", "no:cacheprovider", "-q", *args],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def listed(out: str, what: str = "span") -> int:
    found = re.search(rf"(\d+) {what}\(s\) to judge", out)
    assert found, out
    return int(found.group(1))


def claims(url: str, project: str, ids: list[str], target: str = "span") -> list[dict[str, Any]]:
    return [r for r in span_annotations(url, project, ids, target) if r["name"] == CLAIM]


def ours(url: str, project: str, ids: list[str], name: str, target: str = "span"
         ) -> Counter[str]:
    """How many annotations of ours named ``name`` each subject has."""
    return Counter(r[f"{target}_id"] for r in span_annotations(url, project, ids, target)
                   if r["identifier"] == IDENTIFIER and r["name"] == name)


# --- claims on the server ---------------------------------------------------------------------


@pytest.mark.parametrize("max_spans", [None, 5], ids=["all", "at-most-5-each"])
def test_two_runs_with_nothing_shared_but_the_server_judge_each_span_once(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        max_spans: int | None) -> None:
    """Without a bound, the run whose claims came first takes every span and the other none;
    with --phoenix-max-spans=5 each, neither can take all nine: they split them, the second
    going on past the spans the first holds."""
    project = unique("machines")
    sent = emit(phoenix_env, project, CONVERSATIONS * 3)
    ids = [s.llm_id for s in sent]
    judge.configure(latency=0.3, rules=RULES)  # both runs are still judging while the other lists
    runs = []
    for name in ("a", "b"):
        work, env = isolated(pytester.path, name)
        bound = [f"--phoenix-max-spans={max_spans}"] if max_spans else []
        runs.append(start(work, env, project, "--phoenix-evaluators=qa_correctness",
                          "--phoenix-concurrency=1", *bound))
    outs = [run.communicate(timeout=300)[0] for run in runs]
    for run, out in zip(runs, outs, strict=True):
        assert run.returncode == 0, out
    # Every span judged once, by one of the two: the judge was called 9 times, not 18.
    assert len(judge.requests) == 9, outs
    assert sum(listed(out) for out in outs) == 9, outs
    if max_spans:
        assert all(0 < listed(out) <= max_spans for out in outs), outs
    assert ours(phoenix_env, project, ids, "qa_correctness") == {i: 1 for i in ids}
    # Each run released its claims when it ended: nothing is left on the spans.
    assert claims(phoenix_env, project, ids) == []


# Long enough for the next pytest process to start and list on a busy 2-core machine (6 s was
# not: the claims expired before it listed, and it judged the spans the test says it leaves).
TTL = 30


def test_a_run_that_dies_leaves_its_claims_to_expire(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge) -> None:
    project = unique("dies")
    sent = emit(phoenix_env, project, CONVERSATIONS * 2)
    ids = [s.llm_id for s in sent]
    judge.configure(latency=2.0, rules=RULES)
    work, env = isolated(pytester.path, "dies")
    dying = start(work, env, project, "--phoenix-evaluators=qa_correctness",
                  "--phoenix-concurrency=1", f"--phoenix-claim-ttl={TTL}s")
    deadline = time.monotonic() + 120
    while len(claims(phoenix_env, project, ids)) < len(ids):
        assert dying.poll() is None and time.monotonic() < deadline, dying.stdout
        time.sleep(0.1)
    dying.kill()  # SIGKILL: no release
    dying.communicate(timeout=60)
    killed_at = time.monotonic()
    left = [i for i in ids if not ours(phoenix_env, project, [i], "qa_correctness")]
    assert left, "the run finished before it was killed"
    assert len(claims(phoenix_env, project, left)) == len(left)
    judge.reset()
    judge.configure(rules=RULES)

    # At once, elsewhere: the dead run's claims still hold.
    work, env = isolated(pytester.path, "soon")
    soon = start(work, env, project, "--phoenix-evaluators=qa_correctness")
    out = soon.communicate(timeout=300)[0]
    assert soon.returncode == 0, out
    assert listed(out) == 0, out
    assert f"{len(left)} span(s) left to another run judging them now" in out, out
    assert judge.requests == []

    # Once they expired, the next run judges those spans, and clears the dead run's claims.
    time.sleep(max(0.0, killed_at + TTL + 1 - time.monotonic()))
    work, env = isolated(pytester.path, "later")
    later = start(work, env, project, "--phoenix-evaluators=qa_correctness")
    out = later.communicate(timeout=300)[0]
    assert later.returncode == 0, out
    assert listed(out) == len(left), out
    assert len(judge.requests) == len(left)
    assert ours(phoenix_env, project, ids, "qa_correctness") == {i: 1 for i in ids}
    assert claims(phoenix_env, project, ids) == []


def test_claims_phoenix_refuses_leave_the_run_judging_and_say_so(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_phoenix_evals._phoenix.http.RETRY_DELAYS", (0.05, 0.1))
    pytester.makeconftest(CONFTEST)
    project = unique("refused")
    sent = emit(phoenix_env, project, CONVERSATIONS)
    # Every annotation write refused: the claims, then the results (journaled).
    with FaultProxy(phoenix_env, [Rule(r"^POST /v1/span_annotations", "before")]) as proxy:
        result = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                                    "-p", "no:cacheprovider", f"--phoenix-url={proxy.url}")
    text = result.stdout.str()
    assert result.ret == 1, text
    assert "judging without claims, as Phoenix refused them" in text
    assert "3 span(s) to judge" in text
    assert "Traceback" not in text + result.stderr.str()
    assert len(list((pytester.path / ".phoenix-evals" / "journal").glob("*.jsonl"))) == 1
    assert span_annotations(phoenix_env, project, [s.llm_id for s in sent]) == []


# --- shards -----------------------------------------------------------------------------------


def test_the_shards_hold_every_id_once_and_stay_inside_the_sample() -> None:
    span_ids = [secrets.token_hex(8) for _ in range(3000)]
    trace_ids = [secrets.token_hex(16) for _ in range(500)]
    sessions = [f"session-{n}" for n in range(500)] + ["Ünïcode chat", "", "ABCDEF"]
    for ids in (span_ids, trace_ids, sessions):
        for n in (1, 2, 3, 7):
            for sample in (None, 0.25, 0.8, 1.0):
                for subject in ids:
                    shards = [k for k in range(1, n + 1)
                              if in_selection(subject, sample, (k, n))]
                    assert len(shards) == (1 if in_selection(subject, sample, None) else 0), \
                        (subject, sample, n, shards)
    # The same ranges for upper- and lower-case ids; each shard a fair share.
    assert in_selection("ABCDEF0123456789", None, (3, 4)) == \
        in_selection("abcdef0123456789", None, (3, 4))
    counts = Counter(next(k for k in range(1, 5) if in_selection(i, None, (k, 4)))
                     for i in span_ids)
    assert all(600 < c < 900 for c in counts.values()), counts
    # What the server is given: the bounds of the sample, cut in N.
    assert id_range(None, (1, 1)) == (None, None)
    assert id_range(None, (2, 4)) == ("40000000", "80000000")
    assert id_range(0.5, (2, 2)) == ("40000000", "80000000")
    assert id_range(0.5, None) == (None, "80000000")


def test_shards_split_a_project_and_cover_every_span_and_trace_once(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    pytester.makeconftest(CONFTEST)
    project = unique("shards")
    sent = emit(phoenix_env, project, CONVERSATIONS * 4)
    spans = [s.llm_id for s in sent]
    traces = [s.trace_id for s in sent]
    for target, ids, spans_filter in (("span", spans, "span_kind == 'LLM'"),
                                      ("trace", traces, "name == 'qa'")):
        seen: Counter[str] = Counter()
        for k in (1, 2, 3):
            result = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                                        "-p", "no:cacheprovider", f"--phoenix-shard={k}/3",
                                        f"--phoenix-target={target}",
                                        f"--phoenix-spans={spans_filter}")
            text = result.stdout.str()
            assert result.ret in (0, pytest.ExitCode.OK), text
            mine = {i for i in ids if in_selection(i, None, (k, 3))}
            assert listed(text, target) == len(mine), (k, text)
            assert f"(shard {k}/3)" in text, text
            now = ours(phoenix_env, project, ids, "answered", target)
            assert set(now) - set(seen) == mine, (k, target)
            seen = now
        assert seen == {i: 1 for i in ids}, target
        assert claims(phoenix_env, project, ids, target) == [], target
    # A shard's spans are the server's to filter: a sample and a shard together.
    both = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                              "-p", "no:cacheprovider", "--phoenix-shard=1/2",
                              "--phoenix-sample=0.5", "--phoenix-rejudge", "--co")
    expected = sum(in_selection(i, 0.5, (1, 2)) for i in spans)
    assert f"{expected} case(s)" in both.stdout.str(), both.stdout.str()
    assert claims(phoenix_env, project, spans) == []  # --collect-only holds nothing after it


def test_bad_shards_and_claim_ttls_are_usage_errors(pytester: pytest.Pytester) -> None:
    assert_usage_errors(pytester, [
        (["--phoenix-project=p", "--phoenix-shard=0/3"], "K must be 1 to N"),
        (["--phoenix-project=p", "--phoenix-shard=4/3"], "the shards of 3 are 1/3 to 3/3"),
        (["--phoenix-project=p", "--phoenix-shard=2"], "is not a shard K/N"),
        (["--phoenix-project=p", "--phoenix-shard=1/0"], "N must be at least 1"),
        (["--phoenix-project=p", "--phoenix-claim-ttl=soon"], "is not a duration"),
        (["--phoenix-shard=1/2"], "only with --phoenix-project"),
    ])


def test_the_claim_never_counts_as_a_result(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    """A claim left on a span (a run judging it now, or dead) is not a judgement: a regate of
    the window does not read it, and once it is gone the span is judged."""
    pytester.makeconftest(CONFTEST)
    project = unique("notresult")
    sent = emit(phoenix_env, project, CONVERSATIONS[:1])
    with httpx.Client(base_url=phoenix_env, timeout=10) as client:
        client.post("/v1/span_annotations", params={"sync": "true"}, json={"data": [{
            "span_id": sent[0].llm_id, "name": CLAIM, "annotator_kind": "CODE",
            "identifier": f"{CLAIM}:other", "result": {"label": "claimed"},
            "metadata": {"ttl_seconds": 3600}}]}).raise_for_status()
    regate = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                                "-p", "no:cacheprovider", "--phoenix-regate=window",
                                "--phoenix-fail-under=answered=1")
    assert "0 span(s) judged earlier" in regate.stdout.str(), regate.stdout.str()
    held = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                              "-p", "no:cacheprovider")
    assert "1 span(s) left to another run judging them now" in held.stdout.str()
    with httpx.Client(base_url=phoenix_env, timeout=10) as client:
        client.delete(f"/v1/projects/{project}/span_annotations",
                      params={"name": CLAIM, "identifier": f"{CLAIM}:other",
                              "delete_all": "true"}).raise_for_status()
    judged = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                                "-p", "no:cacheprovider")
    assert "1 span(s) to judge" in judged.stdout.str(), judged.stdout.str()
    assert ours(phoenix_env, project, [sent[0].llm_id], "answered") == {sent[0].llm_id: 1}


def test_a_run_on_xdist_workers_claims_once_and_releases_its_claims(
        pytester: pytest.Pytester, phoenix_env: str) -> None:
    """Under xdist the controller lists and claims; the claims go when the session ends."""
    pytester.makeconftest(CONFTEST)
    project = unique("xdist")
    sent = emit(phoenix_env, project, CONVERSATIONS)
    ids = [s.llm_id for s in sent]
    result = pytester.runpytest(f"--phoenix-project={project}", "--phoenix-settle=0s",
                                "-p", "no:cacheprovider", "-n", "2")
    assert result.ret == 0, result.stdout.str()
    assert ours(phoenix_env, project, ids, "answered") == {i: 1 for i in ids}
    assert claims(phoenix_env, project, ids) == []
