"""The plugin's files in a project: ``<rootdir>/.phoenix-evals/`` (the upload journal, dataset
snapshots, the judge cache). Like ``.pytest_cache`` it holds its own ``.gitignore``, so that
nothing in it is committed by accident."""

from __future__ import annotations

import re
from pathlib import Path

LOCAL_DIR = ".phoenix-evals"


def local_path(rootpath: Path, *parts: str) -> Path:
    """``<rootdir>/.phoenix-evals/<parts>`` (nothing is created)."""
    return rootpath.joinpath(LOCAL_DIR, *parts)


def ensure_dir(directory: Path) -> Path:
    """Create ``directory`` (under ``.phoenix-evals``) and the ``.gitignore`` of that folder."""
    directory.mkdir(parents=True, exist_ok=True)
    base = next((p for p in (directory, *directory.parents) if p.name == LOCAL_DIR), None)
    if base is not None and not (base / ".gitignore").exists():
        (base / ".gitignore").write_text("# written by pytest-phoenix-evals\n*\n")
    return directory


#: Longer names are cut and end in a hash of the whole (file systems take 255 bytes at most).
MAX_NAME = 120


def safe_name(text: str) -> str:
    """``text`` as one file name: ids and dataset names may hold ``/``, ``=`` or ``..``, and
    be longer than a file name may be."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text)
    name = "_" + name[1:] if name.startswith(".") else name
    if len(name) > MAX_NAME:
        import hashlib

        name = f"{name[:MAX_NAME - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return name
