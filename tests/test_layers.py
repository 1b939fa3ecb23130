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
NO_PYTEST = ("_core", "_run", "_evaluators", "_report", "_phoenix", "_tracing", "_modes")
# The pytest layer: only these modules may speak pytest (or import one another).
PYTEST_LAYER = ("plugin", "_session", "_options", "_option_parsers", "_items", "_xdist",
                "_tasks", "hookspecs")
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
                 or any(m == f"pytest_phoenix_evals.{name}"
                        or m.startswith(f"pytest_phoenix_evals.{name}.")
                        for name in PYTEST_LAYER))
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


# An in-memory sink of the Sink protocol: records every result, uploads nothing.
MEMORY_SINK = '''
    class MemorySink:
        def __init__(self):
            self.recorded, self.opened = [], []
        def open(self, group):
            self.opened.append(group)
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
            return UploadReport(destinations=[self.open(g) for g in dict.fromkeys(
                                    r.case.group for r in self.recorded)],
                                uploaded_runs=len(self.recorded))
'''


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

    {memory_sink}
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
''').replace("{memory_sink}", textwrap.dedent(MEMORY_SINK))


def test_runner_runs_an_in_memory_source_into_an_in_memory_sink_without_pytest() -> None:
    done = subprocess.run([sys.executable, "-c", RUNNER_SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RUNNER OK" in done.stdout


# --- the import graph -------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports, at any depth (lazy
    imports and those under TYPE_CHECKING too): ``from .x import name`` counts as importing
    ``x.name`` when that is a module, else ``x``. A package's ``__init__`` is not an edge."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for imported in _imports(path):
            found.add(imported)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolved(path, node)
                found |= {f"{base}.{alias.name}" for alias in node.names}
        targets = set()
        for imported in found:
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != PACKAGE.name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _resolved(path: Path, node: ast.ImportFrom) -> str:
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    if not node.level:
        return node.module or ""
    base = package.split(".")[:len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_the_package_modules() -> None:
    found = cycles(import_graph())
    assert not found, f"modules that import one another, directly or through others: {found}"


def test_the_cycle_guard_sees_a_cycle() -> None:
    """The guard would fail on a circle, and on one hidden in a lazy or a type-only import."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    assert "pytest_phoenix_evals._session" in graph["pytest_phoenix_evals.plugin"]  # lazy
    assert "pytest_phoenix_evals._session" in graph["pytest_phoenix_evals._xdist"]  # typing


def test_only_the_plugin_and_xdist_modules_import_the_session() -> None:
    importers = sorted(name for name, targets in import_graph().items()
                       if "pytest_phoenix_evals._session" in targets)
    assert importers == ["pytest_phoenix_evals._xdist", "pytest_phoenix_evals.plugin"]


def test_every_mode_is_one_module_chosen_in_one_place() -> None:
    """The modes' flags are read where the mode is chosen (``_modes/__init__.py``) and in the
    option table, not across the session."""
    session = (PACKAGE / "_session.py").read_text(encoding="utf-8")
    for flag in ("settings.project", "settings.benchmark", "is_prompt_task"):
        assert flag not in session, f"the session reads {flag}: the mode decides that"
    modes = {p.stem for p in (PACKAGE / "_modes").glob("*.py")}
    assert {"dataset", "spans", "benchmark", "prompt"} <= modes


MODES_SCRIPT = textwrap.dedent('''
    import sys
    import tempfile
    from pathlib import Path
    # No pytest (nor pluggy) in this process: importing either fails.
    for name in ("pytest", "_pytest", "pluggy"):
        sys.modules[name] = None

    from pytest_phoenix_evals._core.gates import parse_gate
    from pytest_phoenix_evals._core.naming import case_id
    from pytest_phoenix_evals._core.types import Case, Example, Group, OutputConfig, Score
    from pytest_phoenix_evals._core.verdict import parse_threshold
    from pytest_phoenix_evals._modes import choose
    from pytest_phoenix_evals._modes.base import run_without_pytest
    from pytest_phoenix_evals._modes.context import Context, Host
    from pytest_phoenix_evals._modes.outcome import Outcome
    from pytest_phoenix_evals._phoenix.traces import Project, SpanRecord
    from pytest_phoenix_evals._run.runner import Runner, RunSettings
    from pytest_phoenix_evals._run.sinks.base import Destination, UploadReport
    from pytest_phoenix_evals._run.sources.spans import Listing, SpanCase, SpanSelection, SpanSource
    from pytest_phoenix_evals._settings import Settings

    {memory_sink}
    def run(settings, **parts):
        said = []
        ctx = Context(settings, Host(rootpath=Path(tempfile.mkdtemp()), say=said.append,
                                     evaluators_hook=parts.pop("hook", lambda group, kind: [])))
        outcome = Outcome(settings, ctx.notices)
        mode = choose(settings)(ctx, outcome, **parts)
        runner = Runner(ctx.engine, parts["sink"],
                        RunSettings(thresholds=settings.thresholds, concurrency=2))
        try:
            results = run_without_pytest(mode, runner)
        finally:
            ctx.shut_down()
        return mode, outcome, results, said

    # --- production judging: a project's span listing, judged by an evaluator of code -------

    class Polite:
        name, kind, output_configs = "polite", "CODE", ()
        async def evaluate(self, context, example):
            ok = "please" in context["output"]
            return [Score(name="polite", evaluator="polite", score=float(ok),
                          label="yes" if ok else "no")]

    def span(i, output):
        return SpanCase(
            record=SpanRecord(node_id=f"N{i}", span_id=f"s{i}", trace_id=f"t{i}", name="llm",
                              span_kind="LLM", start_time="2026-12-01T00:00:00+00:00",
                              parent_id=None, status_code="OK", attributes={}, metadata={}),
            needs=("polite",), context={"input": f"q{i}", "output": output,
                                        "reference": None, "metadata": {}})

    listing = Listing(Project("P1", "support-bot"),
                      [span(1, "yes please"), span(2, "no"), span(3, "please do")])
    settings = Settings(project="support-bot", gates=(parse_gate("polite=0.5"),),
                        thresholds={"polite": parse_threshold("polite>=1")})
    source = SpanSource(None, SpanSelection(project="support-bot"), lambda group: [Polite()],
                        listing=listing)
    sink = MemorySink()
    mode, outcome, results, said = run(settings, source=source, sink=sink)
    assert type(mode).__name__ == "ProductionRun", mode
    assert sorted(r.passed for r in results) == [False, True, True]
    assert len(sink.recorded) == 3 and {r.case.group.kind for r in results} == {"spans"}
    assert [g.passed for g in outcome.gate_results] == [True]
    assert any("3 span(s) to judge" in line for line in said), said

    # --- a judge benchmark: a golden set in memory, the judge against the human labels ------

    GROUP = Group(kind="dataset", key="memory:golden", label="golden", dataset_id="D1",
                  dataset_name="golden", version_id="V1")

    def golden(i, answer, human):
        return Example(id=f"E{i}", input={"q": f"q{i}"}, reference={"answer": answer},
                       metadata={"label": human}, dataset_name="golden", dataset_id="D1",
                       version_id="V1")

    class Judge:  # an LLM judge's shape, answering from the output alone
        name, kind = "correct", "LLM"
        output_configs = (OutputConfig(kind="CATEGORICAL", name="correct",
                                       values=(("right", 1.0), ("wrong", 0.0))),)
        async def evaluate(self, context, example):
            label = "right" if context["output"]["answer"] == "4" else "wrong"
            return [Score(name="correct", evaluator="correct", label=label,
                          score=1.0 if label == "right" else 0.0)]

    class Loaded:
        name, version_id = "golden", "V1"
        examples = [golden(1, "4", "right"), golden(2, "5", "wrong"), golden(3, "4", "wrong"),
                    golden(4, "3", None)]

    class Golden:  # the dataset source's shape, in memory
        def groups(self):
            return [GROUP]
        def group(self, spec):
            return GROUP
        def dataset(self, group):
            return Loaded
        def cases(self, group):
            return [Case(e, case_id(e), group=group) for e in Loaded.examples]
        def attached_to(self, group):
            return [Judge()]
        def evaluators(self, group, extra=()):
            return [Judge(), *extra]
        def check_examples(self):
            return None
        def save_snapshots(self, rootpath):
            return []

    settings = Settings(datasets=("golden",), benchmark="correct",
                        gates=(parse_gate("agreement(correct)=0.6"),))
    sink = MemorySink()
    mode, outcome, results, said = run(settings, source=Golden(), sink=sink)
    assert type(mode).__name__ == "JudgeBenchmark", mode
    assert [r.passed for r in results] == [True, True, False]  # the unlabelled one left out
    assert len(sink.recorded) == 3
    assert [g.passed for g in outcome.gate_results] == [True]  # 2 of 3 agree
    report = "\\n".join(outcome.baseline_lines)
    assert "judge 'correct' against human labels on golden: n=3" in report, report
    assert "1 example(s) without a human label were left out" in report, report

    assert "pytest" not in [m for m in sys.modules if sys.modules[m] is not None]
    print("MODES OK")
''').replace("{memory_sink}", textwrap.dedent(MEMORY_SINK))


def test_modes_run_in_memory_without_pytest() -> None:
    """A span listing (production judging) and a benchmark over an in-memory golden set, each
    into an in-memory sink, in a process where importing pytest fails."""
    done = subprocess.run([sys.executable, "-c", MODES_SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MODES OK" in done.stdout
