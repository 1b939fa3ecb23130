"""A Phoenix with authentication on: the plugin works with PHOENIX_API_KEY, says clearly when the
key is missing or wrong, and the keys (Phoenix's and the judge's) never appear in any artefact of
a run: files, output, uploads, and the spans the server stored."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from phoenix_admin import PhoenixAdmin
from phoenix_server import RunningServer, start_server
from progress import start_saying
from slow_proxy import SlowProxy
from stand_in_judge import StandInJudge

SECRET = "pytest-phoenix-evals-test-secret-1234567890abcdef"
ADMIN_SECRET = "pytest-phoenix-evals-admin-secret-0987654321fedcba"
# The judge's key: the stand-in judge takes any, and the task leaks it too.
OPENAI_KEY = "sk-pytest-phoenix-evals-openai-key-13579bdf"
#: Where the traces of judges defined in code go (the session's JUDGE_PROJECT).
JUDGE_PROJECT = "pytest-phoenix-evals judges"
EXAMPLES = [{"input": {"question": q}, "output": {"answer": a}, "metadata": {}}
            for q, a in (("What is the capital of France?", "Paris"),
                         ("Who wrote Hamlet?", "Shakespeare"),
                         ("What is the capital of Spain?", "Madrid"))]

# A task that tries hard to leak the keys: in its output, and in an exception message (which
# the task's span records as an event and its status). Its output reaches the judge's prompt,
# so the judge's spans carry the keys too.
LEAKY_APP = """
import os

def answer(input):
    key = os.environ["PHOENIX_API_KEY"]
    openai_key = os.environ.get("OPENAI_API_KEY", "")
    if "Spain" in input["question"]:
        raise RuntimeError(f"cannot answer with key {key} ({openai_key})")
    return {"answer": f"Paris (asked with {key} and {openai_key})", "debug": f"called with {key}",
            "judge": openai_key}
"""

CONFTEST = """
from pytest_phoenix_evals import qa_correctness

def pytest_phoenix_evals_evaluators(config, dataset):
    return [qa_correctness(answer="$.output.answer", reference="$.reference.answer")]
