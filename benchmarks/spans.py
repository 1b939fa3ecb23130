#!/usr/bin/env python3
"""Judge a Phoenix project's production spans three ways against a local Phoenix server and
time them: this plugin, the way Phoenix's documentation does it, and a floor.

    python3 benchmarks/spans.py [--spans 1000,4000] [--latency 0.05] [--concurrency 16]
                                [--repeat 1] [--memory-spans 10000] [--profile]

It starts everything it needs itself (a Phoenix server in a temporary directory, the stand-in
judge answering after ``--latency`` seconds), sends N conversations per runner over OTLP/HTTP
into a project of that runner's own (each a trace: CHAIN ``qa``, RETRIEVER ``retrieve``, LLM
``ChatCompletion``), waits until Phoenix lists them all, and then times, one after another:

* ``plugin``: ``pytest --phoenix-project=P --phoenix-evaluators=qa_correctness,hallucination
  --phoenix-reference=$.metadata.documents --phoenix-concurrency=C
  --phoenix-judge-concurrency=C``;
* ``peer``: this file run as ``spans.py peer`` in a virtual environment of its own
  (arize-phoenix-client and arize-phoenix-evals): the client's span queries for the LLM spans
  and their trace's retrieved documents, two of arize-phoenix-evals' prebuilt judges
  (``CorrectnessEvaluator``, ``FaithfulnessEvaluator``) through ``async_evaluate_dataframe(...,
  concurrency=C)``, then ``to_annotation_dataframe`` and
  ``client.spans.log_span_annotations_dataframe``. Its model's rate limiter starts at
  ``--peer-rate`` requests a second; ``peer_default`` is the same with the limiter's default
  start (5 a second);
* ``floor``: max(N*2*L/C, the seconds the server takes to accept the 2N annotations posted
  directly, ``POST /v1/span_annotations?sync=true``, 200 a request, by C workers);
* ``floor_traced``: the floor plus the server storing the judges' own trace spans of the same
  run, their OTLP payloads posted directly after the annotations (:func:`judge_trace_floor`).

Each size of ``--spans`` (a comma-separated list) gets its table: the same runners, each on
N spans of a project of its own.

Every runner is its own process (the floor: this one) with its own project; afterwards each
project's annotations are counted on the server, and each runner's peak memory (max RSS) is
read from ``os.wait4``. ``--memory-spans N`` then runs the plugin and the peer once more on N
spans each (LLM spans only, judge latency ``--memory-latency``) for their peak memory.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import Bench as DatasetBench
from run import _short, _versions

ROOT = Path(__file__).resolve().parent.parent
DEV_VENV = ROOT / ".venv"
RUNNERS = ("plugin", "plugin_untraced", "peer", "peer_default", "floor", "floor_traced")
# peer_default (the documented rate limiter, 5 requests a second at first) takes minutes at
# 4,000 spans: run it with --runners plugin,peer,peer_default,floor,floor_traced.
DEFAULT_RUNNERS = ("plugin", "peer", "floor", "floor_traced")
# The runners that send their judges' traces to Phoenix (the peer's judges are not traced).
TRACES_JUDGES = ("plugin",)
LABELS = {"plugin": "pytest-phoenix-evals", "plugin_untraced": "pytest-phoenix-evals untraced",
          "peer": "phoenix docs, limiter raised", "peer_default": "phoenix docs, default limiter",
          "floor": "floor", "floor_traced": "floor with the judges' traces"}
PEER_PACKAGES = ["arize-phoenix-client==3.5.0", "arize-phoenix-evals==3.9.4", "openai", "pandas"]
JUDGES = {"plugin": ("qa_correctness", "hallucination"),
          "plugin_untraced": ("qa_correctness", "hallucination"),
          "peer": ("correctness", "faithfulness"),
          "peer_default": ("correctness", "faithfulness"),
          "floor": ("qa_correctness", "hallucination"),
          "floor_traced": ("qa_correctness", "hallucination")}
JUDGE_PROJECT = "pytest-phoenix-evals judges"  # where this plugin traces its judge calls
WRITE_BATCH = 200  # annotations a request, as this plugin writes them
SEND_CHUNK = 1000  # conversations sent at once (then stored before the next)
# arize-phoenix-evals asks its judges for structured output (a JSON text, no tool call): the
# stand-in judge answers such a request with the text of the first pair whose phrase occurs in
# the prompt. This plugin's judges use a tool call, which these do not affect.
PEER_ANSWERS = [[phrase, json.dumps({"explanation": "stand-in judge: structured answer",
                                     "label": label})]
                for phrase, label in (("labeling model outputs for correctness", "correct"),
                                      ("faithful or unfaithful", "faithful"))]


def log(message: str) -> None:
    print(f"[bench-spans] {message}", file=sys.stderr, flush=True)


# --- the workload: what the app sent --------------------------------------------------------

def conversation(i: int) -> dict[str, str]:
    """Conversation ``i`` (deterministic): a sum, the app's answer, the document it found."""
    a, b = 3 + i % 97, 5 + (i * 7) % 89
    return {"question": f"Case {i}: what is {a} plus {b}?", "answer": f"{a} plus {b} is {a + b}",
            "document": f"{a} plus {b} is {a + b}"}


