"""The architecture, checked: which layer may import what, and the runner with no pytest at all.

These read the source (AST) or run a plain Python subprocess; no Phoenix server is needed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_phoenix_evals"

# Layers that must run without pytest (DESIGN: a pytest-free core; the runner, the evaluators
# and the report are used by other front ends too).
NO_PYTEST = ("_core", "_run", "_evaluators", "_report", "_phoenix", "_tracing")
# The only modules that may speak HTTP or call a model: the gateway, tracing's exporter, the
# judge client, and the webhook evaluator (a judge client of its own: it calls the user's URL).
HTTP_ALLOWED = ("_phoenix/", "_tracing/", "_evaluators/llm/client.py", "_evaluators/remote.py")
HTTP_LIBRARIES = ("httpx", "httpcore", "openai", "requests", "urllib3", "aiohttp")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports too), as absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
    return found


def _modules(*layers: str) -> list[Path]:
    return sorted(p for layer in layers for p in (PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(*NO_PYTEST),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_never_imports_pytest(path: Path) -> None:
    bad = sorted(m for m in _imports(path)
                 if m.split(".")[0] in ("pytest", "_pytest", "pluggy", "xdist")
                 or m.startswith("pytest_phoenix_evals._session")
                 or m.startswith("pytest_phoenix_evals._options")
                 or m.startswith("pytest_phoenix_evals.plugin")
                 or m.startswith("pytest_phoenix_evals._items"))
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}: this layer runs without pytest"


def test_only_the_gateway_tracing_and_judge_clients_speak_http() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(HTTP_ALLOWED):
            continue
        bad = sorted(m for m in _imports(path) if m.split(".")[0] in HTTP_LIBRARIES)
        if bad:
            offenders[relative] = bad
    assert not offenders, f"HTTP outside the gateway, tracing and judge clients: {offenders}"


def test_the_guard_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checks above would catch a violation hidden in a function or a relative import."""
    fake = PACKAGE / "_core" / "types.py"
    found = _imports(fake)
    assert "pytest_phoenix_evals._core.types" not in found  # a module does not import itself
    lazy = tmp_path / "x.py"
    lazy.write_text("def f():\n    import httpx\n    from pytest import fail\n")
    tree_imports = {n.names[0].name for n in ast.walk(ast.parse(lazy.read_text()))
                    if isinstance(n, ast.Import)}
    assert tree_imports == {"httpx"}
    assert "pytest_phoenix_evals._session" in _imports(PACKAGE / "plugin.py")


RUNNER_SCRIPT = textwrap.dedent('''
    import sys
    # No pytest (nor pluggy) in this process: importing either fails.
    for name in ("pytest", "_pytest", "pluggy"):
        sys.modules[name] = None

    from dataclasses import dataclass, field
    from pytest_phoenix_evals._core.types import Case, Example, Group, Score
    from pytest_phoenix_evals._core.naming import case_id
    from pytest_phoenix_evals._core.verdict import parse_threshold
    from pytest_phoenix_evals._run.engine import Engine
    from pytest_phoenix_evals._run.runner import Runner, RunSettings
    from pytest_phoenix_evals._run.sinks.base import Destination, UploadReport

    GROUP = Group(kind="dataset", key="memory:qa", label="qa", dataset_id="D1",
                  dataset_name="qa", version_id="V1")
    EXAMPLES = [Example(id=f"E{i}", input={"q": q}, reference={"a": a}, metadata={},
                        dataset_name="qa", dataset_id="D1", version_id="V1")
                for i, (q, a) in enumerate([("2+2", "4"), ("3+3", "6"), ("capital", "Paris")])]

    class Exact:
        name, kind, output_configs = "exact", "CODE", ()
        async def evaluate(self, context, example):
            ok = context["output"] == context["reference"]["a"]
            return [Score(name="exact", evaluator="exact", score=float(ok),
                          label=str(ok))]

    class ListSource:
        def groups(self):
            return [GROUP]
        def cases(self, group):
            return [Case(e, case_id(e), group=group) for e in EXAMPLES]
        def evaluators(self, group):
            return [Exact()]
        def task(self, group):
            def answer(input):
                if input["q"] == "capital":
                    raise RuntimeError("no idea")
                return str(eval(input["q"]))
            return answer

    class MemorySink:
        def __init__(self):
            self.recorded = []
        def open(self, group):
            return Destination(group, "X1", "memory://X1")
        async def project(self, group):
            return None
        def url(self, group):
            return "memory://X1"
        def record(self, result):
            self.recorded.append(result)
            result.mark(uploaded=True)
        async def room(self):
            return None
        def waiting(self):
            return 0
        def drain(self, timeout):
            return UploadReport(destinations=[self.open(GROUP)],
                                uploaded_runs=len(self.recorded))

    engine = Engine(threads=4)
    sink = MemorySink()
    seen = []
    runner = Runner(engine, sink, RunSettings(thresholds={"exact": parse_threshold("exact>=1")},
                                              concurrency=2, repetitions=2),
                    source=ListSource(), observers=[seen.append])
    results = runner.run_all()
    engine.close()
    print([(r.case.example.id, r.case.repetition, r.passed, r.error) for r in results])
    assert len(results) == 6 and len(sink.recorded) == 6 and len(seen) == 6
    assert [r.passed for r in results] == [True, True, True, True, False, False]
    assert results[4].error == "RuntimeError: no idea"
    assert {r.case.group.key for r in results} == {"memory:qa"}
    assert sink.drain(1).uploaded_runs == 6
    assert "pytest" not in [m for m in sys.modules if sys.modules[m] is not None]
    print("RUNNER OK")
''')


def test_runner_runs_an_in_memory_source_into_an_in_memory_sink_without_pytest() -> None:
    done = subprocess.run([sys.executable, "-c", RUNNER_SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RUNNER OK" in done.stdout
