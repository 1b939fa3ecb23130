"""Fixed repetitions against --phoenix-repetitions=auto:N: the runs spent and the flaky examples
found, on a workload whose flaky examples are known.

    python3 benchmarks/repetitions.py [--examples 100] [--bound 5] [--rules all,majority]

Starts a Phoenix server of its own (temporary directory), uploads a dataset of N examples and
runs this plugin on it, each in a fresh process and its own experiment: for each pass rule,
``--phoenix-repetitions=BOUND`` and ``--phoenix-repetitions=auto:BOUND``. The task sleeps
``--latency`` seconds and answers a confidence; a code evaluator passes it at >= 0.5. What it
answers depends on the example's kind (a fixed share of the examples each, assigned by a seeded
shuffle) and on a random draw per call, seeded by (example, call number), so that every run of
the benchmark draws the same:

* steady pass (70 %): 0.9;            * steady fail (10 %): 0.1;
* borderline (10 %): 0.46 to 0.54, uniform: passes half the time, always near the threshold;
* coin flip (5 %): 0.9 with probability 0.7, else 0.1: clear either way;
* erroring (5 %): no answer (the evaluator errors) with probability 0.3, else 0.9.

The last three kinds are the flaky examples. For each run the table gives the wall time (process
start to exit), the runs spent (counted by the case hook, checked against the runs Phoenix
holds), and per flaky kind how many examples the run found flaky (some runs passed, some did
not), and how many cases passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "benchmarks")]

from phoenix_admin import PhoenixAdmin  # noqa: E402
from phoenix_server import start_server  # noqa: E402
from run_tests import ensure_dev_venv  # noqa: E402

KINDS = (("steady pass", 0.70), ("steady fail", 0.10), ("borderline", 0.10),
         ("coin flip", 0.05), ("erroring", 0.05))
FLAKY = ("borderline", "coin flip", "erroring")

APP = '''
import os, random, threading, time

lock = threading.Lock()
calls = {}

def confidence(kind, key, n):
    draw = random.Random(f"{key}:{n}").random()
    if kind == "steady pass":
        return 0.9
    if kind == "steady fail":
        return 0.1
    if kind == "borderline":
        return round(0.46 + 0.08 * draw, 3)
    if kind == "coin flip":
        return 0.9 if draw < 0.7 else 0.1
    return None if draw < 0.3 else 0.9  # erroring

def answer(input):
    key = input["question"]
    with lock:
        calls[key] = calls.get(key, 0) + 1
        n = calls[key]
    time.sleep(float(os.environ["BENCH_LATENCY"]))
    return {"confidence": confidence(input["kind"], key, n)}
'''

CONFTEST = '''
import json, os
from pytest_phoenix_evals import evaluator

@evaluator(threshold=">=0.5")
def confidence(output):
    return float(output["confidence"])  # None: the evaluator errors

def pytest_phoenix_evals_evaluators(config, dataset):
    return [confidence]

def pytest_phoenix_evals_case_result(config, result):
    with open(os.environ["BENCH_RUNS_LOG"], "a") as out:
        out.write(json.dumps([result.case.example.input["question"], result.passed]) + "\\n")
'''


def examples(n: int, seed: int = 20261205) -> list[dict[str, object]]:
    kinds = [kind for kind, share in KINDS for _ in range(round(n * share))][:n]
    kinds += ["steady pass"] * (n - len(kinds))
    random.Random(seed).shuffle(kinds)
    return [{"input": {"question": f"q{i}", "kind": kind}, "output": {}, "metadata": {}}
            for i, kind in enumerate(kinds, 1)]


def run(python: Path, workdir: Path, url: str, dataset: str, latency: float,
        *args: str) -> tuple[float, list[tuple[str, bool]], str]:
    """(seconds, every run as (question, passed), how many cases passed)."""
    log = workdir / "runs.jsonl"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PHOENIX_COLLECTOR_ENDPOINT": url, "BENCH_LATENCY": str(latency),
           "BENCH_RUNS_LOG": str(log)}
    started = time.perf_counter()
    done = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           f"--phoenix-dataset={dataset}", "--phoenix-task=flaky_app:answer",
                           *args], cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    found = re.search(r"(\d+) passed", done.stdout.strip().splitlines()[-1]
                      if done.stdout.strip() else "")
    line = found.group(1) if found else "0"
    runs = [tuple(json.loads(x)) for x in log.read_text().splitlines()] if log.exists() else []
    return seconds, runs, line  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--bound", type=int, default=5, help="N of fixed N and of auto:N")
    parser.add_argument("--rules", default="all,majority", help="pass rules, comma-separated")
    parser.add_argument("--latency", type=float, default=0.05, help="the task's seconds")
    args = parser.parse_args()
    python = ensure_dev_venv()
    data = examples(args.examples)
    kind_of = {e["input"]["question"]: e["input"]["kind"] for e in data}  # type: ignore[index]
    truth = Counter(kind_of.values())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "flaky_app.py").write_text(APP)
        (workdir / "conftest.py").write_text(CONFTEST)
        (workdir / "pytest.ini").write_text("[pytest]\n")
        server = start_server(workdir / "phoenix")
        try:
            admin = PhoenixAdmin(server.url)
            dataset_id = admin.create_dataset("bench-flaky", data)
            print(f"{args.examples} examples: " + ", ".join(
                f"{truth[k]} {k}" for k, _ in KINDS) + f"; task {args.latency:g} s; "
                f"threshold 0.5")
            header = (f"{'rule':9} {'repetitions':12} {'wall s':>7} {'runs':>5} "
                      + " ".join(f"{k + ' found':>17}" for k in FLAKY)
                      + f" {'flaky found':>12} {'cases passed':>13}")
            print(header)
            for rule in args.rules.split(","):
                for repetitions in (str(args.bound), f"auto:{args.bound}"):
                    name = f"bench {rule} {repetitions}"
                    seconds, runs, line = run(
                        python, workdir, server.url, "bench-flaky", args.latency,
                        f"--phoenix-repetitions={repetitions}", f"--phoenix-pass-rule={rule}",
                        f"--phoenix-experiment-name={name}")
                    stored = next(e for e in admin.experiments(dataset_id)
                                  if e.get("name") == name)
                    in_phoenix = len(admin.runs(stored["id"]))
                    assert in_phoenix == len(runs), (name, in_phoenix, len(runs), line)
                    by_question: dict[str, list[bool]] = {}
                    for question, passed in runs:
                        by_question.setdefault(question, []).append(passed)
                    flaky = {q for q, r in by_question.items() if any(r) and not all(r)}
                    found = Counter(kind_of[q] for q in flaky)
                    passed_cases = f"{line} of {args.examples}"
                    print(f"{rule:9} {repetitions:12} {seconds:7.1f} {len(runs):5} "
                          + " ".join(f"{found[k]:>11} of {truth[k]:<3}" for k in FLAKY)
                          + f" {len(flaky):>12} {passed_cases:>13}", flush=True)
            print(f"command: .venv/bin/python benchmarks/repetitions.py --examples "
                  f"{args.examples} --bound {args.bound} --rules {args.rules} --latency "
                  f"{args.latency:g}; load average {os.getloadavg()[0]:.1f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
