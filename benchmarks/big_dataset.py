"""Collection time and peak memory of a 10,000-example dataset.

    python3 benchmarks/big_dataset.py [--examples 10000]

Starts a Phoenix server of its own (temporary directory), uploads a dataset of N examples with
no evaluators attached, then runs pytest on it three ways in fresh processes and prints wall
time and peak RSS for each: collection only, a full run without uploads, and a full run with
uploads (task: an instant lookup; one code evaluator). Peak RSS is each process's own
ru_maxrss. Side by side, the floors: for memory, the run without uploads (the upload run's
peak is shown against it); for time, the seconds the server takes to ingest the same N runs
and N evaluations posted directly by 16 workers (``run.py``'s floor; ``--no-floor`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "benchmarks")]

from phoenix_admin import PhoenixAdmin  # noqa: E402
from phoenix_server import start_server  # noqa: E402
from run_tests import ensure_dev_venv  # noqa: E402

TASK = '''
def answer(input):
    return "answer to " + input["question"]
'''
CONFTEST = '''
from pytest_phoenix_evals import evaluator

@evaluator(threshold=">=1")
def not_empty(output):
    return len(output)

def pytest_phoenix_evals_evaluators(config, dataset):
    return [not_empty]
'''


def run(python: Path, workdir: Path, url: str, *args: str) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, last line) of one pytest process."""
    env = {**os.environ, "PHOENIX_COLLECTOR_ENDPOINT": url}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q",
             "--phoenix-dataset=big", "--phoenix-task=big_app:answer", *args],
            cwd=workdir, env=env, stdout=out, stderr=err)
        # This process's own peak (RUSAGE_CHILDREN would be the largest of every child so far).
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.strip()]
    return seconds, usage.ru_maxrss / 1024, lines[-1] if lines else stderr[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the ingest floor (it takes as long as the upload run)")
    args = parser.parse_args()
    python = ensure_dev_venv()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "big_app.py").write_text(TASK)
        (workdir / "conftest.py").write_text(CONFTEST)
        (workdir / "pytest.ini").write_text("[pytest]\n")
        server = start_server(workdir / "phoenix")
        try:
            admin = PhoenixAdmin(server.url)
            started = time.perf_counter()
            dataset_id = admin.create_dataset("big", [
                {"input": {"question": f"question number {i}"}, "output": {"answer": str(i)},
                 "metadata": {"i": i}} for i in range(args.examples)])
            print(f"uploaded {args.examples} examples in {time.perf_counter() - started:.1f} s")
            # Each run in a fresh process, with its own peak RSS.
            peaks = {}
            for label, extra in (("collect only", ["--collect-only"]),
                                 ("run, no upload", ["--phoenix-no-upload"]),
                                 ("run and upload", [])):
                seconds, peak, last = run(python, workdir, server.url, *extra)
                peaks[label] = peak
                versus = f"({peak / peaks['run, no upload']:.2f}x no upload)" \
                    if label == "run and upload" else ""
                print(f"{label:15} {seconds:7.1f} s   peak RSS {peak:6.0f} MB {versus:20} "
                      f"{last}", flush=True)
            if not args.no_floor:
                from run import ingest

                seconds, _ = asyncio.run(ingest(server.url, dataset_id, args.examples, 16,
                                                "big floor", evaluations=1))
                print(f"{'floor (ingest)':15} {seconds:7.1f} s   ({args.examples} runs and "
                      f"{args.examples} evaluations posted directly by 16 workers)")
            print(f"command: .venv/bin/python benchmarks/big_dataset.py --examples "
                  f"{args.examples}; load average {os.getloadavg()[0]:.1f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