def emit(url: str, project: str, n: int, *, traces: bool, first: int = 0) -> None:
    """Send n conversations into ``project`` over OTLP/HTTP through a batching exporter. With
    ``traces`` each is a trace of three spans (CHAIN root, RETRIEVER with the document, LLM);
    without, only the LLM span, which carries the document in its metadata (``reference``)."""
    from openinference.semconv.trace import SpanAttributes as A
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=120),
        max_queue_size=3 * n + 512, max_export_batch_size=512, schedule_delay_millis=100))
    tracer = provider.get_tracer("bench-spans")
    for i in range(first, first + n):
        c = conversation(i)
        llm: dict[str, Any] = {A.OPENINFERENCE_SPAN_KIND: "LLM", A.LLM_MODEL_NAME: "gpt-4o-mini",
                               A.INPUT_VALUE: c["question"], A.OUTPUT_VALUE: c["answer"]}
        for prefix, role, text in (("llm.input_messages.0", "system", "Answer in a sentence."),
                                   ("llm.input_messages.1", "user", c["question"]),
                                   ("llm.output_messages.0", "assistant", c["answer"])):
            llm[f"{prefix}.message.role"] = role
            llm[f"{prefix}.message.content"] = text
        if not traces:
            llm[A.METADATA] = json.dumps({"reference": c["document"]})
            tracer.start_span("ChatCompletion", attributes=llm).end()
            continue
        with tracer.start_as_current_span("qa", attributes={
                A.OPENINFERENCE_SPAN_KIND: "CHAIN", A.INPUT_VALUE: c["question"],
                A.OUTPUT_VALUE: c["answer"]}):
            tracer.start_span("retrieve", attributes={
                A.OPENINFERENCE_SPAN_KIND: "RETRIEVER", A.INPUT_VALUE: c["question"],
                "retrieval.documents.0.document.content": c["document"]}).end()
            tracer.start_span("ChatCompletion", attributes=llm).end()
    provider.shutdown()  # exports what is queued


# --- the peer: runs in its own virtual environment ------------------------------------------

