"""Cases run at the same time (--phoenix-concurrency), and stop cleanly when pytest stops."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest
from pytest_phoenix_evals._run.sinks.experiment import BACKLOG

from phoenix_admin import PhoenixAdmin

pytestmark = pytest.mark.usefixtures("phoenix_env", "judged_dataset")

SLOW_APP = """
import threading, time

lock = threading.Lock()
state = {"running": 0, "most": 0, "calls": []}

def answer(input):
    question = input["question"]
    with lock:
        state["calls"].append(question)
        state["running"] += 1
        state["most"] = max(state["most"], state["running"])
    time.sleep(0.4)
    with lock:
        state["running"] -= 1
    if "Hamlet" in question:
        raise RuntimeError("no idea")
    return "Paris"
"""

REPORT = """
def pytest_sessionfinish(session):
    import slow_app
    print("MOST AT ONCE:", slow_app.state["most"], "CALLS:", len(slow_app.state["calls"]))
"""


@pytest.fixture
def slow_app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(slow_app=SLOW_APP)
    pytester.makeconftest(REPORT)
    pytester.syspathinsert()
    return pytester


@pytest.mark.parametrize(("concurrency", "most"), [("1", 1), ("3", 3)])
def test_cases_overlap_up_to_the_concurrency(slow_app: pytest.Pytester, concurrency: str,
                                             most: int) -> None:
    result = slow_app.runpytest("--phoenix-dataset=judged", "--phoenix-task=slow_app:answer",
                                "--phoenix-no-upload", f"--phoenix-concurrency={concurrency}",
                                "-s")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*MOST AT ONCE: {most} CALLS: 3*"])
    # Reported in collection order, each case as its own item, whatever finished first.
    names = [line.split("::")[1].split()[0] for line in result.outlines
             if line.startswith("PASSED phoenix:") or line.startswith("FAILED phoenix:")]
    assert names == sorted(names, key=lambda n: int(n.split("-")[0][2:])) or not names


def test_exit_first_stops_the_remaining_cases(slow_app: pytest.Pytester) -> None:
    # Collection order: France, Hamlet (fails), Spain. With -x nothing after Hamlet runs to the
    # end of its report, and at most the case already started beside it was called.
    result = slow_app.runpytest("--phoenix-dataset=judged", "--phoenix-task=slow_app:answer",
                                "--phoenix-no-upload", "--phoenix-concurrency=1", "-x", "-s")
    result.assert_outcomes(passed=1, failed=1)
    calls = int(result.stdout.str().split("CALLS: ")[1].split()[0])
    assert calls <= 3
    assert "1 failed, 1 passed" in result.stdout.lines[-1]


def test_interrupted_run_still_uploads_what_finished(
        slow_app: pytest.Pytester, admin: PhoenixAdmin, judged_dataset: dict[str, Any]) -> None:
    slow_app.makeconftest(REPORT + """
def pytest_runtest_logreport(report):
    if report.when == "call":
        import time
        time.sleep(1.0)  # the other cases finish meanwhile
        raise KeyboardInterrupt
