"""The documentation: the generated option page is current, no link leaves the repository, the
README stays short and holds the two set-up commands. No Phoenix server is needed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SETUP_COMMANDS = ("python3 example_suite/run.py", "python3 scripts/run_tests.py")
MAX_README_WORDS = 1600


def documents() -> list[Path]:
    found = [ROOT / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")]
    found += sorted((ROOT / "docs").glob("*.md"))
    return found


def prose(text: str) -> str:
    """The text without fenced code blocks, inline code and HTML comments, where nothing is a
    link."""
    text = re.sub(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", "", text, flags=re.M | re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


# [text](target "title"), ![alt](target), <scheme://...>, [label]: target
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
_BARE = re.compile(r"\b(?:https?://|www\.|mailto:)\S+", re.I)


def links(text: str) -> list[str]:
    body = prose(text)
    return _INLINE.findall(body) + _REFERENCE.findall(body) + _AUTOLINK.findall(body)


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_inside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    problems = []
    for target in links(text):
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            problems.append(f"{target}: points outside the repository")
            continue
        path = target.split("#", 1)[0]
        if not path:
            continue  # an anchor in the same page
        resolved = (document.parent / path).resolve()
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: leaves the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    # A bare address would be turned into a link by most renderers.
    problems += [f"{url}: a bare address outside code" for url in _BARE.findall(prose(text))]
    assert not problems, f"{document.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_link_check_finds_what_it_should() -> None:
    text = ("[a](docs/x.md#y) ![b](img.png) [c](https://example.org) <mailto:x@y.z>\n"
            "[d]: ../up.md\n`[e](http://in-code)`\n```\n[f](http://in-a-block)\n```\n")
    assert links(text) == ["docs/x.md#y", "img.png", "https://example.org", "../up.md",
                           "mailto:x@y.z"]
    assert _BARE.findall(prose("see http://a.b/c and `http://d.e`")) == ["http://a.b/c"]


def test_options_page_is_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "options_doc.py")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    current = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert current == result.stdout, (
        "docs/options.md is out of date: run "
        "'.venv/bin/python scripts/options_doc.py > docs/options.md'")


def test_options_page_names_every_option() -> None:
    from pytest_phoenix_evals import _options

    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    missing = [o.name for o in _options.OPTIONS
               if "--phoenix-" + o.name.replace("_", "-") not in page]
    assert not missing


def test_options_check_mode_agrees() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "options_doc.py"), "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_readme_is_short() -> None:
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= MAX_README_WORDS, f"README.md has {words} words (at most {MAX_README_WORDS})"


def test_readme_holds_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = [block.strip() for block in re.findall(r"^```[^\n]*\n(.*?)^```", text,
                                                     flags=re.M | re.S)]
    for command in SETUP_COMMANDS:
        assert command in blocks, f"README.md lacks a code block holding just {command!r}"


def test_the_printed_commands_know_which_options_take_no_value() -> None:
    """The commands the plugin prints carry options over from the command line that ran
    (``_core/commands.py``); which of them are flags must follow the option table."""
    from pytest_phoenix_evals import _options
    from pytest_phoenix_evals._core.commands import FLAGS, SPAN_ONLY, carried_options

    assert {o.name.replace("_", "-") for o in _options.OPTIONS if o.kind == "bool"} == FLAGS
    names = {o.name.replace("_", "-") for o in _options.OPTIONS}
    assert names >= SPAN_ONLY
    assert carried_options(
        ["--phoenix-project", "bot", "--phoenix-rejudge", "tests", "--phoenix-evaluators=a,b",
         "--phoenix-url", "http://x", "-k", "spain", "--phoenix-cache"], SPAN_ONLY) == \
        ["--phoenix-evaluators=a,b", "--phoenix-url", "http://x", "--phoenix-cache"]


def test_readme_holds_no_other_set_up_command() -> None:
    """Installing Phoenix, seeding a dataset, tracing an app: docs/your-project.md shows how;
    the README's fenced commands set up nothing but the two."""
    text = README.read_text(encoding="utf-8")
    lines = [line.strip() for block in re.findall(r"^```[^\n]*\n(.*?)^```", text,
                                                  flags=re.M | re.S)
             for line in block.splitlines()]
    set_up = [line for line in lines
              if re.match(r"(pip|python3?|docker|phoenix|export|uv|npm|conda)( |$)", line)]
    assert sorted(set_up) == sorted(SETUP_COMMANDS), set_up


def test_readme_shows_five_options_and_links_the_rest() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("The options used most:"):]
    table = table[:table.index("\n\n", table.index("| --- |"))]
    shown = re.findall(r"^\| `(--phoenix-[a-z-]+)", table, flags=re.M)
    assert len(shown) == 5, shown
    from pytest_phoenix_evals import _options

    names = {"--phoenix-" + o.name.replace("_", "-") for o in _options.OPTIONS}
    assert set(shown) <= names
    assert "[docs/options.md](docs/options.md)" in text
    assert "(docs/your-project.md)" in text
