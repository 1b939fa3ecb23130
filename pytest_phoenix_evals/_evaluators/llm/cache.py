"""The judge cache (--phoenix-cache): a judge's answer is reused when its request is the same.

The key is a hash of everything the judge is sent: the endpoint, the API, the model, the
messages (the prompt version's template rendered with the evaluated input, output and
reference), the tools and every invocation parameter. So any change to the evaluator, its
prompt version or config, or to what it evaluates, misses the cache; re-running after a
prompt change of the app pays only for the cases whose output changed. Answers are kept in
SQLite (standard library) at ``<rootdir>/.phoenix-evals/judge-cache.sqlite``; a failed
call is never cached.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..._local import ensure_dir, local_path


def cache_path(rootpath: Path) -> Path:
    return local_path(rootpath, "judge-cache.sqlite")


def cache_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JudgeCache:
    """A cache that cannot be used (not a database, another schema, a disk that refuses it)
    only ever misses: :attr:`problem` says why, once, and no judge call fails for it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.problem: str | None = None
        try:
            ensure_dir(path.parent)
            # One connection, used under the lock from the engine's threads.
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, "
                             "answer TEXT NOT NULL)")
            self._db.execute("SELECT key, answer FROM answers LIMIT 1").fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        self.problem = (f"the judge cache {self.path} cannot be used ({type(exc).__name__}: "
                        f"{exc}); every judge was called (delete the file to start a new cache)")
        if self._db is not None:
            self._db.close()
            self._db = None

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if self._db is None:
                return None
            try:
                row = self._db.execute("SELECT answer FROM answers WHERE key = ?",
                                       (key,)).fetchone()
                answer = None if row is None else json.loads(row[0])
            except (sqlite3.Error, ValueError) as exc:
                self._give_up(exc)
                return None
        if not isinstance(answer, dict):
            return None
        self.hits += 1
        return answer

    def put(self, key: str, completion: Any) -> None:
        answer = json.dumps(asdict(completion), ensure_ascii=False)
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, answer))
                self._db.commit()
            except sqlite3.Error as exc:
                self._give_up(exc)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