def peer_main(argv: list[str]) -> int:
    """``spans.py peer PROJECT N CONCURRENCY RATE REFERENCE``: the documented way, in a
    process of its own. RATE 0 keeps the model's default rate limiter; REFERENCE is
    ``documents`` (the retriever spans of the trace) or ``metadata`` (the LLM span's own
    ``metadata.reference``). Prints one JSON line: times since start, rows, failures."""
    started = time.perf_counter()
    project, n, concurrency, rate, reference = argv[0], int(argv[1]), int(argv[2]), \
        float(argv[3]), argv[4]

    import pandas as pd
    from phoenix.client import Client
    from phoenix.client.types.spans import SpanQuery
    from phoenix.evals import LLM, async_evaluate_dataframe
    from phoenix.evals.metrics import CorrectnessEvaluator, FaithfulnessEvaluator
    from phoenix.evals.utils import to_annotation_dataframe

    marks = {"imported": time.perf_counter() - started}
    client = Client()
    # The client's span query, as its get_input_output_context helper builds it, but for the
    # LLM spans (the spans this plugin judges) instead of the root spans. A limit is needed:
    # the default is 1,000 spans.
    query = SpanQuery().where("span_kind == 'LLM'").select(
        "span_id", "trace_id", "input.value", "output.value", "metadata").rename(
        **{"input.value": "input", "output.value": "output"})
    if reference == "documents":
        spans = client.spans.get_spans_dataframe(
            project_identifier=project, query=query.with_index("trace_id"), limit=n + 1,
            timeout=600)
        documents = client.spans.get_spans_dataframe(
            project_identifier=project, query=SpanQuery().where("span_kind == 'RETRIEVER'")
            .concat("retrieval.documents", context="document.content").with_index("trace_id"),
            limit=n + 1, timeout=600)
        context = documents.groupby(level=0)["context"].apply(
            lambda texts: "\n\n".join(str(t) for t in texts.dropna()))
        frame = pd.concat([spans, pd.DataFrame({"context": context})], axis=1, join="inner")
        frame = frame.reset_index().set_index("context.span_id")
    else:
        frame = client.spans.get_spans_dataframe(
            project_identifier=project, query=query.with_index("span_id"), limit=n + 1,
            timeout=600)
        frame["context"] = [m.get("reference", "") if isinstance(m, dict) else ""
                            for m in frame["metadata"]]
    marks["listed"] = time.perf_counter() - started

    llm = LLM(provider="openai", model="gpt-4o-mini",
              **({"initial_per_second_request_rate": rate} if rate else {}))
    evaluators = [CorrectnessEvaluator(llm=llm), FaithfulnessEvaluator(llm=llm)]
    results = asyncio.run(async_evaluate_dataframe(
        dataframe=frame, evaluators=evaluators, concurrency=concurrency, hide_tqdm_bar=True))
    marks["judged"] = time.perf_counter() - started
    statuses: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    for evaluator in evaluators:
        for details in results[f"{evaluator.name}_execution_details"]:
            statuses[(details or {}).get("status", "none")] += 1
            exceptions.update(e.split("(")[0] for e in (details or {}).get("exceptions", ()))

    annotations = to_annotation_dataframe(dataframe=results)
    annotations = annotations[annotations["label"].notna() | annotations["score"].notna()]
    client.spans.log_span_annotations_dataframe(dataframe=annotations)
    marks["written"] = time.perf_counter() - started

    from importlib.metadata import version

    versions = {p: version(p) for p in ("arize-phoenix-client", "arize-phoenix-evals", "openai",
                                        "pandas")}
    print(json.dumps({"rows": len(frame), "annotations": len(annotations),
                      "statuses": statuses, "exceptions": exceptions, "marks": marks,
                      "versions": versions}), flush=True)
    return 0


# --- measurements -----------------------------------------------------------------------------

@dataclass
class Measurement:
    wall: float
    exit_code: int = 0
    cpu: float = 0.0  # CPU seconds of the runner's process (the floor: this process's)
    server_cpu: float = 0.0  # the Phoenix server's, from the start until it is idle again
    peak_mb: float | None = None  # max RSS of the runner's process
    judge_calls: int = 0
    judge_peak: int = 0
    annotations: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, float]] = field(default_factory=dict)
    spans: int = 0
    detail: str = ""
    # Until the server has stored everything the runner sent (its wall plus the time the
    # server stayed busy after the runner exited: the plugin's judge traces are still being
    # ingested then). The floors' walls already include their storing.
    done: float | None = None

    @property
    def finished(self) -> float:
        return self.wall if self.done is None else self.done


