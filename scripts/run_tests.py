"""Run the test suite from a fresh checkout: installs what it needs, then runs pytest.

    python3 scripts/run_tests.py [pytest arguments]

Creates ``.venv`` (the plugin, editable, with its test extras) and the Phoenix server's own
cached virtual environment (see phoenix_server.py) with the jsonpath-ng that Phoenix's Docker image
pins beside it, then runs ``pytest`` in ``.venv``.

On a machine with more than one core the tests run on pytest-xdist workers (``-n``, see
``workers``), each with a Phoenix server of its own, unless the arguments choose otherwise
(``-n``/``--numprocesses``, ``--dist``, ``-p no:xdist``) or ask for something where workers make
no sense (``--collect-only``, ``--help``, ``--pdb``, ``-s``: a worker's output is not shown).
``-n 0`` runs in one process.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from phoenix_server import ensure_jsonpath_overlay, ensure_server_venv, ensure_venv

ROOT = Path(__file__).resolve().parent.parent

#: At most this many workers: each starts a Phoenix server of its own (a few hundred MB and
#: 10 to 40 s of CPU), and the suite gains little past one worker per core.
MAX_WORKERS = 4

# Arguments after which the caller has decided about workers, or workers make no sense.
_CHOSEN = ("-n", "--numprocesses", "--dist", "--maxprocesses")
_NO_WORKERS = ("--collect-only", "--co", "-h", "--help", "--version", "-V", "--fixtures",
               "--funcargs", "--fixtures-per-test", "--markers", "--pdb", "--trace",
               "--setup-plan", "--setup-only", "-s", "--capture=no")


def ensure_dev_venv() -> Path:
    """``.venv`` with the plugin installed editable; reinstalled when pyproject.toml changes."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    return ensure_venv(ROOT / ".venv", ["-e", f"{ROOT}[test]"], label="test",
                       stamp=f"pyproject {digest}")


def workers(args: list[str], cpus: int | None = None) -> list[str]:
    """The pytest arguments that run ``args`` on xdist workers: ``-n min(cores, 4)`` on a
    machine with more than one core, unless ``args`` (or PYTEST_ADDOPTS) already say something
    about workers or ask for something that workers do not do."""
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    if cpus < 2:
        return []
    every = [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *args]
    for n, arg in enumerate(every):
        name = arg.split("=", 1)[0]
        if name in _CHOSEN or name in _NO_WORKERS or arg in _NO_WORKERS:
            return []
        if arg.startswith("-n") and not arg.startswith("--"):  # -n2, -nauto
            return []
        if arg in ("-pno:xdist", "-p=no:xdist") or (arg == "-p" and every[n + 1:n + 2] ==
                                                    ["no:xdist"]):
            return []
    return ["-n", str(min(cpus, MAX_WORKERS))]


def main() -> int:
    if sys.version_info < (3, 11):
        raise SystemExit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    python = ensure_dev_venv()
    ensure_server_venv()
    ensure_jsonpath_overlay()  # the parity tests also run the server's code on this version
    os.chdir(ROOT)
    extra = workers(sys.argv[1:])
    if extra:
        print(f"run_tests: {extra[1]} pytest-xdist workers, each with its own Phoenix server "
              f"(pass -n 0 for one process)", file=sys.stderr, flush=True)
    args = [str(python), "-m", "pytest", *extra, *sys.argv[1:]]
    os.execv(args[0], args)


if __name__ == "__main__":
    raise SystemExit(main())
