"""Run the example suite end to end on a fresh machine that has only Python 3.11+.

    python3 example_suite/run.py [pytest arguments]

Creates the virtual environments it needs (``.venv`` for the plugin, a cached one for the
server), starts a local Phoenix (SQLite in ``.phoenix/``) unless one it started is still up,
seeds the ``qa-golden`` dataset once, then runs ``pytest --phoenix-dataset=qa-golden`` in this
folder. The server stays up afterwards so that you can look at the experiment.

LLM judges call OpenAI when OPENAI_API_KEY is set (or the OpenAI-compatible server at
OPENAI_BASE_URL). Without either, they answer through the stand-in judge
(scripts/stand_in_judge.py): a deterministic fake model, started for this run and said so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "scripts"))

from phoenix_server import free_port, is_healthy, running_server, start_server  # noqa: E402
from run_tests import ensure_dev_venv  # noqa: E402

WORKDIR = ROOT / ".phoenix"


def main() -> int:
    if sys.version_info < (3, 11):
        raise SystemExit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    python = ensure_dev_venv()
    url = running_server(WORKDIR)
    if url is None:
        port = 6006 if not is_healthy("http://127.0.0.1:6006") else free_port()
        print(f"starting Phoenix on 127.0.0.1:{port} (data in {WORKDIR}) ...", flush=True)
        url = start_server(WORKDIR, port=port, detach=True).url
    subprocess.run([str(python), str(HERE / "seed.py"), "--url", url], check=True,
                   stdout=subprocess.DEVNULL)
    env = {**os.environ, "PHOENIX_COLLECTOR_ENDPOINT": url}
    env.pop("PHOENIX_ENDPOINT", None)
    judge = None
    if not env.get("OPENAI_API_KEY") and not env.get("OPENAI_BASE_URL"):
        judge = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "stand_in_judge.py")],
                                 stdout=subprocess.PIPE, text=True)
        assert judge.stdout is not None
        env["OPENAI_BASE_URL"] = judge.stdout.readline().rsplit(" ", 1)[-1].strip()
        print(f"no OPENAI_API_KEY set: the LLM judges answer through the stand-in judge at "
              f"{env['OPENAI_BASE_URL']} (a deterministic fake, not a real model)", flush=True)
    command = [str(python), "-m", "pytest", "--phoenix-dataset=qa-golden", *sys.argv[1:]]
    try:
        code = subprocess.run(command, cwd=HERE, env=env).returncode
    finally:
        if judge is not None:
            judge.terminate()
            judge.wait(timeout=10)
    print(f"\nPhoenix is still running at {url}; open the experiment link above to see the "
          f"runs.\nStop it with: python3 scripts/phoenix_server.py stop --workdir .phoenix")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
