"""Fixtures: a real Phoenix server started by the suite itself, and datasets seeded in it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore  # noqa: F401  (see below)
import jsonpath_ng.parser  # noqa: F401
import pandas  # noqa: F401
import pytest

# Imported here, before any in-process pytester run: such a run forgets the modules it imported
# when it ends. numpy (under pandas) cannot be imported twice in one process, and httpx maps
# the httpcore exception classes it saw first: a second httpcore would raise unmapped ones.
# jsonpath-ng's parser (ply) finds its grammar through sys.modules["jsonpath_ng.parser"]: a
# parser object kept from an earlier run (a test module importing the plugin) fails with a
# KeyError once that run has forgotten the module.
# (Writing parquet registers pyarrow types once per process: those tests run in a subprocess.)

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))


from phoenix_admin import PhoenixAdmin
from phoenix_server import PINNED_JSONPATH, cache_dir, start_server
from progress import install_heartbeat, start_saying
from stand_in_judge import StandInJudge

# The cached server environment is found through HOME, which pytester points at each test's
# own directory: fixed here, before any test runs, so no test installs Phoenix again.
os.environ.setdefault("PHOENIX_EVALS_CACHE_DIR", str(cache_dir()))

# Variables through which a developer's own Phoenix settings could leak into a test.
CLIENT_VARIABLES = ("PHOENIX_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_BASE_URL",
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "PHOENIX_HOST", "PHOENIX_PORT",
                    "PHOENIX_API_KEY", "PHOENIX_CLIENT_HEADERS")


def pytest_configure(config: pytest.Config) -> None:
    install_heartbeat(config)  # never silent for long: see progress.py


@pytest.fixture(scope="session")
def judge_server() -> Iterator[StandInJudge]:
    """The stand-in OpenAI-compatible judge over real HTTP, shared by Phoenix and the plugin."""
    with StandInJudge().start() as server:
        yield server


@pytest.fixture
def judge(judge_server: StandInJudge, monkeypatch: pytest.MonkeyPatch) -> StandInJudge:
    """The stand-in judge, reset, with the plugin's OpenAI settings pointed at it."""
    judge_server.reset()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", judge_server.url)
    return judge_server


@pytest.fixture(scope="session")
def phoenix_url(tmp_path_factory: pytest.TempPathFactory, judge_server: StandInJudge,
                pytestconfig: pytest.Config) -> Iterator[str]:
    """A real Phoenix server on 127.0.0.1 (free ports, SQLite in a temporary directory).

    Its LLM evaluators call the stand-in judge (OPENAI_BASE_URL in the server's environment),
    so that what the server computes and what the plugin computes can be compared.
    """
    workdir = tmp_path_factory.mktemp("phoenix-server")
    extra_env = {"OPENAI_BASE_URL": judge_server.url, "OPENAI_API_KEY": ""}
    server = start_saying(pytestconfig, "starting the test Phoenix server", lambda progress:
                          start_server(workdir, extra_env=extra_env, progress=progress))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(phoenix_url: str) -> Iterator[PhoenixAdmin]:
    client = PhoenixAdmin(phoenix_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def pinned_admin(tmp_path_factory: pytest.TempPathFactory,
                 pytestconfig: pytest.Config) -> Iterator[PhoenixAdmin]:
    """A second Phoenix server, the same release on the jsonpath-ng that Phoenix's Docker image
    pins (1.8.0; see ``ensure_jsonpath_overlay``). Started only by the tests that ask for it."""
    workdir = tmp_path_factory.mktemp("phoenix-pinned")
    server = start_saying(pytestconfig, "starting a Phoenix server on jsonpath-ng "
                          f"{PINNED_JSONPATH}", lambda progress: start_server(
                              workdir, jsonpath=PINNED_JSONPATH, progress=progress))
    client = PhoenixAdmin(server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


QA_EXAMPLES = [
    {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"},
     "metadata": {"topic": "geography"}},
    {"input": {"question": "What is 2 + 2?"}, "output": {"answer": "4"},
     "metadata": {"topic": "math"}},
    {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"},
     "metadata": {"topic": "literature"}},
    {"input": {"question": "What is the capital of Spain?"}, "output": {"answer": "Madrid"},
     "metadata": {"topic": "geography"}},
]


@pytest.fixture(scope="session")
def qa_dataset(admin: PhoenixAdmin) -> dict[str, Any]:
    """Dataset 'qa' with three attached built-ins; split 'geo' holds the geography examples."""
    splits = [["geo"] if e["metadata"]["topic"] == "geography" else None for e in QA_EXAMPLES]
    dataset_id = admin.create_dataset("qa", QA_EXAMPLES, splits=splits)
    mapping = {"expected": "$.reference.answer", "actual": "$.output"}
    admin.attach_builtin(dataset_id, "exact_match", "answer_exact", mapping,
                         literal_mapping={"case_sensitive": False})
    admin.attach_builtin(dataset_id, "levenshtein_distance", "edit_distance", mapping,
                         output_configs=[{"continuous": {
                             "name": "edit_distance", "optimizationDirection": "MINIMIZE",
                             "lowerBound": 0}}])
    admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                         {"text": "$.output", "words": "$.reference.answer"})
    return {"id": dataset_id, "name": "qa", "examples": QA_EXAMPLES}


JUDGED_EXAMPLES = [
    {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"},
     "metadata": {}},
    {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"},
     "metadata": {}},
    {"input": {"question": "What is the capital of Spain?"}, "output": {"answer": "Madrid"},
     "metadata": {}},
]


@pytest.fixture(scope="session")
def judged_dataset(admin: PhoenixAdmin) -> dict[str, Any]:
    """Dataset 'judged': three QA examples with no attached evaluator (judges come from code)."""
    return {"id": admin.create_dataset("judged", JUDGED_EXAMPLES), "name": "judged",
            "examples": JUDGED_EXAMPLES}


QA_APP = '''
ANSWERS = {
    "What is the capital of France?": "Paris",
    "What is 2 + 2?": "4",
    "Who wrote Hamlet?": "William Shakespeare",
    "What is the capital of Spain?": "Barcelona",
}

def answer(input):
    return ANSWERS[input["question"]]
'''


@pytest.fixture
def phoenix_env(monkeypatch: pytest.MonkeyPatch, phoenix_url: str) -> str:
    """Point arize-phoenix-client's environment at the test server, and nothing else."""
    for variable in CLIENT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix_url)
    monkeypatch.setenv("PHOENIX_DISCOVER_CONFIG", "false")
    return phoenix_url


@pytest.fixture
def qa_app(pytester: pytest.Pytester, phoenix_env: str, qa_dataset: dict[str, Any]) -> None:
    """A pytester directory holding the question-answering task (qa_app:answer)."""
    pytester.makepyfile(qa_app=QA_APP)
    pytester.syspathinsert()