""")
    # In a subprocess: the interrupt must not reach the pytest running this test.
    result = slow_app.runpytest_subprocess(
        "--phoenix-dataset=judged", "--phoenix-task=slow_app:answer", "--phoenix-concurrency=3",
        "--phoenix-experiment-name=ctrl-c")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    experiment = next(e for e in admin.experiments(judged_dataset["id"])
                      if e.get("name", "").startswith("ctrl-c")
                      or (e.get("metadata") or {}).get("command_line", "").find("ctrl-c") >= 0)
    runs = admin.runs(experiment["id"])
    assert len(runs) == 3  # one reported, two finished beside it: none lost


def test_xdist_workers_share_one_experiment_and_run_each_case_once(
        slow_app: pytest.Pytester, admin: PhoenixAdmin, judged_dataset: dict[str, Any],
        phoenix_env: str) -> None:
    from fault_proxy import FaultProxy

    slow_app.makeconftest("")
    before = {e["id"] for e in admin.experiments(judged_dataset["id"])}
    with FaultProxy(phoenix_env, []) as proxy:  # no faults: it lists the requests
        result = slow_app.runpytest_subprocess(
            "--phoenix-dataset=judged", "--phoenix-task=slow_app:answer", "-n", "2",
            "--phoenix-experiment-name=xdist-run", f"--phoenix-url={proxy.url}")
    result.assert_outcomes(passed=2, failed=1)
    # The workers took the dataset the controller read (its version is the experiment's)
    # instead of each asking the server again.
    reads = [line for line, _ in proxy.log if line.startswith(("GET", "POST /graphql"))]
    assert len([r for r in reads if "/examples" in r]) == 1, reads
    made = [e for e in admin.experiments(judged_dataset["id"]) if e["id"] not in before]
    assert len(made) == 1
    runs = admin.runs(made[0]["id"])
    assert sorted(r["dataset_example_id"] for r in runs) == sorted(
        {r["dataset_example_id"] for r in runs}) and len(runs) == 3
    # The controller's summary covers every worker's cases and links the one experiment.
    result.stdout.fnmatch_lines(["judged: 3 cases, 2 passed, 1 failed (1 with task errors)",
                                 f"experiment for judged: *experimentId={made[0]['id']}"])
    assert "partial run" not in result.stdout.str()  # each worker ran a share: not partial
    # The workers left their task spans to the controller, which sent them at the end: every
    # run's trace is in the experiment's project, and no span is said to be lost.
    assert "did not reach Phoenix" not in result.stdout.str()
    traces = {r["trace_id"] for r in runs}
    assert len(traces) == 3 and None not in traces
    deadline = time.monotonic() + 30
    while True:
        stored = {s["context"]["trace_id"] for s in admin.spans(
            made[0]["project_name"], trace_id=sorted(traces), parent_id="null")}
        if stored == traces or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored == traces


KEEPS = """
import pytest

def pytest_phoenix_evals_evaluators(config, dataset):
    def says_why(output):
        return {"score": 1.0, "label": "ok", "explanation": f"why: {output}"}
    return [says_why]

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):  # after the plugin has waited for its uploads
    results = session.config.pluginmanager.get_plugin("phoenix-evals-session").results
    print("KEPT:", [(r.output, r.exception) for r in results], len(results))
    print("SCORES KEPT:", sorted({(s.label, s.score, s.explanation) for r in results
                                  for s in r.scores}))
"""


def _rows(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_outputs_are_let_go_once_reported_and_uploaded(slow_app: pytest.Pytester) -> None:
    slow_app.makeconftest(KEEPS)
    result = slow_app.runpytest("--phoenix-dataset=judged", "--phoenix-task=slow_app:answer",
                                "--phoenix-results=r.jsonl", "-s")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*KEPT: ?(None, None), (None, None), (None, None)? 3"])
    # A score keeps what the summary reads (label, score), not its explanation ...
    result.stdout.fnmatch_lines(["*SCORES KEPT: ?('ok', 1.0, None)?"])
    result.stdout.fnmatch_lines(["*RuntimeError: no idea*"])  # the report still had it all
    # ... which the results file took whole as each case finished.
    rows = _rows(slow_app.path / "r.jsonl")
    assert sorted(r["explanation"] for r in rows if r.get("explanation")) == [
        "why: Paris", "why: Paris"], rows


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_exit_first_keeps_in_the_results_file_what_finished_ahead(
        slow_app: pytest.Pytester) -> None:
    # France passes, Hamlet fails (late) and stops the run after Spain (started beside it)
    # finished: Spain is never reported, and its results-file row has its output and
    # explanation all the same.
    slow_app.makeconftest(KEEPS)
    slow_app.makepyfile(late_failure="""
import time

def answer(input):
    if "Hamlet" in input["question"]:
        time.sleep(2.0)  # long after Spain finished
        raise RuntimeError("no idea")
    return "Paris"
