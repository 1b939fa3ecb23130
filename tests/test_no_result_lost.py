"""No result lost, whatever breaks: each fault class against a real Phoenix.

- a SIGTERM while a slow case holds pytest up: the cases that finished are already uploaded;
- a case hook that raises: every result is still recorded and uploaded, and the run fails;
- an evaluator returning NaN: an evaluator error that says why, every other annotation goes up;
- a journal that cannot be written, and text that UTF-8 cannot encode: said loudly, uploaded;
- corrupt journal files given to --phoenix-upload-pending: named, skipped, the rest uploaded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin

RUN = ("--phoenix-dataset=qa", "--phoenix-task=qa_app:answer", "-p", "no:cacheprovider")


def experiment_named(admin: PhoenixAdmin, dataset_id: str, name: str) -> dict[str, Any] | None:
    return next((e for e in admin.experiments(dataset_id) if e.get("name") == name), None)


SLOW_FIRST = '''
import time
from qa_app import answer as qa_answer

def answer(input):
    if "France" in input["question"]:
        time.sleep(20)  # holds pytest on the first item
    return qa_answer(input)
'''


def test_a_sigterm_loses_none_of_the_cases_that_finished(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(slow_app=SLOW_FIRST)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--phoenix-dataset=qa", "--phoenix-task=slow_app:answer",
         "--phoenix-concurrency=4", "--phoenix-experiment-name=sigterm", "-p",
         "no:cacheprovider"], cwd=pytester.path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        # The three quick cases finish while the first one sleeps: they reach Phoenix then,
        # not when pytest gets round to reporting them.
        deadline = time.monotonic() + 15
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(runs) < 3:
            time.sleep(0.25)
            experiment = experiment_named(admin, qa_dataset["id"], "sigterm")
            runs = admin.runs(experiment["id"]) if experiment else []
        assert len(runs) == 3, f"only {len(runs)} of the 3 finished cases are in Phoenix"
        process.send_signal(signal.SIGTERM)  # what a CI job's timeout sends
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out and "phoenix evals" in out  # the summary still came
    experiment = experiment_named(admin, qa_dataset["id"], "sigterm")
    assert experiment is not None and len(admin.runs(experiment["id"])) == 3


def test_a_case_hook_that_raises_never_stops_the_uploads(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    pytester.makeconftest('''
        def pytest_phoenix_evals_case_result(config, result):
            if "hamlet" in result.case.case_id:
                raise RuntimeError("observer broke")
    ''')
    result = pytester.runpytest(*RUN, "--phoenix-experiment-name=hook-raises")
    result.assert_outcomes(passed=2, failed=2)
    experiment = experiment_named(admin, qa_dataset["id"], "hook-raises")
    assert experiment is not None
    assert len(admin.runs(experiment["id"])) == 4
    assert len(admin.annotations(experiment["id"])) == 12
    result.stdout.fnmatch_lines([
        "an observer of finished cases raised on 1 case(s) (their results were recorded and "
        "uploaded all the same):",
        "  pytest_phoenix_evals_case_result on ex*-who-wrote-hamlet: RuntimeError: observer "
        "broke",
        "exit status 1: an observer of finished cases raised",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_nan_score_is_an_evaluator_error_and_the_rest_goes_up(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    pytester.makeconftest('''
        def pytest_phoenix_evals_evaluators(config, dataset):
            def not_a_number(output):
                return float("nan")

            def infinite(output):
                return {"score": float("-inf"), "label": "far"}

            return [not_a_number, infinite]
    ''')
    result = pytester.runpytest(*RUN, "--phoenix-experiment-name=nan-scores", "-k", "france")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["not_a_number error: *the score is nan*Phoenix cannot store*",
                                 "infinite error: *the score is -inf*Phoenix cannot store*"])
    assert "could not upload" not in result.stdout.str()
    experiment = experiment_named(admin, qa_dataset["id"], "nan-scores")
    assert experiment is not None
    annotations = {a["name"]: a for a in admin.annotations(experiment["id"])}
    # The three attached built-ins and both broken ones: every annotation reached Phoenix.
    assert set(annotations) == {"exact_match", "edit_distance", "contains", "not_a_number",
                                "infinite"}
    assert "cannot store" in annotations["not_a_number"]["error"]
    assert "cannot store" in annotations["infinite"]["error"]
    assert annotations["infinite"]["score"] is None


def test_a_journal_that_cannot_be_written_is_said_and_the_upload_goes_ahead(
        pytester: pytest.Pytester, qa_app: None, admin: PhoenixAdmin,
        qa_dataset: dict[str, Any]) -> None:
    # A file where the journal folder should be: no journal can be opened (root ignores
    # permissions, so a read-only folder would not do).
    (pytester.path / ".phoenix-evals").mkdir()
    (pytester.path / ".phoenix-evals" / "journal").write_text("not a folder")
    pytester.makeconftest('''
        def pytest_phoenix_evals_evaluators(config, dataset):
            def odd_label(output):
                # A lone surrogate, as text decoded with errors="surrogateescape" holds.
                return (1.0, "ok" + b"\\xff".decode("utf-8", "surrogateescape"), "odd")
            return [odd_label]
    ''')
    result = pytester.runpytest(*RUN, "--phoenix-experiment-name=no-journal")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "the journal could not keep 4 result(s) (they were still uploaded; those not in "
        "Phoenix are lost):",
        "*journal*",
    ])
    result.stdout.fnmatch_lines(["exit status 1: the journal could not keep every result"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()
    experiment = experiment_named(admin, qa_dataset["id"], "no-journal")
    assert experiment is not None
    assert len(admin.runs(experiment["id"])) == 4
    labels = {a["label"] for a in admin.annotations(experiment["id"]) if a["name"] == "odd_label"}
    assert labels == {"ok\\udcff"}


def test_upload_pending_names_corrupt_journal_files_and_uploads_the_rest(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any]) -> None:
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer",
                                "--phoenix-experiment-name=corrupt-journals", "-p",
                                "no:cacheprovider")
    result.assert_outcomes(passed=3)
    experiment = experiment_named(admin, judged_dataset["id"], "corrupt-journals")
    assert experiment is not None
    first = admin.runs(experiment["id"])[0]
    journal = pytester.path / ".phoenix-evals" / "journal"
    journal.mkdir(parents=True, exist_ok=True)
    record = {"type": "case", "key": f"{first['dataset_example_id']}:1",
              "experiment": {"id": experiment["id"], "url": "u", "dataset": "judged"},
              "run": {"dataset_example_id": first["dataset_example_id"], "output": "Paris",
                      "repetition_number": 1, "start_time": first["start_time"],
                      "end_time": first["end_time"]},
              "evaluations": [{"name": "second-look", "annotator_kind": "CODE",
                               "start_time": first["start_time"],
                               "end_time": first["end_time"], "result": {"score": 1.0},
                               "error": None, "metadata": {}, "trace_id": None}]}
    (journal / "a-good.jsonl").write_text(json.dumps(record) + "\n")
    (journal / "b-bytes.jsonl").write_bytes(b"\xff\xfe not utf-8\n")
    (journal / "c-list.jsonl").write_text("[1, 2]\n")
    (journal / "d-keys.jsonl").write_text('{"type": "case", "key": "k"}\n')
    (journal / "e-folder.jsonl").mkdir()
    result = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["phoenix-evals: 1 pending case(s) uploaded; * problem(s):"])
    for name in ("b-bytes", "c-list", "d-keys"):
        assert f"{name}.jsonl: 1 line(s) that are not journal records were skipped" in out
        assert (journal / f"{name}.jsonl.unreadable").is_file()  # kept for a person
    assert "e-folder.jsonl: cannot be read" in out
    assert result.ret == 1  # the folder is still there, pending
    names = sorted(a["name"] for a in admin.annotations(experiment["id"])
                   if a["run_id"] == first["id"])
    assert names == ["second-look"]


def test_results_whose_experiment_could_not_be_made_are_kept_and_made_later(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any]) -> None:
    from fault_proxy import FaultProxy, Rule

    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    # Phoenix refuses every attempt to create the experiment; everything else goes through.
    rules = [Rule(r"^POST /v1/datasets/[^/]+/experiments", "before", share=1.0)]
    with FaultProxy(phoenix_env, rules, seed=1) as proxy:
        result = pytester.runpytest("--phoenix-dataset=judged", "--phoenix-task=app:answer",
                                    f"--phoenix-url={proxy.url}", "-p", "no:cacheprovider",
                                    "--phoenix-experiment-name=made-later")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["3 result(s) are not all in Phoenix yet; they are kept in:",
                                 "  .phoenix-evals/journal/intended-*.jsonl (3)"])
    assert experiment_named(admin, judged_dataset["id"], "made-later") is None
    # The journal was written through the proxy's URL: upload it there (now healthy).
    with FaultProxy(phoenix_env, [], seed=1) as healthy:
        journal = pytester.path / ".phoenix-evals" / "journal"
        [kept] = journal.glob("intended-*.jsonl")
        kept.write_text(kept.read_text().replace(proxy.url, healthy.url))
        result = pytester.runpytest("--phoenix-upload-pending", f"--phoenix-url={healthy.url}",
                                    "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["phoenix-evals: 3 pending case(s) uploaded"])
    made = experiment_named(admin, judged_dataset["id"], "made-later")
    assert made is not None and len(admin.runs(made["id"])) == 3
    assert not list(journal.glob("*.jsonl"))


def _record(experiment_id: str, server: str, dataset_id: str, example_id: str) -> str:
    return json.dumps({
        "type": "case", "key": f"{example_id}:1",
        "experiment": {"id": experiment_id, "url": "u", "server": server, "dataset": "judged",
                       "dataset_id": dataset_id},
        "run": {"dataset_example_id": example_id, "output": "Paris", "repetition_number": 1,
                "start_time": "2026-12-01T00:00:00+00:00",
                "end_time": "2026-12-01T00:00:01+00:00"},
        "evaluations": []}) + "\n"


def test_upload_pending_refuses_another_server_and_a_vanished_experiment(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any]) -> None:
    journal = pytester.path / ".phoenix-evals" / "journal"
    journal.mkdir(parents=True)
    example = "RGF0YXNldEV4YW1wbGU6OTk5OQ=="
    (journal / "elsewhere.jsonl").write_text(
        _record("RXhwZXJpbWVudDo4ODg4OA==", "http://127.0.0.1:9", judged_dataset["id"], example))
    (journal / "gone.jsonl").write_text(
        _record("RXhwZXJpbWVudDo5OTk5OQ==", phoenix_env, judged_dataset["id"], example))
    result = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert result.ret == 1 and "Traceback" not in out
    assert (f"experiment RXhwZXJpbWVudDo4ODg4OA== is not in {phoenix_env} (it was journaled for "
            f"http://127.0.0.1:9: run `pytest --phoenix-upload-pending "
            f"--phoenix-url=http://127.0.0.1:9` to upload it there)") in out
    assert (f"experiment RXhwZXJpbWVudDo5OTk5OQ== is not in {phoenix_env} (deleted?)") in out
    # Nothing was posted anywhere, and both files are still there to deal with.
    assert (journal / "elsewhere.jsonl").is_file() and (journal / "gone.jsonl").is_file()


def test_upload_pending_leaves_a_journal_in_use_alone(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin,
        judged_dataset: dict[str, Any]) -> None:
    import fcntl

    journal = pytester.path / ".phoenix-evals" / "journal"
    journal.mkdir(parents=True)
    live = journal / "live.jsonl"
    live.write_text(_record("RXhwZXJpbWVudDo5OTk5OQ==", phoenix_env, judged_dataset["id"],
                            "RGF0YXNldEV4YW1wbGU6OTk5OQ=="))
    with open(live, "a") as held:  # a session still running holds its journal so
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = pytester.runpytest("--phoenix-upload-pending", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*live.jsonl: in use by another process (a session still "
                                 "running?): left alone"])
    assert live.is_file() and "RGF0YXNldEV4YW1wbGU6OTk5OQ" in live.read_text()


def test_two_evaluators_of_one_annotation_name_are_both_kept(
        pytester: pytest.Pytester, phoenix_env: str, admin: PhoenixAdmin) -> None:
    dataset_id = admin.create_dataset("same-names", [
        {"input": {"question": "q"}, "output": {"answer": "Paris", "alias": "paris"},
         "metadata": {}}])
    admin.attach_builtin(dataset_id, "exact_match", "by_answer",
                         {"expected": "$.reference.answer", "actual": "$.output"})
    admin.attach_builtin(dataset_id, "exact_match", "by_alias",
                         {"expected": "$.reference.alias", "actual": "$.output"})
    pytester.makepyfile(app="def answer(input):\n    return 'Paris'\n")
    result = pytester.runpytest("--phoenix-dataset=same-names", "--phoenix-task=app:answer",
                                "-p", "no:cacheprovider", "--phoenix-experiment-name=same-names")
    # (In the order the server lists them.)
    result.stdout.fnmatch_lines([
        "phoenix-evals: same-names: annotation 'exact_match' is given by evaluators by_*, "
        "by_*: Phoenix keeps one annotation per name, so the first is kept as 'exact_match' "
        "and the others as 'exact_match (by_*)'"])
    result.assert_outcomes(failed=1)  # by_alias: "Paris" is not "paris"
    experiment = experiment_named(admin, dataset_id, "same-names")
    assert experiment is not None
    labels = {a["name"]: a["label"] for a in admin.annotations(experiment["id"])}
    second = next(n for n in labels if n != "exact_match")
    assert sorted(labels) == ["exact_match", second]
    assert second in ("exact_match (by_alias)", "exact_match (by_answer)")
    assert sorted(labels.values()) == ["false", "true"]  # both results, apart