class SpanBench:
    # Borrowed from the dataset benchmark (benchmarks/run.py): they only use ``self.server``.
    wait_until_server_idle = DatasetBench.wait_until_server_idle
    server_cpu = DatasetBench.server_cpu

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.python = sys.executable
        self.peer_python = ""
        self.server: Any = None
        self.judge: Any = None
        self.admin: Any = None
        self.peer_versions: dict[str, str] = {}
        self.commands: dict[str, list[str]] = {}
        # size -> runner -> its rounds
        self.results: dict[int, dict[str, list[Measurement]]] = {
            n: {key: [] for key in args.runners} for n in args.spans}
        self.memory: dict[str, Measurement] = {}
        self.load = (0.0,)
        self.profile_log = ""

    # --- setup ------------------------------------------------------------------------------

    def start(self) -> None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from phoenix_admin import PhoenixAdmin
        from phoenix_server import cache_dir, ensure_venv, start_server
        from stand_in_judge import StandInJudge

        if any(key.startswith("peer") for key in self.args.runners) or self.args.memory_spans:
            python = f"py{sys.version_info[0]}{sys.version_info[1]}"
            self.peer_python = str(ensure_venv(cache_dir() / f"bench-spans-peer-{python}",
                                               PEER_PACKAGES, label="span benchmark peer"))
        log("starting Phoenix (the first time, this installs it: a couple of minutes)")
        self.server = start_server(self.workdir / "phoenix")
        log(f"Phoenix at {self.server.url}")
        # The judge answers in this process's threads, while each runner is another process.
        self.judge = StandInJudge(latency=self.args.latency, answers=PEER_ANSWERS).start()
        self.admin = PhoenixAdmin(self.server.url)
        (self.workdir / "logs").mkdir()
        (self.workdir / "run").mkdir()
        (self.workdir / "run" / "pytest.ini").write_text("[pytest]\n")

    def env(self, runner: str = "") -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PHOENIX_", "OTEL_", "OPENAI_", "AZURE_OPENAI_",
                                      "PYTEST_", "BENCH_"))}
        env.update(PHOENIX_COLLECTOR_ENDPOINT=self.server.url, OPENAI_BASE_URL=self.judge.url,
                   OPENAI_API_KEY="bench-not-a-key")
        if runner == "plugin_untraced":
            env["OTEL_SDK_DISABLED"] = "true"  # the plugin's tracers become no-ops
        return env

    def command(self, key: str, project: str, n: int, traces: bool) -> list[str]:
        c = str(self.args.concurrency)
        if key.startswith("plugin"):
            reference = "$.metadata.documents" if traces else "$.metadata.reference"
            return [self.python, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    f"--phoenix-project={project}",
                    "--phoenix-evaluators=qa_correctness,hallucination",
                    "--phoenix-settle=0s", f"--phoenix-concurrency={c}",
                    f"--phoenix-judge-concurrency={c}", f"--phoenix-reference={reference}",
                    *shlex.split(self.args.plugin_args)]
        rate = "0" if key == "peer_default" else f"{self.args.peer_rate:g}"
        return [self.peer_python, str(Path(__file__).resolve()), "peer", project, str(n), c,
                rate, "documents" if traces else "metadata"]

    def project(self, key: str, round_no: int | str, n: int | None = None) -> str:
        return f"bench-spans-{n}-{round_no}-{key}" if n else f"bench-spans-{round_no}-{key}"

    def send(self, projects: list[tuple[str, int, bool]]) -> None:
        """Send each project's spans, SEND_CHUNK conversations at a time, each chunk once
        Phoenix has stored the one before (sent all at once, tens of thousands of spans
        overflow its ingestion queue, which answers 503, and the exporter gives them up);
        then wait until it is idle."""
        started = time.perf_counter()
        total = sum(n * (3 if traces else 1) for _, n, traces in projects)
        deadline = time.monotonic() + 120 + total / 20
        for project, n, traces in projects:
            per = 3 if traces else 1
            for first in range(0, n, SEND_CHUNK):
                count = min(SEND_CHUNK, n - first)
                emit(self.server.url, project, count, traces=traces, first=first)
                while self.span_count(project) < (first + count) * per:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"Phoenix stored {self.span_count(project)} spans "
                                         f"of {(first + count) * per} in {project}")
                    time.sleep(1)
        log(f"sent and stored {total} spans in {time.perf_counter() - started:.1f}s")
        self.wait_until_server_idle(timeout=300)

    def span_count(self, project: str) -> int:
        data = self.admin.graphql(
            "query($name: String!) { getProjectByName(name: $name) { recordCount } }",
            name=project)
        found = data["getProjectByName"]
        return int(found["recordCount"]) if found else 0

    def annotations(self, project: str) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
        """Annotation counts by name in ``project``, and each name's label fractions."""
        data = self.admin.graphql(
            "query($name: String!) { getProjectByName(name: $name) {"
            " spanAnnotationNameCounts { name count } } }", name=project)
        found = data["getProjectByName"] or {"spanAnnotationNameCounts": []}
        counts = {row["name"]: row["count"] for row in found["spanAnnotationNameCounts"]}
        labels = {}
        for name in counts:
            summary = self.admin.graphql(
                "query($project: String!, $name: String!) { getProjectByName(name: $project) {"
                " spanAnnotationSummary(annotationName: $name) {"
                " labelFractions { label fraction } } } }", project=project, name=name)
            fractions = (summary["getProjectByName"]["spanAnnotationSummary"] or {}).get(
                "labelFractions") or []
            labels[name] = {f["label"]: f["fraction"] for f in fractions}
        return counts, labels

    # --- one runner -------------------------------------------------------------------------

    def run_process(self, key: str, project: str, n: int, traces: bool, tag: str
                    ) -> Measurement:
        command = self.command(key, project, n, traces)
        self.commands.setdefault(key, command)
        log_path = self.workdir / "logs" / f"{key}-{tag}.log"
        judged_before = self.span_count(JUDGE_PROJECT)
        server_cpu = self.server_cpu()
        with open(log_path, "w") as out:
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=self.workdir / "run", env=self.env(key),
                                       stdout=out, stderr=subprocess.STDOUT)
            # wait4 gives this child's own resource use: its CPU time and its peak memory.
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        # The server may go on writing after the runner exits (spans, asynchronous writes).
        settle = self.wait_until_server_idle(timeout=600)
        m = Measurement(wall=wall, exit_code=process.returncode,
                        cpu=usage.ru_utime + usage.ru_stime,
                        server_cpu=self.server_cpu() - server_cpu,
                        peak_mb=usage.ru_maxrss / 1024, judge_calls=self.judge.stats().get("ok", 0),
                        judge_peak=self.judge.max_in_flight)
        m.annotations, m.labels = self.annotations(project)
        m.spans = self.span_count(JUDGE_PROJECT) - judged_before
        text = log_path.read_text(errors="replace")
        m.detail = self._detail(key, text, m.spans)
        if settle > 1.0:
            m.detail += f"; server busy {settle - 0.5:.1f}s after exit"
        # (wait_until_server_idle checks every 0.5 s: an idle server answers after 0.5 s)
        m.done = wall + max(0.0, settle - 0.5)
        if process.returncode != 0:
            log(f"{key} exited {process.returncode}; the end of {log_path}:\n{text[-3000:]}")
        return m

    def _detail(self, key: str, text: str, spans: int) -> str:
        if key.startswith("peer"):
            try:
                out = json.loads(text.strip().splitlines()[-1])
            except (ValueError, IndexError):
                return ""
            self.peer_versions = out["versions"]
            marks = out["marks"]
            statuses = {k: v for k, v in out["statuses"].items() if k != "COMPLETED"}
            failed = ("; judge calls " + ", ".join(f"{v} {k.lower()}" for k, v in statuses.items())
                      + " (" + ", ".join(f"{v} {k}" for k, v in out["exceptions"].items()) + ")"
                      if statuses else "")
            phases = zip(("imports", "query", "judges", "write"),
                         ("imported", "listed", "judged", "written"))
            last, parts = 0.0, []
            for phase, mark in phases:
                parts.append(f"{phase} {marks[mark] - last:.1f}s")
                last = marks[mark]
            return ", ".join(parts) + failed
        import re

        said = re.findall(r" in ([0-9.]+)s", text)
        return (f"pytest says {said[-1]}s" if said else "") + \
            f"; {spans} judge spans traced to '{JUDGE_PROJECT}'"

    def run_floor(self, project: str, n: int) -> Measurement:
        c = self.args.concurrency
        compute = n * 2 * self.args.latency / c
        span_ids = [s["context"]["span_id"] for s in self.admin.spans(project, span_kind=["LLM"])]
        server_cpu, cpu = self.server_cpu(), time.process_time()
        seconds = asyncio.run(write_annotations(self.server.url, span_ids, c))
        cpu = time.process_time() - cpu
        self.wait_until_server_idle()
        m = Measurement(wall=max(compute, seconds), cpu=cpu,
                        server_cpu=self.server_cpu() - server_cpu)
        m.annotations, m.labels = self.annotations(project)
        requests = -(-2 * len(span_ids) // WRITE_BATCH)
        m.detail = (f"N*2L/C = {n}*2*{self.args.latency:g}/{c} = {compute:.2f}s; writing "
                    f"{2 * len(span_ids)} annotations ({requests} requests, {c} workers) "
                    f"{seconds:.2f}s")  # floor_traced reads these seconds off the end
        return m

    # --- all ----------------------------------------------------------------------------------

    def run(self) -> None:
        order = [k for k in RUNNERS if k in self.args.runners]
        rounds = range(1, self.args.repeat + 1)
        self.send([(self.project(key, r, n), n, not key.startswith("floor"))
                   for n in self.args.spans for r in rounds for key in order])
        self.load = os.getloadavg()
        for n in self.args.spans:
            for round_no in rounds:
                for key in order:
                    self.wait_until_server_idle()
                    self.judge.reset()
                    log(f"{n} spans, round {round_no}/{self.args.repeat}: {LABELS[key]}")
                    project = self.project(key, round_no, n)
                    m = self.run_floor(project, n) if key == "floor" else \
                        judge_trace_floor(self, project, n) if key == "floor_traced" else \
                        self.run_process(key, project, n, True, f"{n}-{round_no}")
                    self.results[n][key].append(m)
                    log(f"  {m.wall:.2f}s, annotations {m.annotations}"
                        f"{', exit ' + str(m.exit_code) if m.exit_code else ''}")

    def run_profile(self) -> None:
        """--profile: the plugin once more (untimed), on the first size, under
        profile_pytest.py (cProfile in every thread) into benchmarks/profile-spans.out."""
        n = self.args.spans[0]
        project = self.project("plugin", "profile", n)
        self.send([(project, n, True)])
        self.judge.reset()
        out = ROOT / "benchmarks" / "profile-spans.out"
        command = self.command("plugin", project, n, True)
        command[1:3] = [str(ROOT / "benchmarks" / "profile_pytest.py"), str(out)]
        log(f"profiling the plugin on {n} spans into {out}")
        with open(self.workdir / "logs" / "profile.log", "w") as log_file:
            subprocess.run(command, cwd=self.workdir / "run", env=self.env("plugin"),
                           stdout=log_file, stderr=subprocess.STDOUT, check=False)
        self.profile_log = (self.workdir / "logs" / "profile.log").read_text(errors="replace")

    def run_memory(self) -> None:
        n = self.args.memory_spans
        keys = self.args.memory_runners
        log(f"memory run: {n} spans for each of {', '.join(keys)}")
        self.send([(self.project(key, "memory"), n, False) for key in keys])
        for key in keys:
            self.wait_until_server_idle()
            self.judge.reset()
            self.judge.configure(latency=self.args.memory_latency)
            log(f"memory run: {LABELS[key]}")
            m = self.run_process(key, self.project(key, "memory"), n, False, "memory")
            self.memory[key] = m
            log(f"  {m.wall:.2f}s, {m.peak_mb:.0f} MB, annotations {m.annotations}")

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.judge is not None:
            self.judge.stop()
        if self.server is not None:
            self.server.stop()


async def write_annotations(url: str, span_ids: list[str], concurrency: int) -> float:
    """Post two annotations a span (this plugin's names and result shape) in batches of
    WRITE_BATCH, ``concurrency`` requests at once; the seconds until the last answer."""
    import httpx

    rows = [{"span_id": span_id, "name": name, "annotator_kind": "LLM", "identifier": "floor",
             "result": {"label": label, "score": 1.0,
                        "explanation": "stand-in judge: the answer contains the reference"},
             "metadata": {"evaluator": name}}
            for span_id in span_ids for name, label in (("qa_correctness", "correct"),
                                                        ("hallucination", "factual"))]
    batches = iter([rows[i:i + WRITE_BATCH] for i in range(0, len(rows), WRITE_BATCH)])
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:

        async def worker() -> None:
            for batch in batches:  # one iterator shared by the workers
                response = await http.post("/v1/span_annotations", params={"sync": "true"},
                                           json={"data": batch})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


# --- the judges' traces in the floor (issue 28) ------------------------------------------------

def judge_trace_floor(bench: SpanBench, project: str, n: int) -> Measurement:
    """``floor_traced``: the floor, plus the server's cost of the judges' traces the plugin
    sends (2N judge calls): their OTLP payloads, made by this checkout's own JudgeTrace
    (``judge_traces.py measure``, one process, against the stand-in judge), posted directly
    to ``/v1/traces`` after the annotations and timed until the server lists every span.
    Wall: max(N*2L/C, annotations + traces), as the plugin writes the annotations first and
    sends the traces after them."""
    import judge_traces

    floor = bench.run_floor(project, n)
    workdir = bench.workdir / "judge-traces"
    workdir.mkdir(exist_ok=True)
    traced = f"{project}-judges"
    latency = bench.judge.configure()["latency"]
    bench.judge.configure(latency=0.0)  # the payloads are made, not timed
    try:
        figures, payloads = judge_traces.measure(traced, None, workdir, n, bench.judge.url)
    finally:
        bench.judge.configure(latency=latency)
    # (the measure made its spans for project judge-traces-<label>)
    stored_in = f"judge-traces-{traced}"
    bench.wait_until_server_idle()
    server_cpu, started = bench.server_cpu(), time.perf_counter()
    refused = judge_traces.post_payloads(bench.server.url, payloads)
    while bench.span_count(stored_in) < figures["spans"]:
        time.sleep(1.0)
    seconds = time.perf_counter() - started
    bench.wait_until_server_idle()
    compute = n * 2 * bench.args.latency / bench.args.concurrency
    import re

    found = re.search(r"\) ([0-9.]+)s$", floor.detail)  # the annotations' seconds
    writes = float(found.group(1)) if found else floor.wall
    m = Measurement(wall=max(compute, writes + seconds), cpu=floor.cpu,
                    server_cpu=floor.server_cpu + bench.server_cpu() - server_cpu,
                    annotations=floor.annotations, labels=floor.labels, spans=figures["spans"])
    m.detail = (f"{floor.detail}; then the judges' traces: {figures['spans']} spans "
                f"({figures['payload_bytes'] / 1e6:.1f} MB OTLP, {refused} posts answered "
                f"503 and repeated) stored in {seconds:.2f}s")
    return m


# --- the report -------------------------------------------------------------------------------

def _annotations_cell(key: str, m: Measurement) -> str:
    names = JUDGES[key]
    cell = " + ".join(str(m.annotations.get(name, 0)) for name in names)
    extra = {k: v for k, v in m.annotations.items() if k not in names}
    if extra:
        cell += " (+" + ", ".join(f"{v} {k}" for k, v in extra.items()) + ")"
    return cell


def _labels(m: Measurement) -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{label} {fraction:.0%}"
                                             for label, fraction in sorted(fractions.items()))
                     for name, fractions in m.labels.items())


