"""Collection time and peak memory of a 10,000-example dataset.

    python3 benchmarks/big_dataset.py [--examples 10000]

Starts a Phoenix server of its own (temporary directory), uploads a dataset of N examples with
no evaluators attached, then runs pytest on it three ways in fresh processes and prints wall
time and peak RSS for each: collection only, a full run without uploads, and a full run with
uploads (task: an instant lookup; one code evaluator). Peak RSS is the child's ru_maxrss.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

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
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--phoenix-dataset=big", "--phoenix-task=big_app:answer", *args],
                          cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss of children is a running maximum
        peak = before
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return seconds, peak / 1024, lines[-1] if lines else done.stderr[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000)
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
            admin.create_dataset("big", [
                {"input": {"question": f"question number {i}"}, "output": {"answer": str(i)},
                 "metadata": {"i": i}} for i in range(args.examples)])
            print(f"uploaded {args.examples} examples in {time.perf_counter() - started:.1f} s")
            # Each run in a fresh process; the RSS figure is the largest child so far, so the
            # runs go from the lightest to the heaviest.
            for label, extra in (("collect only", ["--collect-only"]),
                                 ("run, no upload", ["--phoenix-no-upload"]),
                                 ("run and upload", [])):
                seconds, peak, last = run(python, workdir, server.url, *extra)
                print(f"{label:15} {seconds:7.1f} s   peak RSS {peak:6.0f} MB   {last}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
