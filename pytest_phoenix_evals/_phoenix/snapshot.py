"""Local snapshots of datasets for --phoenix-offline.

Every online session saves, per dataset and version, what the server answered while the
dataset and its evaluators were loaded (the gateway's read tape: examples, evaluator configs,
prompt versions, ...) under ``<rootdir>/.phoenix-evals/snapshots/<dataset>/<version>.json``,
and notes which version it ran last. ``--phoenix-offline`` replays those answers, so the
same code builds the same cases and evaluators with no server at all; nothing is uploaded.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._local import ensure_dir, local_path, safe_name


def _folder(rootpath: Path, dataset: str) -> Path:
    return local_path(rootpath, "snapshots", safe_name(dataset))


def save(rootpath: Path, dataset: str, version_id: str, tape: dict[str, Any]) -> Path:
    folder = ensure_dir(_folder(rootpath, dataset))
    safe = safe_name(version_id)
    path = folder / f"{safe}.json"
    body = {"dataset": dataset, "version_id": version_id,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tape": tape}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a snapshot
    (folder / "latest").write_text(safe)
    return path


def load(rootpath: Path, dataset: str, version_id: str | None) -> dict[str, Any]:
    """The snapshot of ``dataset`` at ``version_id`` (default: the version run last online);
    ValueError saying what exists when there is none."""
    folder = _folder(rootpath, dataset)
    if version_id:
        path = folder / f"{safe_name(version_id)}.json"
    else:
        latest = folder / "latest"
        path = folder / f"{latest.read_text().strip()}.json" if latest.is_file() else latest
    if not path.is_file():
        kept = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise ValueError(
            f"no local snapshot of dataset {dataset!r}"
            + (f" at version {version_id!r}" if version_id else "")
            + f" in {local_path(rootpath, 'snapshots')}; "
            + (f"versions kept: {', '.join(kept)}" if kept else
               "run once without --phoenix-offline to take one"))
    return dict(json.loads(path.read_text(encoding="utf-8")))