"""


@pytest.fixture(scope="module")
def auth_phoenix(tmp_path_factory: pytest.TempPathFactory,
                 pytestconfig: pytest.Config) -> Iterator[dict[str, Any]]:
    """A Phoenix with PHOENIX_ENABLE_AUTH, a system API key made through its REST API, and a
    dataset 'secure'."""
    workdir = tmp_path_factory.mktemp("auth-phoenix")
    extra_env = {"PHOENIX_ENABLE_AUTH": "true", "PHOENIX_SECRET": SECRET,
                 "PHOENIX_ADMIN_SECRET": ADMIN_SECRET}
    server: RunningServer = start_saying(
        pytestconfig, "starting a Phoenix server with authentication",
        lambda progress: start_server(workdir, extra_env=extra_env, progress=progress))
    try:
        response = httpx.post(f"{server.url}/v1/system/api_keys",
                              headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                              json={"data": {"name": "pytest-phoenix-evals tests"}}, timeout=30)
        response.raise_for_status()
        key = response.json()["data"]["key"]
        admin = PhoenixAdmin(server.url, api_key=key)
        dataset_id = admin.create_dataset("secure", EXAMPLES)
        yield {"url": server.url, "key": key, "admin": admin, "dataset_id": dataset_id,
               "log": server.log_path}
        admin.close()
    finally:
        server.stop()


@pytest.fixture
def secure_env(monkeypatch: pytest.MonkeyPatch, auth_phoenix: dict[str, Any],
               judge: StandInJudge) -> dict[str, Any]:
    for variable in ("PHOENIX_ENDPOINT", "PHOENIX_BASE_URL", "PHOENIX_CLIENT_HEADERS",
                     "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", auth_phoenix["url"])
    monkeypatch.setenv("PHOENIX_API_KEY", auth_phoenix["key"])
    return auth_phoenix


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_a_missing_or_wrong_key_is_a_clear_usage_error(
        pytester: pytest.Pytester, secure_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        key: str | None) -> None:
    if key is None:
        monkeypatch.delenv("PHOENIX_API_KEY")
    else:
        monkeypatch.setenv("PHOENIX_API_KEY", key)
    pytester.makepyfile(app=LEAKY_APP)
    result = pytester.runpytest("--phoenix-dataset=secure", "--phoenix-task=app:answer")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: Phoenix at {secure_env['url']} * refused listing datasets (401): set "
        f"PHOENIX_API_KEY to a valid API key for this server"])
    assert "Traceback" not in result.stderr.str()
    if key:
        assert key not in result.stdout.str() + result.stderr.str()


def _files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def stored_spans(admin: PhoenixAdmin, project: str, at_least: int,
                 timeout: float = 120) -> list[dict[str, Any]]:
    """The spans the server stored in ``project``, once at least ``at_least`` of them are
    there and no more arrive (the server stores spans a while after it answers their post)."""
    deadline = time.monotonic() + timeout
    spans: list[dict[str, Any]] = []
    while True:
        previous, spans = spans, admin.spans(project)
        if len(spans) >= at_least and len(spans) == len(previous):
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(spans)} of at least {at_least} spans in {project!r}")
        time.sleep(0.5)


def test_the_key_appears_in_no_artefact(pytester: pytest.Pytester, secure_env: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key, admin = secure_env["key"], secure_env["admin"]
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    pytester.makepyfile(app=LEAKY_APP)
    pytester.makeconftest(CONFTEST)
    step = pytester.path / "github_step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    # Evaluation uploads are slowed past the upload timeout, so the journal keeps them.
    with SlowProxy(secure_env["url"], slow=r"^POST /v1/experiment_evaluations",
                   delay=3) as proxy:
        result = pytester.runpytest_subprocess(
            "--phoenix-dataset=secure", "--phoenix-task=app:answer",
            f"--phoenix-url={proxy.url}", "--phoenix-upload-timeout=1",
            "--junitxml=junit.xml", "--phoenix-results=results.jsonl",
            "--phoenix-summary-md=summary.md", "--phoenix-experiment-name=secure-run",
            "-p", "pytester")
    result.assert_outcomes(passed=1, failed=2)  # Hamlet judged wrong; Spain raised
    output = result.stdout.str() + result.stderr.str()
    assert "RuntimeError: cannot answer with key *** (***)" in output  # masked, not lost
    assert key not in output and OPENAI_KEY not in output
    journals = list((pytester.path / ".phoenix-evals" / "journal").glob("*.jsonl"))
    assert journals, "the slowed uploads were to be journaled"
    artefacts = [*_files(pytester.path), step, secure_env["log"]]
    for name in ("junit.xml", "results.jsonl", "summary.md"):
        assert (pytester.path / name).is_file()
    for path in artefacts:
        text = path.read_text(errors="replace")
        assert key not in text and OPENAI_KEY not in text, path
    # And in Phoenix: the experiment's metadata, the runs' outputs and errors, annotations.
    experiment = next(e for e in admin.experiments(secure_env["dataset_id"])
                      if e.get("name") == "secure-run")
    uploaded = json.dumps([experiment, admin.runs(experiment["id"]),
                           admin.annotations(experiment["id"])])
    assert "called with ***" in uploaded
    assert key not in uploaded and OPENAI_KEY not in uploaded
    # And in the spans the server stored, every attribute, event and status message: the
    # tasks' (output, the exception event, the status) and the judge's (its Evaluator and
    # ChatCompletion spans: input and output values, input messages).
    task_spans = stored_spans(admin, experiment["project_name"], at_least=3)
    judge_spans = stored_spans(admin, JUDGE_PROJECT, at_least=4)  # 2 judged cases, 2 each
    stored = json.dumps([task_spans, judge_spans])
    assert key not in stored and OPENAI_KEY not in stored
    outputs = [s["attributes"].get("output.value", "") for s in task_spans]
    assert any("called with ***" in o and '"judge": "***"' in o for o in outputs), outputs
    failed = next(s for s in task_spans if s["status_code"] == "ERROR")
    assert "cannot answer with key *** (***)" in failed["status_message"]
    (event,) = failed["events"]
    assert "cannot answer with key *** (***)" in event["attributes"]["exception.message"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for span in judge_spans:
        by_kind.setdefault(span["span_kind"], []).append(span["attributes"])
    assert set(by_kind) == {"EVALUATOR", "LLM"}
    assert "called with ***" in json.dumps([a["input.value"] for a in by_kind["EVALUATOR"]])
    assert "asked with *** and ***" in json.dumps([
        value for a in by_kind["LLM"] for name, value in a.items()
        if name.startswith("llm.input_messages.")])
    # The pending results go up later with the same key; still nowhere to be seen.
    result = pytester.runpytest_subprocess("--phoenix-upload-pending")
    assert result.ret == 0
    assert key not in result.stdout.str() + result.stderr.str()
    assert key not in json.dumps(admin.annotations(experiment["id"]))
    assert OPENAI_KEY not in json.dumps(admin.annotations(experiment["id"]))
    assert len(admin.annotations(experiment["id"])) >= 2
    assert os.environ["PHOENIX_API_KEY"] == key