""")
    result = slow_app.runpytest("--phoenix-dataset=judged", "--phoenix-task=late_failure:answer",
                                "--phoenix-no-upload", "--phoenix-concurrency=3", "-x",
                                "--phoenix-results=r.jsonl", "-s")
    result.assert_outcomes(passed=1, failed=1)
    rows = _rows(slow_app.path / "r.jsonl")
    spain = [r for r in rows if "Spain" in _text(r)]
    assert spain, rows  # it ran beside the failing case (concurrency 3) and was recorded
    assert all(r["output"] and "Paris" in _text(r["output"]) for r in spain), spain
    assert all(r["explanation"] == "why: Paris" for r in spain if r.get("annotation")), spain


@pytest.mark.parametrize("wait", ["30", "0.5"])
def test_the_session_waits_for_uploads_with_a_progress_line_and_a_bound(
        slow_app: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any], wait: str) -> None:
    from slow_proxy import SlowProxy

    slow_app.makeconftest("")
    name = f"slow-uploads-{wait}"
    # Every run upload takes 2 s more (the server's answer, delayed by a proxy), so the cases
    # finish long before their uploads do.
    with SlowProxy(phoenix_env, slow=r"^POST /v1/experiments/[^/]+/runs", delay=2) as proxy:
        result = slow_app.runpytest(
            "--phoenix-dataset=judged", "--phoenix-task=slow_app:answer",
            f"--phoenix-url={proxy.url}", f"--phoenix-upload-timeout={wait}",
            f"--phoenix-experiment-name={name}")
        slowed = proxy.slowed
    result.assert_outcomes(passed=2, failed=1)
    assert slowed == 3
    result.stdout.fnmatch_lines([f"phoenix-evals: waiting for 3 upload(s) to finish (at most "
                                 f"{wait} s, --phoenix-upload-timeout) ..."])
    experiment = next(e for e in admin.experiments(judged_dataset["id"])
                      if e.get("name") == name)
    if wait == "30":
        assert "still uploading" not in result.stdout.str()
        assert len(admin.runs(experiment["id"])) == 3
    else:
        result.stdout.fnmatch_lines(["could not upload 3 item(s):",
                                     "  3 case(s) still uploading when the wait ran out"])
        result.stdout.fnmatch_lines(["exit status 1: results are not all in Phoenix"])
        assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_recorded_task_latency_is_the_tasks_own_time(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    """Instant tasks, while an evaluator keeps the event loop busy for a second after each
    case: the runs' recorded times are the tasks' own (the loop being busy is not theirs)."""
    pytester.makeconftest('''
        import time

        def pytest_phoenix_evals_evaluators(config, dataset):
            async def hogs_the_loop(output):
                time.sleep(1.0)  # sync work on the loop, as a slow import would be
                return True
            return [hogs_the_loop]
    ''')
    result = pytester.runpytest("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer",
                                "--phoenix-concurrency=4", "-p", "no:cacheprovider",
                                "--phoenix-experiment-name=own-latency")
    result.assert_outcomes(passed=2, failed=2)
    experiment = next(e for e in admin.experiments(qa_dataset["id"])
                      if e.get("name") == "own-latency")
    runs = admin.runs(experiment["id"])
    assert len(runs) == 4
    took = [datetime.fromisoformat(r["end_time"]) - datetime.fromisoformat(r["start_time"])
            for r in runs]
    assert max(took).total_seconds() < 0.5, took


SHARE_APP = """
import os, pathlib, threading, time

lock = threading.Lock()
state = {"running": 0, "most": 0}

def answer(input):
    with lock:
        state["running"] += 1
        state["most"] = max(state["most"], state["running"])
        pathlib.Path(f"most-{os.getpid()}.txt").write_text(str(state["most"]))
    time.sleep(0.5)
    with lock:
        state["running"] -= 1
    return "Paris"
