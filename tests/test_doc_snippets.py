"""docs/your-project.md runs as written: its Python snippets, in order, against the suite's real
Phoenix server (the LLM calls go to the stand-in judge), then its `pytest` commands with
pytester. The page's names (dataset, prompt, project) get a suffix of this test's own, so that
the test passes in any order and on a server other tests use."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "your-project.md"
#: The names the page makes things under; each is suffixed for the test.
NAMES = ("qa-golden", "qa-from-csv", "qa-judge", "my-app")


def snippets(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks, as (language, body), in order."""
    return re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", text, flags=re.M | re.S)


def test_the_page_has_snippets_of_every_kind() -> None:
    kinds = [language for language, _ in snippets(PAGE.read_text(encoding="utf-8"))]
    assert kinds.count("python") >= 5 and "csv" in kinds and "shell" in kinds
    commands = [line for language, body in snippets(PAGE.read_text(encoding="utf-8"))
                if language == "shell" for line in body.splitlines()]
    # How to get a server, both ways the no-server error names.
    assert "pip install arize-phoenix" in commands and "phoenix serve" in commands
    assert "docker run -p 6006:6006 arizephoenix/phoenix" in commands


def test_your_project_page_runs_as_written(pytester: pytest.Pytester, phoenix_env: str,
                                          judge: StandInJudge, admin: PhoenixAdmin) -> None:
    suffix = uuid.uuid4().hex[:8]
    text = PAGE.read_text(encoding="utf-8")
    for name in NAMES:
        text = text.replace(name, f"{name}-{suffix}")
    script: list[str] = []
    commands: list[str] = []
    for language, body in snippets(text):
        first = body.splitlines()[0] if body else ""
        if language == "csv":
            (pytester.path / "qa.csv").write_text(body)
        elif language == "python" and re.fullmatch(r"# [\w/]+\.py", first):
            path = pytester.path / first[2:]  # a file of your project, shown whole
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif language == "python":
            script.append(body)
        elif language == "shell":
            commands += [line for line in body.splitlines() if line.startswith("pytest ")]
    assert len(script) >= 5 and len(commands) >= 3

    # The snippets, in order, in one process: each may use what an earlier one made.
    judge.configure(rules=[["capital of France", "correct"]])
    env = {**os.environ, "OPENAI_API_KEY": "not-needed-here"}
    ran = subprocess.run([sys.executable, "-c", "\n\n".join(script)], cwd=pytester.path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    golden = admin.dataset_id(f"qa-golden-{suffix}")
    assert golden and admin.dataset_id(f"qa-from-csv-{suffix}")
    attached = {e["name"] for e in admin.dataset_evaluators(golden)}
    assert attached == {"correct_answer", "correctness"}, attached
    assert admin.http.get(f"/v1/prompts/qa-judge-{suffix}/tags/production").status_code == 200
    deadline = time.monotonic() + 120  # Phoenix stores spans a while after it answers OTLP
    while not admin.spans(f"my-app-{suffix}", span_kind=["LLM"]):
        assert time.monotonic() < deadline, "the traced call never reached Phoenix"
        time.sleep(0.5)

    # Then the page's commands, as written (with the names suffixed).
    pytester.syspathinsert()
    for command in commands:
        result = pytester.runpytest(*shlex.split(command)[1:])
        out = result.stdout.str()
        assert result.ret == 0, f"{command}\n{out}\n{result.stderr.str()}"
        if "--phoenix-dataset" in command:
            result.assert_outcomes(passed=3)
            assert "correct_answer" in out and "correctness" in out
        else:
            result.assert_outcomes(passed=1)
