"""--phoenix-offline: local snapshots of datasets, and a transport that replays them.

Every online session saves, per dataset and version, what the server answered while the
dataset and its evaluators were loaded (the gateway's read tape: examples, evaluator configs,
prompt versions, ...) under ``<rootdir>/.phoenix-evals/snapshots/<dataset>/<version>.json``,
and notes which version it ran last. ``--phoenix-offline`` builds the same :class:`Gateway`
over a :class:`ReplayTransport` that answers those reads from the snapshot, so the same code
builds the same cases and evaluators with no server at all; every write is refused, so
nothing is uploaded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from .._local import ensure_dir, local_path, safe_name
from .base import DOING, TAPE_KEY, answers_version, tape_key
from .gateway import Gateway
from .http import PhoenixError

#: The offline gateway's URL (no request leaves the process).
OFFLINE_URL = "http://offline"


# --- snapshot files -----------------------------------------------------------------------


def _folder(rootpath: Path, dataset: str) -> Path:
    return local_path(rootpath, "snapshots", safe_name(dataset))


def save(rootpath: Path, dataset: str, version_id: str, tape: dict[str, Any]) -> Path:
    folder = ensure_dir(_folder(rootpath, dataset))
    safe = safe_name(version_id)
    path = folder / f"{safe}.json"
    body = {"dataset": dataset, "version_id": version_id,
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"), "tape": tape}
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


# --- the replay ---------------------------------------------------------------------------


class ReplayTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers the gateway's reads from a tape; refuses everything else.

    Reads are GETs and GraphQL queries; a GraphQL mutation needs the server, and any other
    request (an upload) is refused. Refusals and reads missing from the tape raise
    :class:`PhoenixError` (never an httpx error, so that nothing is retried).
    """

    def __init__(self, tape: dict[str, Any], where: str) -> None:
        self.tape = tape
        self.where = where

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._answer(request)

    def _missing(self, doing: str) -> PhoenixError:
        return PhoenixError(f"{self.where} has no answer for {doing}: run once without "
                            f"--phoenix-offline, with the same options, to refresh it")

    def _answer(self, request: httpx.Request) -> httpx.Response:
        doing = str(request.extensions.get(DOING) or f"{request.method} {request.url.path}")
        if request.method == "GET":
            answer = self.tape.get(str(request.extensions.get(TAPE_KEY)))
            if answer is not None and not answers_version(
                    answer, request.url.path, request.url.params.get("version_id")):
                answer = None
            if answer is None:
                raise self._missing(doing)
            return httpx.Response(answer["status"], json=answer["json"], request=request)
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/graphql"):
            body = json.loads(request.content or b"{}")
            query = str(body.get("query") or "")
            key = request.extensions.get(TAPE_KEY) or tape_key("graphql", query,
                                                                body.get("variables"))
            payload = self.tape.get(str(key))
            if payload is not None:
                return httpx.Response(200, json=payload, request=request)
            if query.lstrip().startswith("mutation"):
                raise PhoenixError(f"{self.where}: {doing} needs the server (--phoenix-offline)")
            raise self._missing(doing)
        raise PhoenixError("nothing is uploaded with --phoenix-offline")


def offline_gateway(tape: dict[str, Any], where: str) -> Gateway:
    """The gateway of --phoenix-offline: reads answered from ``tape``; ``where`` names the
    snapshot in messages."""
    return Gateway(OFFLINE_URL, "--phoenix-offline", where=where, headers={},
                   transport=ReplayTransport(tape, where), tape=tape)