def _against_floor(key: str, done: dict[str, float]) -> str:
    """``done`` against the floor of the same work: a runner that traces its judges (the
    plugin) against ``floor_traced``, one that does not against ``floor``."""
    base = "floor_traced" if key in TRACES_JUDGES else "floor"
    if base not in done or key.startswith("floor"):
        return "-"
    return f"{done[key] / done[base]:.2f}x {'traced' if base == 'floor_traced' else 'floor'}"


def _size_table(bench: SpanBench, n: int) -> str:
    from tabulate import tabulate

    results = bench.results[n]
    median = {key: statistics.median(m.wall for m in ms) for key, ms in results.items() if ms}
    done = {key: statistics.median(m.finished for m in ms) for key, ms in results.items() if ms}
    rows = []
    for key in [k for k in RUNNERS if k in results and results[k]]:
        ms = results[key]
        wall = median[key]
        notes = [m.detail for m in ms[-1:] if m.detail]
        if len(ms) > 1:
            notes.insert(0, "rounds: " + ", ".join(f"{m.wall:.2f}" for m in ms))
        codes = sorted({m.exit_code for m in ms if m.exit_code})
        if codes:
            notes.append(f"exit {', '.join(map(str, codes))}")
        peak = [m.peak_mb for m in ms if m.peak_mb is not None]
        rows.append([
            LABELS[key], f"{wall:.2f}",
            f"{wall / median['peer']:.2f}x" if "peer" in median else "-",
            f"{wall / median['floor']:.2f}x" if "floor" in median else "-",
            f"{done[key]:.2f}", _against_floor(key, done),
            f"{max(peak):.0f}" if peak else "-",
            f"{statistics.median(m.cpu for m in ms):.1f}",
            f"{statistics.median(m.server_cpu for m in ms):.1f}",
            " / ".join(sorted({_annotations_cell(key, m) for m in ms})),
            " / ".join(sorted({f"{m.judge_calls} (peak {m.judge_peak})" for m in ms}))
            if key != "floor" else "-",
            "; ".join(notes)])
    return tabulate(rows, headers=["runner", "wall s", "vs peer", "vs floor", "done s",
                                   "done vs its floor", "peak MB",
                                   "cpu s", "server cpu s", f"annotations (2 x {n})",
                                   "judge calls", "notes"], disable_numparse=True)


