"""The promises of the dataset run, kept by the prompt task and the judge benchmark too (issue
24): no secret quoted from a server's answer reaches the terminal, the markdown summary or
``$GITHUB_STEP_SUMMARY``; a prompt file cannot stand for gigabytes; a golden set's human
labels that disagree, are missing or are spelled unlike the judge's are said, and a benchmark
run in part never moves a tag. Against a real Phoenix and the stand-in model and judge."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from phoenix_admin import PhoenixAdmin
from stand_in_judge import StandInJudge

EXAMPLES = [
    {"input": {"question": "What is the capital of France?"}, "output": {"answer": "Paris"}},
    {"input": {"question": "Who wrote Hamlet?"}, "output": {"answer": "Shakespeare"}},
]
ANSWERS = [["capital of France", "The capital is Paris."],
           ["Hamlet", "Hamlet was written by William Shakespeare."]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def answered(admin: PhoenixAdmin) -> str:
    """A dataset of this test's own whose attached built-in passes on the stand-in's answers."""
    name = unique("s24-prompted")
    dataset_id = admin.create_dataset(name, EXAMPLES)
    admin.attach_builtin(dataset_id, "contains", "mentions_answer",
                         {"text": "$.output.messages[0].content",
                          "words": "$.reference.answer"})
    return name


# --- item 5: a server's answer quoted in the summary passes the secret filter ---------------


def test_a_refused_push_quotes_no_secret_anywhere(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        answered: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SUPPORT_BOT_TOKEN", secret)  # a variable the filter knows by its name
    step = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    judge.configure(answers=ANSWERS)
    # The run never reads a version's metadata; the server wants a mapping there, refuses the
    # push (422) and echoes the value it refused.
    pytester.makefile(".yaml", refused=f"model: gpt-4o-mini\n"
                                        f"metadata: 'deployed with {secret}'\n"
                                        f"messages: [{{role: user, content: 'Q: {{{{question}}}}'}}]\n")
    prompt = unique("s24-refused")
    result = pytester.runpytest(f"--phoenix-dataset={answered}", "-p", "no:cacheprovider",
                                "--phoenix-task=prompt-file:refused.yaml",
                                "--phoenix-fail-under=contains=0.6",
                                f"--phoenix-push-prompt={prompt}",
                                f"--phoenix-summary-md={pytester.path / 'summary.md'}")
    out = result.stdout.str() + result.stderr.str()
    # The push failed, loudly: said, and the exit status is not 0.
    assert f"--phoenix-push-prompt={prompt}: failed: " in out, out
    assert "422" in out, out
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    markdown = (pytester.path / "summary.md").read_text()
    assert f"--phoenix-push-prompt={prompt}: failed: " in markdown
    assert step.read_text() == markdown
    # The server's answer quoted the secret; nothing that left the process holds it.
    for where, text in (("terminal", out), ("--phoenix-summary-md", markdown),
                        ("$GITHUB_STEP_SUMMARY", step.read_text())):
        assert secret not in text, where
    assert "deployed with ***" in out, out  # the filter did it, not the server's silence


def test_a_usage_problem_quoting_a_server_passes_the_secret_filter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_phoenix_evals._core.errors import UsageProblem

    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SUPPORT_BOT_TOKEN", secret)
    # As the modes raise it: an option, then the server's answer quoted.
    problem = UsageProblem(f"--phoenix-task prompt:p: Phoenix answered 422: "
                           f'{{"input": "{secret}"}}')
    assert secret not in str(problem) and '"input": "***"' in str(problem)


# --- item 16: a prompt file may not stand for gigabytes --------------------------------------


def alias_bomb(levels: int, width: int) -> str:
    """A YAML document of a few hundred bytes whose last anchor stands for width ** levels
    copies of a short text."""
    lines = ["a0: &a0 'lol lol lol lol'"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines)


def test_a_prompt_file_that_expands_past_the_bound_is_refused(tmp_path: Path) -> None:
    from pytest_phoenix_evals._modes.prompt_file import FileError, read_prompt_file

    head = "model: gpt-4o-mini\nmessages: [{role: user, content: 'Q: {{question}}'}]\n"
    bomb = tmp_path / "bomb.yaml"
    # 9 ** 9 = 387 million copies: gigabytes, from about 650 bytes.
    body = alias_bomb(9, 9).replace("\n", "\n  ")
    bomb.write_text(f"{head}metadata:\n  {body}\n")
    assert len(bomb.read_bytes()) < 800
    with pytest.raises(FileError, match=r"expands to more than [0-9,]+ (values|characters of "
                                        r"text), the bound of a prompt file"):
        read_prompt_file(bomb)
    # Many values, little text: the values' bound.
    many = tmp_path / "many.yaml"
    small = alias_bomb(7, 6).replace("lol lol lol lol", "x").replace("\n", "\n  ")
    many.write_text(f"{head}metadata:\n  {small}\n")
    with pytest.raises(FileError, match=r"expands to more than 100,000 values, the bound"):
        read_prompt_file(many)
    # Few values, much text: the text bound.
    text = tmp_path / "text.yaml"
    text.write_text(f"{head}metadata:\n  t0: &t0 '{'x' * 4000}'\n"
                    + "".join(f"  t{i}: &t{i} [*t{i - 1}, *t{i - 1}, *t{i - 1}, *t{i - 1}]\n"
                              for i in range(1, 7)))
    with pytest.raises(FileError, match=r"more than 1,000,000 characters of text"):
        read_prompt_file(text)
    # An alias inside what its anchor holds: a structure that contains itself.
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"{head}metadata: &m {{again: *m}}\n")
    with pytest.raises(FileError, match=r"more than 64 deep"):
        read_prompt_file(loop)
    # Nesting too deep for the parsers themselves.
    deep = tmp_path / "deep.json"
    deep.write_text('{"model": "m", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FileError, match=r"nests mappings and lists"):
        read_prompt_file(deep)
    # A real prompt file, anchors and all, is read.
    fine = tmp_path / "fine.yaml"
    fine.write_text("model: gpt-4o-mini\nmessages:\n  - &sys {role: system, content: Be brief.}\n"
                    "  - {role: user, content: 'Q: {{question}}'}\nmetadata: {again: *sys}\n")
    assert read_prompt_file(fine)["metadata"] == {"again": {"role": "system",
                                                            "content": "Be brief."}}


def test_an_alias_bomb_is_never_pushed(
        pytester: pytest.Pytester, phoenix_env: str, judge: StandInJudge, admin: PhoenixAdmin,
        answered: str) -> None:
    judge.configure(answers=ANSWERS)
    # 8 ** 6 = 262,144 copies, about 6 MB once expanded, from about 450 bytes.
    body = alias_bomb(6, 8).replace("\n", "\n  ")
    pytester.makefile(".yaml", bomb="model: gpt-4o-mini\n"
                                     "messages: [{role: user, content: 'Q: {{question}}'}]\n"
                                     f"metadata:\n  {body}\n")
    prompt = unique("s24-bomb")
    result = pytester.runpytest(f"--phoenix-dataset={answered}", "-p", "no:cacheprovider",
                                "--phoenix-task=prompt-file:bomb.yaml",
                                "--phoenix-fail-under=contains=0.6",
                                f"--phoenix-push-prompt={prompt}")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "--phoenix-task prompt-file:bomb.yaml: " in out, out
    assert "bomb.yaml: expands to more than 1,000,000 characters of text, the bound of a " \
        "prompt file" in out, out
    assert "Traceback" not in out and "MemoryError" not in out
    assert not judge.requests  # refused before anything ran
    versions = admin.http.get(f"/v1/prompts/{prompt}/versions")
    assert versions.status_code == 404 or versions.json()["data"] == [], versions.text
