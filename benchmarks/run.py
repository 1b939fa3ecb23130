#!/usr/bin/env python3
"""Time one workload four ways against a local Phoenix server: this plugin, Phoenix's own
``run_experiment``, the pytest plugin shipped inside arize-phoenix-client, and a floor.

    python3 benchmarks/run.py [--examples 200] [--latency 0.05] [--concurrency 16] [--repeat 1]

It starts everything it needs itself (a Phoenix server in a temporary directory, the stand-in
judge answering after ``--latency`` seconds), creates a dataset of ``--examples`` arithmetic
questions with reference answers, and times, one after another, in each of ``--repeat`` rounds:

* ``plugin``: ``pytest --phoenix-dataset=... --phoenix-task=workload:task
  --phoenix-concurrency=C`` with a conftest giving ``exact_match``, ``answer_length`` and
  ``qa_correctness()``;
* ``run_experiment``: ``AsyncClient().experiments.run_experiment(..., concurrency=C)`` with the
  same task, the same two functions and an LLM evaluator sending the same judge request;
* ``client-plugin -n C`` / ``client-plugin serial``: the same through arize-phoenix-client's own
  pytest plugin (marker ``phoenix``), with pytest-xdist for concurrency, and without;
* ``floor``: max(N*L/C, the time the server takes to ingest N runs and 3N evaluations posted
  directly by C concurrent workers, N*T/CPUs), with L = task latency + judge latency and T the
  task's CPU seconds (``--task-cpu``, 0 by default);
* ``plugin_n2`` / ``plugin_n4`` (not run by default): this plugin under pytest-xdist, ``-n 2``
  and ``-n 4``.

``--delay 0.1`` puts a proxy (``scripts/slow_proxy.py``) in front of the server that holds every
request 100 ms before forwarding it, as a remote or hosted Phoenix would: every runner, the
floor included, talks to the server through it.

Every runner is its own process and records its own experiment; each experiment's runs and
evaluations are counted on the server afterwards and shown, so a runner that skipped work shows.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DEV_VENV = ROOT / ".venv"
RUNNERS = ("plugin", "plugin_n2", "plugin_n4", "run_experiment", "client_xdist",
           "client_serial", "floor")
DEFAULT_RUNNERS = ("plugin", "run_experiment", "client_xdist", "client_serial", "floor")
LABELS = {"plugin": "pytest-phoenix-evals", "plugin_n2": "pytest-phoenix-evals -n 2",
          "plugin_n4": "pytest-phoenix-evals -n 4", "run_experiment": "run_experiment",
          "client_xdist": "client plugin -n C", "client_serial": "client plugin serial",
          "floor": "floor"}
EVALUATORS = ("exact_match", "answer_length", "qa_correctness")


def _in_dev_venv() -> bool:
    return Path(sys.prefix).resolve() == DEV_VENV.resolve()


def _reexec_in_dev_venv() -> None:
    """Like scripts/run_tests.py: make sure .venv exists, then run this script with it."""
    if sys.version_info < (3, 11):
        raise SystemExit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    sys.path.insert(0, str(ROOT / "scripts"))
    from run_tests import ensure_dev_venv

    python = ensure_dev_venv()
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--examples", type=int, default=200, help="dataset size N (200)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the task sleeps and the judge waits (0.05)")
    parser.add_argument("--task-cpu", type=float, default=0.0,
                        help="seconds of CPU the task computes per case, besides\n"
                             "its latency (0): a CPU-bound task")
    parser.add_argument("--judge-latency", type=float, default=None,
                        help="the judge's latency, if not --latency")
    parser.add_argument("--concurrency", type=int, default=16, help="C for every runner (16)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds; the table shows each runner's median (1)")
    parser.add_argument("--runners", default=",".join(DEFAULT_RUNNERS),
                        help=f"comma-separated subset of {','.join(RUNNERS)}\n"
                             f"({','.join(DEFAULT_RUNNERS)})")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds a proxy in front of Phoenix holds every request\n"
                             "(scripts/slow_proxy.py), as across a network (0: no proxy)")
    parser.add_argument("--wrong-every", type=int, default=0,
                        help="the task answers every K-th question wrong (0: never)")
    parser.add_argument("--plugin-args", default="",
                        help="extra arguments for this plugin's pytest run, e.g.\n"
                             "'--phoenix-judge-concurrency=16'")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, run this plugin once more under cProfile (all\n"
                             "threads) into benchmarks/profile.out (not part of the table)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the temporary directory (server data, logs)")
    args = parser.parse_args(argv)
    args.runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = set(args.runners) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown runners: {', '.join(sorted(unknown))}")
    if args.judge_latency is None:
        args.judge_latency = args.latency
    if args.examples < 1 or args.concurrency < 1 or args.repeat < 1:
        parser.error("--examples, --concurrency and --repeat must be at least 1")
    if args.delay < 0 or args.task_cpu < 0:
        parser.error("--delay and --task-cpu must not be negative")
    return args


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- measurements -----------------------------------------------------------------------------

@dataclass
class Counts:
    """What one experiment holds on the server."""

    experiment_id: str | None = None
    runs: int = 0
    run_errors: int = 0
    evaluations: dict[str, int] = field(default_factory=dict)
    evaluation_errors: int = 0
    mean_scores: dict[str, float | None] = field(default_factory=dict)

    def total(self, names: tuple[str, ...] = EVALUATORS) -> int:
        return sum(self.evaluations.get(name, 0) for name in names)


@dataclass
class Measurement:
    wall: float
    counts: Counts
    exit_code: int = 0
    judge_calls: int = 0
    judge_peak: int = 0
    judge_body_same: bool | None = None
    cpu: float = 0.0  # CPU seconds of the runner's processes (the floor: this process's)
    server_cpu: float = 0.0  # CPU seconds the server's process used meanwhile
    detail: str = ""
    log_path: Path | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.python = sys.executable
        self.server: Any = None
        self.proxy: Any = None  # --delay: the slow proxy every runner talks to Phoenix through
        self.judge: Any = None
        self.admin: Any = None
        self.dataset_name = f"bench-qa-{args.examples}"
        self.dataset_id = ""
        self.client_dataset = f"bench-client-plugin-{args.examples}"
        self.commands: dict[str, list[str]] = {}
        self.reference_body: Any = None  # the judge request this plugin sent for one question
        self.plugin_has_concurrency = True
        self.results: dict[str, list[Measurement]] = {key: [] for key in args.runners}
        self.load = (0.0,)

    # --- setup ------------------------------------------------------------------------------

    def start(self) -> None:
        sys.path[:0] = [str(ROOT / "scripts"), str(BENCH)]
        import workload
        from phoenix_admin import PhoenixAdmin
        from phoenix_server import start_server
        from stand_in_judge import StandInJudge

        log("starting Phoenix (the first time, this installs it: a couple of minutes)")
        self.server = start_server(self.workdir / "phoenix")
        log(f"Phoenix at {self.server.url}")
        if self.args.delay:
            from slow_proxy import SlowProxy

            self.proxy = SlowProxy(self.server.url, slow=r".", delay=self.args.delay)
            self.proxy.__enter__()
            log(f"every runner talks to it through {self.proxy.url}, which holds each request "
                f"{self.args.delay * 1000:g} ms")
        # The judge runs in this process's threads: this process only waits while a runner
        # (another process) works, and during the floor's ingest the judge is idle.
        self.judge = StandInJudge(latency=self.args.judge_latency).start()
        self.admin = PhoenixAdmin(self.server.url)
        self.dataset_id = self.admin.create_dataset(self.dataset_name,
                                                    workload.examples(self.args.examples))
        (self.workdir / "judge_spec.json").write_text(json.dumps(judge_spec()))
        (self.workdir / "logs").mkdir()
        self._write_projects()

    def _write_projects(self) -> None:
        plugin = self.workdir / "plugin"
        plugin.mkdir()
        (plugin / "pytest.ini").write_text("[pytest]\n")
        (plugin / "conftest.py").write_text(
            '"""This plugin\'s side of the benchmark: two code evaluators and a judge."""\n\n'
            "from pytest_phoenix_evals import qa_correctness\n\n"
            "from workload import answer_length, exact_match\n\n\n"
            "def pytest_phoenix_evals_evaluators(config, dataset):\n"
            "    return [exact_match, answer_length, qa_correctness()]\n")
        client = self.workdir / "client"
        client.mkdir()
        (client / "pytest.ini").write_text("[pytest]\n")
        shutil.copy(BENCH / "client_plugin_case.py", client / "test_client_plugin.py")

    @property
    def phoenix_url(self) -> str:
        """Where the runners reach Phoenix: through the slow proxy with --delay."""
        return self.proxy.url if self.proxy is not None else self.server.url

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PHOENIX_", "OTEL_", "OPENAI_", "AZURE_OPENAI_",
                                      "PYTEST_", "BENCH_"))}
        env.update(
            PHOENIX_COLLECTOR_ENDPOINT=self.phoenix_url,
            OPENAI_BASE_URL=self.judge.url,
            OPENAI_API_KEY="bench-not-a-key",
            PYTHONPATH=str(BENCH),
            BENCH_TASK_LATENCY=str(self.args.latency),
            BENCH_TASK_CPU=str(self.args.task_cpu),
            BENCH_WRONG_EVERY=str(self.args.wrong_every),
            BENCH_JUDGE_SPEC=str(self.workdir / "judge_spec.json"),
            BENCH_EXAMPLES=str(self.args.examples),
            BENCH_CLIENT_DATASET=self.client_dataset,
        )
        return env

    def check_plugin_options(self) -> None:
        """Is --phoenix-concurrency known (a colleague is adding it)?"""
        out = subprocess.run([self.python, "-m", "pytest", "--help"], cwd=self.workdir / "plugin",
                             env=self.env(), capture_output=True, text=True)
        self.plugin_has_concurrency = "--phoenix-concurrency" in out.stdout
        if not self.plugin_has_concurrency:
            log("this plugin has no --phoenix-concurrency yet: running it without")

    def build_commands(self) -> None:
        c = str(self.args.concurrency)
        pytest = [self.python, "-m", "pytest", "-q"]
        plugin = [*pytest, f"--phoenix-dataset={self.dataset_name}",
                  "--phoenix-task=workload:task"]
        if self.plugin_has_concurrency:
            plugin.append(f"--phoenix-concurrency={c}")
        plugin += shlex.split(self.args.plugin_args)
        self.commands = {
            "plugin": plugin,
            "plugin_n2": [*plugin, "-n", "2"],
            "plugin_n4": [*plugin, "-n", "4"],
            "run_experiment": [self.python, str(BENCH / "peer_run_experiment.py"),
                               self.dataset_name, c, "bench run_experiment"],
            "client_xdist": [*pytest, "-n", c, "test_client_plugin.py"],
            "client_serial": [*pytest, "test_client_plugin.py"],
        }

    def warm_up(self) -> None:
        """Untimed: load the modules once (disk cache), touch the server and the judge."""
        subprocess.run([self.python, "-c", "import pytest, openai, phoenix.client, "
                        "pytest_phoenix_evals.plugin, xdist, workload"], env=self.env(),
                       check=True)
        asyncio.run(ingest(self.phoenix_url, self.dataset_id, min(20, self.args.examples),
                           self.args.concurrency, "bench warm-up"))
        import httpx

        httpx.post(f"{self.judge.url}/chat/completions", json={"model": "m", "messages": []},
                   timeout=30)

    def wait_until_server_idle(self, timeout: float = 60.0) -> float:
        """Wait until the server's process has been nearly idle (< 5% of a CPU) for half a
        second: it ingests spans in the background, and the next runner must not pay for the
        previous one's. Returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            before = self.server_cpu()
            time.sleep(0.5)
            if self.server_cpu() - before < 0.025:
                break
        return time.perf_counter() - started

    def server_cpu(self) -> float:
        """CPU seconds the server's process has used so far (Linux /proc; else 0)."""
        try:
            stat = Path(f"/proc/{self.server.process.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    # --- one runner -------------------------------------------------------------------------

    def _experiments(self, dataset_id: str | None) -> dict[str, dict[str, Any]]:
        if not dataset_id:
            return {}
        found, cursor = {}, None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = self.admin.http.get(f"/v1/datasets/{dataset_id}/experiments",
                                           params=params)
            response.raise_for_status()
            body = response.json()
            found.update({e["id"]: e for e in body["data"]})
            cursor = body.get("next_cursor")
            if not cursor:
                return found

    def count(self, experiment_id: str | None) -> Counts:
        counts = Counts(experiment_id=experiment_id)
        if not experiment_id:
            return counts
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = self.admin.http.get(f"/v1/experiments/{experiment_id}/runs",
                                           params=params)
            response.raise_for_status()
            body = response.json()
            counts.runs += len(body["data"])
            counts.run_errors += sum(1 for run in body["data"] if run.get("error"))
            cursor = body.get("next_cursor")
            if not cursor:
                break
        data = self.admin.graphql(
            "query($id: ID!) { node(id: $id) { ... on Experiment {"
            " annotationSummaries { annotationName count errorCount meanScore } } } }",
            id=experiment_id)
        for summary in data["node"]["annotationSummaries"]:
            counts.evaluations[summary["annotationName"]] = summary["count"]
            counts.mean_scores[summary["annotationName"]] = summary["meanScore"]
            counts.evaluation_errors += summary["errorCount"]
        return counts

    def run_process(self, key: str, round_no: int) -> Measurement:
        cwd = {"plugin": self.workdir / "plugin", "plugin_n2": self.workdir / "plugin",
               "plugin_n4": self.workdir / "plugin", "run_experiment": self.workdir,
               "client_xdist": self.workdir / "client",
               "client_serial": self.workdir / "client"}[key]
        dataset_id = self.admin.dataset_id(self.client_dataset) if key.startswith("client") \
            else self.dataset_id
        before = self._experiments(dataset_id)
        log_path = self.workdir / "logs" / f"{key}-{round_no}.log"
        self.judge.reset()
        with open(log_path, "w") as out:
            server_cpu, cpu = self.server_cpu(), _children_cpu()
            started = time.perf_counter()
            done = subprocess.run(self.commands[key], cwd=cwd, env=self.env(), stdout=out,
                                  stderr=subprocess.STDOUT)
            wall = time.perf_counter() - started
            cpu = _children_cpu() - cpu
        # The server goes on ingesting spans after the runner exits: that is the runner's too.
        settle = self.wait_until_server_idle()
        server_cpu = self.server_cpu() - server_cpu
        text = log_path.read_text(errors="replace")
        if key.startswith("client"):
            dataset_id = self.admin.dataset_id(self.client_dataset)
        new = [e for i, e in self._experiments(dataset_id).items() if i not in before]
        new.sort(key=lambda e: e["created_at"])
        counts = self.count(new[-1]["id"] if new else None)
        m = Measurement(wall=wall, counts=counts, exit_code=done.returncode, log_path=log_path,
                        cpu=cpu, server_cpu=server_cpu)
        self._judge_facts(m)
        m.detail = self._detail(key, text)
        if settle > 1.0:
            m.detail += f"; server busy {settle - 0.5:.1f}s after exit"
        if done.returncode not in (0, 1) or not new:
            log(f"{key} exited {done.returncode}; the end of {log_path}:\n{text[-3000:]}")
        return m

    def _judge_facts(self, m: Measurement) -> None:
        m.judge_calls = self.judge.stats().get("ok", 0)
        m.judge_peak = self.judge.max_in_flight
        body = next((r["body"] for r in self.judge.requests
                     if "Q1: " in json.dumps(r.get("body"))), None)
        if body is None:
            return
        body = _without_nones(body)
        if self.reference_body is None:
            self.reference_body = body  # the plugin runs first; else the first runner's
        m.judge_body_same = body == self.reference_body

    def _detail(self, key: str, text: str) -> str:
        if key == "run_experiment":
            try:
                marks = json.loads(text.strip().splitlines()[-1])["marks"]
            except (ValueError, IndexError, KeyError):
                return ""
            tasks = marks.get("tasks_done", 0) - marks["dataset_loaded"]
            evals = marks["evaluations_done"] - marks.get("tasks_done", marks["dataset_loaded"])
            return (f"imports {marks['imported']:.2f}s; task phase {tasks:.2f}s, "
                    f"then evaluation phase {evals:.2f}s")
        import re

        said = re.findall(r" in ([0-9.]+)s", text)
        return f"pytest says {said[-1]}s" if said else ""

    def run_floor(self) -> Measurement:
        n, c = self.args.examples, self.args.concurrency
        latency = self.args.latency + self.args.judge_latency
        compute = n * latency / c
        # A CPU-bound task: at best its computing is spread over every CPU of the machine.
        computing = n * self.args.task_cpu / (os.cpu_count() or 1)
        server_cpu, cpu = self.server_cpu(), time.process_time()
        seconds, experiment_id = asyncio.run(ingest(self.phoenix_url, self.dataset_id, n, c,
                                                    "bench floor ingest"))
        cpu = time.process_time() - cpu
        self.wait_until_server_idle()
        server_cpu = self.server_cpu() - server_cpu
        counts = self.count(experiment_id)
        requests = n * (1 + len(EVALUATORS))
        cpus = os.cpu_count() or 1
        return Measurement(
            wall=max(compute, seconds, computing), counts=counts, cpu=cpu, server_cpu=server_cpu,
            detail=(f"N*L/C = {n}*{latency:g}/{c} = {compute:.2f}s; ingest of {requests} "
                    f"requests by {c} workers {seconds:.2f}s ({requests / seconds:.0f}/s)"
                    + (f"; task CPU N*{self.args.task_cpu:g}/{cpus} CPUs = {computing:.2f}s"
                       if self.args.task_cpu else "")))

    # --- all ----------------------------------------------------------------------------------

    def run(self) -> None:
        order = [key for key in RUNNERS if key in self.args.runners]
        self.load = os.getloadavg()
        for round_no in range(1, self.args.repeat + 1):
            for key in order:
                self.wait_until_server_idle()
                log(f"round {round_no}/{self.args.repeat}: {LABELS[key]}")
                m = self.run_floor() if key == "floor" else self.run_process(key, round_no)
                self.results[key].append(m)
                log(f"  {m.wall:.2f}s, {m.counts.runs} runs, {m.counts.total()} evaluations"
                    f"{', exit ' + str(m.exit_code) if m.exit_code else ''}")

    def profile(self) -> str:
        out = BENCH / "profile.out"
        command = [self.python, str(BENCH / "profile_pytest.py"), str(out),
                   *self.commands["plugin"][3:]]
        log_path = self.workdir / "logs" / "profile.log"
        log("profiling this plugin's run (untimed) into benchmarks/profile.out")
        with open(log_path, "w") as handle:
            started = time.perf_counter()
            subprocess.run(command, cwd=self.workdir / "plugin", env=self.env(), stdout=handle,
                           stderr=subprocess.STDOUT)
            wall = time.perf_counter() - started
        text = log_path.read_text(errors="replace")
        report = text[text.find("\nprofile: "):] if "\nprofile: " in text else text[-4000:]
        return (f"profiled run of this plugin: {wall:.2f}s wall under the profiler\n"
                f"{shlex.join(command)}\n{report.strip()}\n"
                f"read it with: python -m pstats {out}")

    def stop(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.judge is not None:
            self.judge.stop()
        if self.proxy is not None:
            self.proxy.__exit__(None, None, None)
        if self.server is not None:
            self.server.stop()


async def ingest(url: str, dataset_id: str, n: int, concurrency: int, name: str,
                 evaluations: int = len(EVALUATORS)) -> tuple[float, str]:
    """Post n runs, each followed by its ``evaluations`` evaluations (at most 3), from
    ``concurrency`` workers at once; the seconds from the first request to the last answer,
    and the experiment's id."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        response = await http.get(f"/v1/datasets/{dataset_id}/examples")
        response.raise_for_status()
        data = response.json()["data"]
        # The output each run records is the reference answer, as the task gives it.
        answers = [(e["id"], str(e["output"].get("answer", ""))) for e in data["examples"]][:n]
        response = await http.post(f"/v1/datasets/{dataset_id}/experiments",
                                   json={"name": name, "version_id": data["version_id"]})
        response.raise_for_status()
        experiment_id = response.json()["data"]["id"]
        pending = iter(answers)

        async def worker() -> None:
            for example_id, answer in pending:  # one iterator shared by the workers
                now = datetime.now(UTC).isoformat()
                response = await http.post(f"/v1/experiments/{experiment_id}/runs", json={
                    "dataset_example_id": example_id, "output": answer, "repetition_number": 1,
                    "start_time": now, "end_time": now})
                response.raise_for_status()
                run_id = response.json()["data"]["id"]
                results = {"exact_match": {"score": 1.0, "label": "True"},
                           "answer_length": {"score": float(len(answer))},
                           "qa_correctness": {"score": 1.0, "label": "correct",
                                              "explanation": "stand-in judge: the answer "
                                                             "contains the reference"}}
                for evaluator, result in list(results.items())[:evaluations]:
                    now = datetime.now(UTC).isoformat()
                    response = await http.post("/v1/experiment_evaluations", json={
                        "experiment_run_id": run_id, "name": evaluator,
                        "annotator_kind": "LLM" if evaluator == "qa_correctness" else "CODE",
                        "start_time": now, "end_time": now, "result": result, "error": None,
                        "metadata": {}, "trace_id": None})
                    response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, experiment_id


def judge_spec() -> dict[str, Any]:
    """The request this plugin's ``qa_correctness()`` sends, as a template for the peers'
    judge (benchmarks/workload.py): taken from the plugin's prompt, not copied."""
    from pytest_phoenix_evals import qa_correctness

    judge = qa_correctness()
    prompt = judge.prompt
    choice = prompt.tools["tool_choice"]
    assert choice["type"] == "specific_function", choice
    return {
        "model": prompt.model_name or "gpt-4o-mini",
        "messages": [dict(m) for m in prompt.messages],
        "tools": [dict(t) for t in prompt.tools["tools"]],
        "tool_choice": {"type": "function", "function": {"name": choice["function_name"]}},
        "params": {"stream": False, **prompt.invocation_parameters["openai"]},
        "scores": {label: score for label, score in judge.output_configs[0].values},
    }


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


# --- the report -------------------------------------------------------------------------------

def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _versions() -> str:
    from importlib.metadata import version

    parts = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPUs"]
    for package in ("pytest-phoenix-evals", "arize-phoenix-client", "pytest", "pytest-xdist",
                    "openai"):
        try:
            parts.append(f"{package} {version(package)}")
        except Exception:
            pass
    sys.path.insert(0, str(ROOT / "scripts"))
    from phoenix_server import SERVER_VERSION

    parts.append(f"Phoenix server {SERVER_VERSION}")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    if commit:
        parts.append(f"commit {commit}")
    return ", ".join(parts)


def report(bench: Bench, argv: list[str]) -> str:
    from tabulate import tabulate

    args = bench.args
    n = args.examples
    median = {key: statistics.median(m.wall for m in ms)
              for key, ms in bench.results.items() if ms}
    rows = []
    for key in [k for k in RUNNERS if k in bench.results]:
        ms = bench.results[key]
        if not ms:
            continue
        wall = median[key]
        versus_re = wall / median["run_experiment"] if "run_experiment" in median else None
        versus_floor = wall / median["floor"] if "floor" in median else None
        runs = sorted({f"{m.counts.runs}" + (f" ({m.counts.run_errors} err)"
                                              if m.counts.run_errors else "") for m in ms})
        evals = sorted({_evals_cell(key, m.counts) for m in ms})
        judge = sorted({f"{m.judge_calls} (peak {m.judge_peak})" for m in ms}) \
            if key != "floor" else ["-"]
        notes = [m.detail for m in ms[-1:] if m.detail]
        if len(ms) > 1:
            notes.insert(0, "rounds: " + ", ".join(f"{m.wall:.2f}" for m in ms))
        codes = sorted({m.exit_code for m in ms if m.exit_code})
        if codes:
            notes.append(f"exit {', '.join(map(str, codes))}")
        if any(m.judge_body_same is False for m in ms):
            notes.append("judge request differs from the plugin's")
        if key == "plugin" and not bench.plugin_has_concurrency:
            notes.append("no --phoenix-concurrency (unknown option): run without")
        rows.append([LABELS[key], f"{wall:.2f}",
                     f"{versus_re:.2f}x" if versus_re is not None else "-",
                     f"{versus_floor:.2f}x" if versus_floor is not None else "-",
                     f"{statistics.median(m.cpu for m in ms):.1f}",
                     f"{statistics.median(m.server_cpu for m in ms):.1f}",
                     " / ".join(runs), " / ".join(evals), " / ".join(judge),
                     "; ".join(notes)])
    table = tabulate(rows, headers=["runner", "wall s", "vs run_experiment", "vs floor",
                                    "cpu s", "server cpu s",
                                    f"runs (of {n})", f"evaluations (of {3 * n})",
                                    "judge calls", "notes"], disable_numparse=True)
    lines = [
        "",
        f"workload: {n} examples, task {args.latency * 1000:g} ms"
        + (f" (+ {args.task_cpu * 1000:g} ms of CPU)" if args.task_cpu else "")
        + f" + judge "
        f"{args.judge_latency * 1000:g} ms per case, 2 code evaluators + 1 LLM judge, "
        f"concurrency {args.concurrency}, median of {args.repeat} round(s)"
        + (f"; every request to Phoenix held {args.delay * 1000:g} ms by a proxy"
           if args.delay else ""),
        _versions(),
        f"load average (1 min) before the first runner {bench.load[0]:.2f}, after the last "
        f"{os.getloadavg()[0]:.2f}; this "
        "machine's other processes share its CPUs",
        "",
        table,
        "",
        "command: " + shlex.join([sys.executable if not argv else "python3",
                                  "benchmarks/run.py", *argv]),
        "runners (cwd: a temporary directory each; env PHOENIX_COLLECTOR_ENDPOINT, "
        "OPENAI_BASE_URL, PYTHONPATH=benchmarks):",
    ]
    for key, command in bench.commands.items():
        if key in bench.results:
            lines.append(f"  {LABELS[key]}: {shlex.join(_short(command))}")
    lines += ["cpu s: CPU time of the runner's processes (xdist workers included; the floor: "
              "this process's). server cpu s: the Phoenix server's, from the runner's start "
              "until the server is idle again (span ingestion included)."]
    lines += ["", "checks (last round):"]
    same = [LABELS[k] for k, ms in bench.results.items() if ms and ms[-1].judge_body_same]
    differ = [LABELS[k] for k, ms in bench.results.items()
              if ms and ms[-1].judge_body_same is False]
    lines.append(f"  judge request for Q1 equal to the first runner's (None values ignored): "
                 f"{', '.join(same) or '-'}" + (f"; DIFFERENT: {', '.join(differ)}"
                                                 if differ else ""))
    for key, ms in bench.results.items():
        if ms:
            means = ms[-1].counts.mean_scores
            lines.append(f"  mean scores, {LABELS[key]}: " + ", ".join(
                f"{name} {means[name]:.3g}" if means.get(name) is not None else f"{name} -"
                for name in EVALUATORS))
    return "\n".join(lines)


def _evals_cell(key: str, counts: Counts) -> str:
    cell = str(counts.total())
    extra = {name: count for name, count in counts.evaluations.items() if name not in EVALUATORS}
    if extra:
        cell += " (+" + ", ".join(f"{count} {name}" for name, count in extra.items()) + ")"
    missing = [name for name in EVALUATORS if not counts.evaluations.get(name)]
    if missing:
        cell += f" (none: {', '.join(missing)})"
    if counts.evaluation_errors:
        cell += f" ({counts.evaluation_errors} err)"
    return cell


def _short(command: list[str]) -> list[str]:
    """The command with this venv's python shown as ``python`` and paths made relative."""
    out = []
    for part in command:
        if part == sys.executable:
            part = "python"
        elif part.startswith(str(ROOT) + os.sep):
            part = os.path.relpath(part, ROOT)
        out.append(part)
    return out


def main() -> int:
    if not _in_dev_venv():
        _reexec_in_dev_venv()
    argv = sys.argv[1:]
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-phoenix-evals-bench-"))
    bench = Bench(args, workdir)
    failed = True
    try:
        bench.start()
        bench.check_plugin_options()
        bench.build_commands()
        bench.warm_up()
        bench.run()
        profile = bench.profile() if args.profile else ""
        print(report(bench, argv))
        if profile:
            print("\n" + profile)
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
