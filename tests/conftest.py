"""Fixtures: a real Phoenix server started by the suite itself, and datasets seeded in it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from phoenix_admin import PhoenixAdmin  # noqa: E402
from phoenix_server import start_server  # noqa: E402

# Variables through which a developer's own Phoenix settings could leak into a test.
CLIENT_VARIABLES = ("PHOENIX_ENDPOINT", "PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_BASE_URL",
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "PHOENIX_HOST", "PHOENIX_PORT",
                    "PHOENIX_API_KEY", "PHOENIX_CLIENT_HEADERS")


@pytest.fixture(scope="session")
def phoenix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Phoenix server on 127.0.0.1 (free ports, SQLite in a temporary directory)."""
    server = start_server(tmp_path_factory.mktemp("phoenix-server"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(phoenix_url: str) -> Iterator[PhoenixAdmin]:
    client = PhoenixAdmin(phoenix_url)
    yield client
    client.close()


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
