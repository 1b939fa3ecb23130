"""Run the test suite from a fresh checkout: installs what it needs, then runs pytest.

    python3 scripts/run_tests.py [pytest arguments]

Creates ``.venv`` (the plugin, editable, with its test extras) and the Phoenix server's own
cached virtual environment (see phoenix_server.py) with the jsonpath-ng that Phoenix's Docker image
pins beside it, then runs ``pytest`` in ``.venv``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from phoenix_server import ensure_jsonpath_overlay, ensure_server_venv, ensure_venv

ROOT = Path(__file__).resolve().parent.parent


def ensure_dev_venv() -> Path:
    """``.venv`` with the plugin installed editable; reinstalled when pyproject.toml changes."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    return ensure_venv(ROOT / ".venv", ["-e", f"{ROOT}[test]"], label="test",
                       stamp=f"pyproject {digest}")


def main() -> int:
    if sys.version_info < (3, 11):
        raise SystemExit(f"Python 3.11+ is needed; this is {sys.version.split()[0]}")
    python = ensure_dev_venv()
    ensure_server_venv()
    ensure_jsonpath_overlay()  # the parity tests also run the server's code on this version
    os.chdir(ROOT)
    args = [str(python), "-m", "pytest", *sys.argv[1:]]
    os.execv(args[0], args)


if __name__ == "__main__":
    raise SystemExit(main())