"""


def test_under_xdist_each_worker_runs_its_share_ahead(
        pytester: pytest.Pytester, qa_dataset: dict[str, Any]) -> None:
    # Each worker is dealt its whole share at once and starts it ahead, as one process does
    # (xdist handing items one at a time ran every worker's cases one by one).
    pytester.makepyfile(share_app=SHARE_APP)
    result = pytester.runpytest_subprocess("--phoenix-dataset=qa", "--phoenix-no-upload",
                                           "--phoenix-task=share_app:answer", "-n", "2",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)  # "Paris" is right once
    most = {path.name: int(path.read_text()) for path in pytester.path.glob("most-*.txt")}
    assert len(most) == 2 and set(most.values()) == {2}, most  # two workers, two at once each


JOURNAL_READING_APP = """
import json, pathlib

ahead = {"most": 0}

def answer(input):
    # Results journaled and not yet marked done (uploads unfinished) when this case starts.
    recorded = done = 0
    for path in pathlib.Path(".phoenix-evals/journal").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                kind = json.loads(line)["type"]
            except ValueError:  # a line being written
                continue
            recorded += kind == "case"
            done += kind == "done"
    ahead["most"] = max(ahead["most"], recorded - done)
    return "answer " + input["n"]
"""


@pytest.fixture(scope="module")
def many(admin: PhoenixAdmin) -> dict[str, Any]:
    examples = [{"input": {"n": str(i)}, "output": {"answer": f"answer {i}"}, "metadata": {}}
                for i in range(BACKLOG + 72)]
    return {"id": admin.create_dataset("many", examples), "name": "many"}


def test_cases_wait_for_uploads_that_fall_behind(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        many: dict[str, Any]) -> None:
    """Back-pressure: uploads slowed by a proxy, the runner starts no case while BACKLOG
    uploads are unfinished, so finished results do not pile up in memory; every result still
    goes up."""
    from slow_proxy import SlowProxy

    pytester.makepyfile(journal_app=JOURNAL_READING_APP)
    pytester.syspathinsert()
    pytester.makeconftest("""
        def pytest_sessionfinish(session):
            import journal_app
            print("MOST AHEAD:", journal_app.ahead["most"])
    """)
    with SlowProxy(phoenix_env, slow=r"^POST /v1/experiments/[^/]+/runs", delay=0.2) as proxy:
        result = pytester.runpytest("--phoenix-dataset=many", "--phoenix-task=journal_app:answer",
                                    f"--phoenix-url={proxy.url}", "--phoenix-concurrency=2",
                                    "--phoenix-experiment-name=pressed", "-s",
                                    "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    most = int(result.stdout.str().split("MOST AHEAD:")[1].split()[0])
    assert 0 < most <= BACKLOG + 2, most  # the backlog, and the cases let in at once
    experiment = next(e for e in admin.experiments(many["id"]) if e.get("name") == "pressed")
    assert len(admin.runs(experiment["id"])) == BACKLOG + 72


QUIET = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    print("KEPT REPORTS:", len(stats.get("", [])), len(stats.get("passed", [])),
          len(stats.get("failed", [])))
"""


@pytest.mark.parametrize("durations", [False, True])
def test_a_cases_quiet_setup_and_teardown_reports_are_not_kept(
        slow_app: pytest.Pytester, durations: bool) -> None:
    # pytest's terminal reporter keeps all three reports of every case to the end; a case's
    # passed setup and teardown that captured nothing show nothing, and are let go, unless
    # --durations (which reads them all) is asked for.
    slow_app.makeconftest(QUIET)
    result = slow_app.runpytest("--phoenix-dataset=judged", "--phoenix-task=slow_app:answer",
                                "--phoenix-no-upload", "-rA",
                                *(["--durations=0", "--durations-min=0"] if durations else []))
    result.assert_outcomes(passed=2, failed=1)
    kept = 6 if durations else 0  # three cases, a setup and a teardown each
    result.stdout.fnmatch_lines([f"KEPT REPORTS: {kept} 2 1"])
    result.stdout.fnmatch_lines(["PASSED phoenix:judged::*", "FAILED phoenix:judged::*"])
    if durations:
        result.stdout.fnmatch_lines(["*s setup *phoenix:judged::*"])
