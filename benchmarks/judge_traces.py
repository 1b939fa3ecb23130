#!/usr/bin/env python3
"""What one LLM judge call exports as its trace, and what the Phoenix server pays to store it:
this checkout's code beside an earlier commit's, side by side.

    python3 benchmarks/judge_traces.py [--before REV] [--calls 1000] [--no-server]
                                       [--loss N] [--plugin-loss N]

For each code (``--before``, default the commit this branch started from, taken out of git
into a temporary folder; and this checkout) a process of its own runs the plugin's own judges
``qa_correctness`` and ``hallucination`` on production-span contexts (an LLM span with a
question, an answer and a retrieved document, as ``benchmarks/spans.py`` sends) against the
stand-in judge, traced through the plugin's ``JudgeTrace`` into an in-memory exporter; it
measures one call (spans; OTLP protobuf bytes; attribute bytes; how many attribute values
carry the judge's system prompt, the question, the document, the explanation) and encodes
the spans of ``--calls`` calls as OTLP payloads of 4,096 spans (the exporter's batch).

Then (unless ``--no-server``) a fresh Phoenix server takes each code's payloads, posted
directly to ``/v1/traces`` (on 503, at capacity, the post waits and is repeated), timed from
the first post until the server lists every span and is idle again, with the server's CPU
seconds; and, for scale, the same number of annotations (one a call, on its judge's root
span, 200 a request, ``POST /v1/span_annotations?sync=true``, 4 at once), which is what the
judge calls exist for. That is the server's cost of the traces, counted into the floor of
``benchmarks/spans.py`` (its ``judge_trace_floor``).

``--loss N`` then traces N judge calls as fast as each code makes their spans and sends them
as a session does (the before code's 10 s at the end, this one's 300 s of patience), counting
the spans lost; ``--plugin-loss N`` runs the plugin itself (each code) on N production spans
and reads back how many judge spans the server holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEV_VENV = ROOT / ".venv"
BATCH = 4096  # spans an OTLP post: the exporter's batch
ANNOTATION_BATCH = 200
JUDGES = ("qa_correctness", "hallucination")


def log(message: str) -> None:
    print(f"[judge-traces] {message}", file=sys.stderr, flush=True)


# --- measuring: runs with the code under test on sys.path -------------------------------------

def conversation(i: int) -> dict[str, str]:
    """As benchmarks/spans.py's conversation ``i``: a sum, the app's answer, its document."""
    a, b = 3 + i % 97, 5 + (i * 7) % 89
    return {"question": f"Case {i}: what is {a} plus {b}?", "answer": f"{a} plus {b} is {a + b}",
            "document": f"Notes on arithmetic, case {i}: {a} plus {b} is {a + b}."}


def subject_context(i: int) -> dict[str, Any]:
    """The evaluation context the plugin builds for the LLM span of conversation ``i``
    (``--phoenix-reference=$.metadata.documents``), from the attributes Phoenix lists."""
    from pytest_phoenix_evals._phoenix.traces import SpanRecord
    from pytest_phoenix_evals._run.sources.spans import span_context

    c = conversation(i)
    attributes = {
        "openinference": {"span": {"kind": "LLM"}},
        "input": {"value": c["question"]}, "output": {"value": c["answer"]},
        "llm": {"model_name": "gpt-4o-mini",
                "input_messages": [{"message": {"role": "system",
                                                "content": "Answer in a sentence."}},
                                   {"message": {"role": "user", "content": c["question"]}}],
                "output_messages": [{"message": {"role": "assistant",
                                                 "content": c["answer"]}}]}}
    record = SpanRecord(node_id=f"U3Bhbjo{i}", span_id=f"{i:016x}", trace_id=f"{i:032x}",
                        name="ChatCompletion", span_kind="LLM",
                        start_time="2026-12-01T00:00:00+00:00", parent_id=f"{i + 1:016x}",
                        status_code="OK", attributes=attributes, metadata={})
    return span_context(record, [c["document"]], "$.metadata.documents")


class _Tracers:
    """Stands in for the plugin's Tracing: every project's spans go to one in-memory
    exporter (what is measured is what would be encoded and posted)."""

    def __init__(self, project: str) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def tracer(self, project: str) -> Any:
        return self.provider.get_tracer("pytest_phoenix_evals")


def attribute_bytes(spans: list[Any]) -> int:
    """UTF-8 bytes of every attribute key and value (numbers and booleans: 8)."""
    total = 0
    for span in spans:
        for key, value in (span.attributes or {}).items():
            total += len(key.encode())
            values = value if isinstance(value, (list, tuple)) else [value]
            total += sum(len(v.encode()) if isinstance(v, str) else 8 for v in values)
    return total


def copies(spans: list[Any], text: str) -> int:
    """How many attribute values hold ``text`` (JSON-escaped or not)."""
    escaped = json.dumps(text)[1:-1]
    found = 0
    for span in spans:
        for value in (span.attributes or {}).values():
            values = value if isinstance(value, (list, tuple)) else [value]
            found += sum(isinstance(v, str) and (text in v or escaped in v) for v in values)
    return found


def measure_main(argv: list[str]) -> int:
    """``judge_traces.py measure OUT PAYLOADS CALLS JUDGE_URL PROJECT``: one JSON line of
    figures into OUT, the OTLP payloads of CALLS judge calls into PAYLOADS."""
    out, payloads, calls, judge_url, project = argv[0], Path(argv[1]), int(argv[2]), argv[3], \
        argv[4]
    import pytest_phoenix_evals
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from pytest_phoenix_evals._evaluators.llm import catalog
    from pytest_phoenix_evals._evaluators.llm.client import Judges
    from pytest_phoenix_evals._evaluators.llm.trace import JudgeTrace
    from pytest_phoenix_evals._judge_settings import JudgeSettings

    os.environ.update(OPENAI_BASE_URL=judge_url, OPENAI_API_KEY="bench-not-a-key")
    tracers = _Tracers(project)
    judges_made = [getattr(catalog, name)() for name in JUDGES]
    first: dict[str, list[Any]] = {}
    explanations: dict[str, str] = {}
    root_ids: list[str] = []

    async def run() -> None:
        judges = Judges(JudgeSettings(concurrency=16))
        for judge in judges_made:
            judge.judges = judges
            judge.tracing = JudgeTrace(tracers, "judges")  # type: ignore[arg-type]
        try:
            for i in range(calls):
                context = subject_context(i)
                for judge in judges_made:
                    before = len(tracers.exporter.get_finished_spans())
                    scores = await judge.evaluate(context, None)
                    spans = list(tracers.exporter.get_finished_spans()[before:])
                    if i == 0:
                        first[judge.name] = spans
                        explanations[judge.name] = scores[0].explanation or ""
                    root_ids.extend(format(s.context.span_id, "016x") for s in spans
                                    if s.parent is None)
        finally:
            await judges.aclose()

    asyncio.run(run())
    spans = list(tracers.exporter.get_finished_spans())
    with payloads.open("wb") as sink:
        for start in range(0, len(spans), BATCH):
            body = encode_spans(spans[start:start + BATCH]).SerializeToString()
            sink.write(len(body).to_bytes(8, "big") + body)
    c = conversation(0)
    per_judge = {}
    for judge in judges_made:
        call = first[judge.name]
        assert judge.prompt is not None
        system = str(judge.prompt.messages[0]["content"])
        per_judge[judge.name] = {
            "spans": len(call),
            "names": [s.name for s in call],
            "otlp_bytes": len(encode_spans(call).SerializeToString()),
            "attribute_bytes": attribute_bytes(call),
            "attributes": sum(len(s.attributes or {}) for s in call),
            "copies": {"system prompt": copies(call, system),
                       "question": copies(call, c["question"]),
                       "document": copies(call, c["document"]),
                       "explanation": copies(call, explanations[judge.name])},
        }
    Path(out).write_text(json.dumps({
        "code": str(Path(pytest_phoenix_evals.__file__).parent),
        "per_judge": per_judge, "spans": len(spans), "calls": calls * len(judges_made),
        "root_ids": root_ids, "payload_bytes": payloads.stat().st_size}))
    return 0


def loss_main(argv: list[str]) -> int:
    """``judge_traces.py loss CALLS FOLDER [URL]``: CALLS judge calls traced as fast as the
    code makes their spans (no model call), through the plugin's own Tracing, which sends
    them to the server at URL at the end as a session does (shut down with the session's
    patience, 10 s before, 300 s now); without URL as a pytest-xdist worker has it (the spool
    handed over in FOLDER: only what is lost on the way to the spool). Prints one JSON line:
    spans lost, spans ended."""
    calls, folder = int(argv[0]), Path(argv[1])
    url = argv[2] if len(argv) > 2 else None  # a server: the spool is sent there at the end
    from pytest_phoenix_evals._evaluators.llm.trace import JudgeTrace
    from pytest_phoenix_evals._tracing.export import Tracing
    from pytest_phoenix_evals._tracing.spans import llm_attributes

    tracing = Tracing(url, {}) if url else Tracing("http://127.0.0.1:9", hand_over=folder)
    judge = JudgeTrace(tracing, "judges")
    started, before = time.perf_counter(), False
    for i in range(calls):
        context = subject_context(i)
        c = conversation(i)
        messages = [{"role": "system", "content": "You check answers against a reference."},
                    {"role": "user", "content": f"{c['question']} {c['answer']} {c['document']}"}]
        with judge.evaluator("qa_correctness", context) as call:
            before = hasattr(call, "prompt")
            if before:  # the code before: a Prompt span too
                call.prompt("qa_correctness", {"question": c["question"]}, messages)
            with call.llm("gpt-4o-mini", "OPENAI", {"messages": messages}) as llm:
                llm.set_attributes(llm_attributes(
                    output_messages=[{"role": "assistant", "content": "correct"}],
                    prompt_tokens=50, completion_tokens=5))
            call.finish([{"name": "qa_correctness", "label": "correct", "score": 1.0,
                          "explanation": "stand-in"}], None)
    made = time.perf_counter() - started
    tracing.shutdown(timeout_seconds=10 if before else 300)  # the session's, then and now
    lost, ended = tracing.lost_spans
    print(json.dumps({"lost": lost, "ended": ended, "seconds": made}))
    return 0


# --- the server's side ------------------------------------------------------------------------

def post_payloads(url: str, payloads: Path) -> int:
    """Post every OTLP payload of the file to ``{url}/v1/traces``; a 503 (the server's span
    queue at capacity) is waited out and the post repeated. How many posts were refused."""
    import httpx

    refused = 0
    with httpx.Client(timeout=300, headers={"Content-Type": "application/x-protobuf"}
                      ) as http, payloads.open("rb") as source:
        while header := source.read(8):
            body = source.read(int.from_bytes(header, "big"))
            while (status := http.post(f"{url}/v1/traces", content=body).status_code) == 503:
                refused += 1
                time.sleep(1.0)
            if status != 200:
                raise SystemExit(f"Phoenix answered {status} to an OTLP post")
    return refused


class Server:
    def __init__(self, workdir: Path) -> None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from phoenix_server import start_server

        log("starting Phoenix (the first time, this installs it: a couple of minutes)")
        self.running = start_server(workdir)
        self.url = self.running.url

    def cpu(self) -> float:
        """CPU seconds the server's process has used so far (Linux /proc; else 0)."""
        try:
            stat = Path(f"/proc/{self.running.process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout: float = 600) -> None:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.cpu()
            time.sleep(0.5)
            if self.cpu() - before < 0.025:
                return

    def span_count(self, project: str) -> int:
        import httpx

        response = httpx.post(f"{self.url}/graphql", timeout=60, json={
            "query": "query($name: String!) { getProjectByName(name: $name) { recordCount } }",
            "variables": {"name": project}})
        found = response.json()["data"]["getProjectByName"]
        return int(found["recordCount"]) if found else 0

    def ingest(self, payloads: Path, project: str, expected: int) -> dict[str, float]:
        """Post the payloads; seconds until every span is listed and the server is idle, its
        CPU seconds, and how many posts were answered 503 (and repeated)."""
        self.wait_idle()
        cpu, started = self.cpu(), time.perf_counter()
        refused = post_payloads(self.url, payloads)
        posted = time.perf_counter() - started
        while (count := self.span_count(project)) < expected:
            if time.perf_counter() - started > 3600:
                raise SystemExit(f"Phoenix stored {count} of {expected} spans in {project}")
            time.sleep(1.0)
        stored = time.perf_counter() - started
        self.wait_idle()
        return {"posted_s": posted, "stored_s": stored, "server_cpu_s": self.cpu() - cpu,
                "refused": refused}

    def annotate(self, span_ids: list[str]) -> dict[str, float]:
        """One annotation a span, as the plugin writes them; seconds and server CPU."""
        import httpx

        rows = [{"span_id": span_id, "name": "qa_correctness", "annotator_kind": "LLM",
                 "identifier": "judge-traces-bench",
                 "result": {"label": "correct", "score": 1.0,
                            "explanation": "stand-in judge: the answer contains the reference"},
                 "metadata": {"evaluator": "qa_correctness"}} for span_id in span_ids]
        batches = iter([rows[i:i + ANNOTATION_BATCH]
                        for i in range(0, len(rows), ANNOTATION_BATCH)])

        async def post_all() -> None:
            async with httpx.AsyncClient(base_url=self.url, timeout=300) as http:
                async def worker() -> None:
                    for batch in batches:
                        (await http.post("/v1/span_annotations", params={"sync": "true"},
                                         json={"data": batch})).raise_for_status()

                await asyncio.gather(*(worker() for _ in range(4)))

        self.wait_idle()
        cpu, started = self.cpu(), time.perf_counter()
        asyncio.run(post_all())
        seconds = time.perf_counter() - started
        self.wait_idle()
        return {"stored_s": seconds, "server_cpu_s": self.cpu() - cpu}

    def stop(self) -> None:
        self.running.stop()


def plugin_loss(n: int, before: Path, workdir: Path, judge_url: str, server: Server
                ) -> list[str]:
    """The plugin itself (the code before, then this checkout's) judging ``n`` production
    LLM spans with both judges, as ``benchmarks/spans.py``'s memory run does (judge latency
    0, concurrency 16), each on its own project of the same server; then the judge spans the
    server holds, read back once it is idle, against the 2n judge calls. Lines to print."""
    import re

    import spans as span_bench

    lines = []
    projects = {"before": f"loss-before-{n}", "after": f"loss-after-{n}"}
    for project in projects.values():
        span_bench.emit(server.url, project, n, traces=False)
    while any(server.span_count(p) < n for p in projects.values()):
        time.sleep(5)
    server.wait_idle()
    for label, project in projects.items():
        judged_before = server.span_count(span_bench.JUDGE_PROJECT)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PHOENIX_", "OTEL_", "OPENAI_", "PYTEST_"))}
        env.update(PHOENIX_COLLECTOR_ENDPOINT=server.url, OPENAI_BASE_URL=judge_url,
                   OPENAI_API_KEY="bench-not-a-key")
        if label == "before":
            env["PYTHONPATH"] = str(before)
        run_dir = workdir / f"run-{label}"
        run_dir.mkdir()
        (run_dir / "pytest.ini").write_text("[pytest]\n")
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                   f"--phoenix-project={project}",
                   "--phoenix-evaluators=qa_correctness,hallucination", "--phoenix-settle=0s",
                   "--phoenix-concurrency=16", "--phoenix-judge-concurrency=16",
                   "--phoenix-reference=$.metadata.reference"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        (workdir / f"run-{label}.log").write_text(done.stdout + done.stderr)
        server.wait_idle(timeout=3600)
        stored = server.span_count(span_bench.JUDGE_PROJECT) - judged_before
        said = re.findall(r"(\d+) of (\d+) trace span\(s\)[^\n]*", done.stdout)
        per_call = 3 if label == "before" else 2
        lines.append(f"plugin judging {n} spans ({label}, exit {done.returncode}, {wall:.0f} s): "
                     f"the server holds {stored} judge spans of {2 * n * per_call} "
                     f"({2 * n} calls x {per_call}); the run said: "
                     + (f"{said[0][0]} of {said[0][1]} trace spans did not reach Phoenix"
                        if said else "nothing lost"))
        log(lines[-1])
    return lines


# --- the comparison ---------------------------------------------------------------------------

def checkout(rev: str, into: Path) -> Path:
    """The package as it was at ``rev`` (git archive), for PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pytest_phoenix_evals"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(label: str, pythonpath: Path | None, workdir: Path, calls: int, judge_url: str
            ) -> tuple[dict[str, Any], Path]:
    out, payloads = workdir / f"{label}.json", workdir / f"{label}.otlp"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(p) for p in (pythonpath, ROOT / "scripts") if p is not None])
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "measure", str(out),
                    str(payloads), str(calls), judge_url, f"judge-traces-{label}"],
                   check=True, env=env, cwd=workdir)
    return json.loads(out.read_text()), payloads


def report(rows: dict[str, dict[str, Any]], server: dict[str, dict[str, Any]],
           args: argparse.Namespace) -> str:
    from tabulate import tabulate

    labels = list(rows)
    lines = [f"one judge call of each of {' / '.join(JUDGES)} (on the first of {args.calls} "
             f"production-span contexts; then all {2 * args.calls} calls):", ""]
    table = []

    def per_call(key: str) -> list[str]:
        return [" / ".join(str(rows[label]["per_judge"][j][key]) for j in JUDGES)
                for label in labels]

    table.append(["spans a call", *per_call("spans")])
    table.append(["span names", *[" + ".join(rows[label]["per_judge"][JUDGES[0]]["names"])
                                  for label in labels]])
    table.append(["OTLP bytes a call", *per_call("otlp_bytes")])
    table.append(["attribute bytes a call", *per_call("attribute_bytes")])
    table.append(["attributes a call", *per_call("attributes")])
    for text in ("system prompt", "question", "document", "explanation"):
        table.append([f"values holding the {text}",
                      *[" / ".join(str(rows[label]["per_judge"][j]["copies"][text])
                                   for j in JUDGES) for label in labels]])
    table.append([f"spans of {2 * args.calls} calls", *[str(rows[label]["spans"])
                                                       for label in labels]])
    table.append([f"OTLP kB of {2 * args.calls} calls",
                  *[f"{rows[label]['payload_bytes'] / 1e3:.0f}" for label in labels]])
    for key, name in (("stored_s", "server: seconds to store them"),
                      ("server_cpu_s", "server: CPU seconds"),
                      ("refused", "server: posts answered 503 (repeated)")):
        if server:
            table.append([name, *[f"{server[label][key]:.1f}" if key != "refused"
                                  else str(server[label][key]) for label in labels]])
    lines.append(tabulate(table, headers=["per judge call (qa_correctness / hallucination)",
                                          *labels], disable_numparse=True))
    if "annotations" in server:
        a = server["annotations"]
        lines += ["", f"for scale, {2 * args.calls} annotations (one a call, 200 a request, "
                      f"4 at once, sync): {a['stored_s']:.1f} s, server CPU "
                      f"{a['server_cpu_s']:.1f} s"]
    lines += ["", "code: " + "; ".join(f"{label} {rows[label]['code']}" for label in labels),
              "command: python3 benchmarks/judge_traces.py " + " ".join(sys.argv[1:])]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="3acfd9b",
                        help="the earlier commit to compare with (3acfd9b)")
    parser.add_argument("--calls", type=int, default=1000,
                        help="production spans, each judged by both judges (1000)")
    parser.add_argument("--no-server", action="store_true",
                        help="only the figures of one call, no server")
    parser.add_argument("--loss", type=int, default=0,
                        help="then trace this many calls as fast as they are made, and count\n"
                             "the spans lost on the way to the spool (0: not)")
    parser.add_argument("--plugin-loss", type=int, default=0,
                        help="then run the plugin (before and after) on this many production\n"
                             "spans and count the judge spans the server holds (0: not)")
    parser.add_argument("--keep-workdir", action="store_true")
    return parser.parse_args(argv)


def main() -> int:
    if sys.argv[1:2] == ["measure"]:
        return measure_main(sys.argv[2:])
    if sys.argv[1:2] == ["loss"]:
        return loss_main(sys.argv[2:])
    if Path(sys.prefix).resolve() != DEV_VENV.resolve():
        sys.path.insert(0, str(ROOT / "scripts"))
        from run_tests import ensure_dev_venv

        python = ensure_dev_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    args = parse_args(sys.argv[1:])
    sys.path.insert(0, str(ROOT / "scripts"))
    from stand_in_judge import StandInJudge

    workdir = Path(tempfile.mkdtemp(prefix="pytest-phoenix-evals-judge-traces-"))
    judge = StandInJudge().start()
    server: Server | None = None
    failed = True
    try:
        rows: dict[str, dict[str, Any]] = {}
        payloads: dict[str, Path] = {}
        for label, path in ((f"before ({args.before})", checkout(args.before,
                                                                 workdir / "before")),
                            ("after (this checkout)", None)):
            log(f"measuring {label}")
            rows[label], payloads[label] = measure(label.split()[0], path, workdir,
                                                   args.calls, judge.url)
        figures: dict[str, dict[str, Any]] = {}
        if not args.no_server:
            server = Server(workdir / "phoenix")
            for label in rows:
                log(f"the server stores {rows[label]['spans']} spans of {label}")
                figures[label] = server.ingest(payloads[label],
                                               f"judge-traces-{label.split()[0]}",
                                               rows[label]["spans"])
                log(f"  {figures[label]}")
            log("the server stores one annotation a call")
            figures["annotations"] = server.annotate(rows[list(rows)[-1]]["root_ids"])
        print(report(rows, figures, args))
        if args.plugin_loss:
            if server is None:
                server = Server(workdir / "phoenix")
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            for line in plugin_loss(args.plugin_loss, workdir / "before", workdir, judge.url,
                                    server):
                print(line)
        if args.loss:
            for label, path in (("before", workdir / "before"), ("after", None)):
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                    str(p) for p in (path, ROOT / "scripts") if p is not None))
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "loss", str(args.loss),
                     str(workdir / f"loss-{label}"), *([server.url] if server else [])],
                    check=True, env=env,
                    capture_output=True, text=True)
                out = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"{args.loss} judge calls traced as fast as they are made, {label}: "
                      f"{out['lost']} of {out['ended']} spans lost "
                      f"({'sent to the server' if server else 'on the way to the spool'}) "
                      f"(made in {out['seconds']:.1f} s)")
        failed = False
    finally:
        judge.stop()
        if server is not None:
            server.stop()
        if args.keep_workdir or failed:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