def report(bench: SpanBench, argv: list[str]) -> str:
    from tabulate import tabulate

    args = bench.args
    peer = ", ".join(f"{k} {v}" for k, v in bench.peer_versions.items())
    lines = [
        "",
        f"workload: N spans (LLM spans, each in a trace with a RETRIEVER span), 2 LLM judges "
        f"a span at {args.latency * 1000:g} ms, concurrency {args.concurrency}, median of "
        f"{args.repeat} round(s)",
        _versions(),
        f"peer's virtual environment: {peer or '-'}",
        f"load average (1 min) before the first runner {bench.load[0]:.2f}, after the last "
        f"{os.getloadavg()[0]:.2f}; this machine's other processes share its CPUs",
    ]
    for n in args.spans:
        lines += ["", f"{n} spans:", _size_table(bench, n)]
    if bench.memory:
        m_rows = [[LABELS[key], f"{m.wall:.2f}", f"{m.peak_mb:.0f}" if m.peak_mb else "-",
                   f"{m.cpu:.1f}", f"{m.server_cpu:.1f}",
                   _annotations_cell(key, m),
                   f"{m.judge_calls} (peak {m.judge_peak})", m.detail + (
                       f"; exit {m.exit_code}" if m.exit_code else "")]
                  for key, m in bench.memory.items()]
        lines += ["", f"memory: {args.memory_spans} spans (LLM spans only), judge latency "
                      f"{args.memory_latency * 1000:g} ms, concurrency {args.concurrency}",
                  tabulate(m_rows, headers=["runner", "wall s", "peak MB", "cpu s",
                                            "server cpu s",
                                            f"annotations (2 x {args.memory_spans})",
                                            "judge calls", "notes"], disable_numparse=True)]
    lines += [
        "",
        "command: " + shlex.join(["python3", "benchmarks/spans.py", *argv]),
        "runners (cwd: a temporary directory; env PHOENIX_COLLECTOR_ENDPOINT, OPENAI_BASE_URL):",
    ]
    for key, command in bench.commands.items():
        shown = [("peer-venv/bin/python" if part == bench.peer_python else part)
                 for part in _short(command)]
        lines.append(f"  {LABELS[key]}: {shlex.join(shown)}")
    lines += ["peak MB: max RSS of the runner's process (os.wait4). cpu s: its CPU time (the "
              "floor: this process's). server cpu s: the Phoenix server's, from the runner's "
              "start until the server is idle again.", "", "labels written (last round):"]
    for n, results in bench.results.items():
        for key, ms in results.items():
            if ms:
                lines.append(f"  {n} spans, {LABELS[key]}: {_labels(ms[-1]) or '-'}")
    if bench.profile_log:
        lines += ["", "profile (--profile), the end of its output:",
                  *bench.profile_log.splitlines()[-60:]]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--spans", default="1000,4000",
                        help="spans N per runner; several sizes comma-separated, each a\n"
                             "table of its own (1000,4000)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the judge takes to answer (0.05)")
    parser.add_argument("--concurrency", type=int, default=16, help="C for every runner (16)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds; the table shows each runner's median (1)")
    parser.add_argument("--runners", default=",".join(DEFAULT_RUNNERS),
                        help=f"comma-separated subset of {','.join(RUNNERS)}\n"
                             f"({','.join(DEFAULT_RUNNERS)})")
    parser.add_argument("--peer-rate", type=float, default=1000.0,
                        help="the peer's initial_per_second_request_rate (1000)")
    parser.add_argument("--plugin-args", default="", help="extra arguments for the plugin")
    parser.add_argument("--memory-spans", type=int, default=10000,
                        help="then run plugin and peer on this many spans for peak memory\n"
                             "(10000; 0: not)")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, run the plugin once more on the first size under\n"
                             "cProfile (all threads) into benchmarks/profile-spans.out")
    parser.add_argument("--memory-runners", default="plugin,peer",
                        help="who runs the memory run (plugin,peer; the peer's 10,000 spans\n"
                             "take about 10 minutes)")
    parser.add_argument("--memory-latency", type=float, default=0.0,
                        help="the judge's latency in the memory run (0)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the temporary directory (server data, logs)")
    args = parser.parse_args(argv)
    args.runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    args.memory_runners = tuple(r.strip() for r in args.memory_runners.split(",")
                                if r.strip())
    if set(args.memory_runners) - {"plugin", "peer"}:
        parser.error("--memory-runners takes plugin, peer or both")
    unknown = set(args.runners) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown runners: {', '.join(sorted(unknown))}")
    try:
        args.spans = [int(n) for n in str(args.spans).split(",") if n.strip()]
    except ValueError:
        parser.error("--spans takes numbers, comma-separated: --spans 1000,4000")
    if not args.spans or min(args.spans) < 1 or args.concurrency < 1 or args.repeat < 1:
        parser.error("--spans, --concurrency and --repeat must be at least 1")
    return args


def main() -> int:
    if sys.argv[1:2] == ["peer"]:
        return peer_main(sys.argv[2:])
    if Path(sys.prefix).resolve() != DEV_VENV.resolve():
        # Like scripts/run_tests.py: make sure .venv exists, then run this script with it.
        if sys.version_info < (3, 11):  # noqa: UP036
            raise SystemExit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
        sys.path.insert(0, str(ROOT / "scripts"))
        from run_tests import ensure_dev_venv

        python = ensure_dev_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    argv = sys.argv[1:]
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-phoenix-evals-bench-spans-"))
    bench = SpanBench(args, workdir)
    failed = True
    try:
        bench.start()
        bench.run()
        if args.memory_spans:
            bench.run_memory()
        if args.profile:
            bench.run_profile()
        print(report(bench, argv))
        failed = False
    finally:
        bench.stop()
        if args.keep_workdir or failed:
            log(f"kept {workdir} (server data and logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
