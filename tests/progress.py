"""What the test run says while nothing else would: servers starting, tests still running.

A run of this suite is never silent for long (issue 23): under pytest-xdist the controller
prints one character per finished test, and a worker starting its Phoenix server or running a
long test finishes nothing for a while.

- ``say`` writes one line on the terminal now, from the main process or from an xdist worker
  (a worker's stdout is not shown; its stderr is, with pytest's capturing suspended).
- ``Heartbeat`` runs in the process that reports (the xdist controller, or pytest without
  workers): after ``HEARTBEAT`` seconds (``PHOENIX_EVALS_TEST_HEARTBEAT``, default 15) in which
  no test finished, it names the tests still running and for how long.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

HEARTBEAT = float(os.environ.get("PHOENIX_EVALS_TEST_HEARTBEAT", "15"))
HEARTBEAT_PLUGIN = "phoenix-evals-test-heartbeat"

T = TypeVar("T")


def say(config: pytest.Config, message: str) -> None:
    """One line on the terminal now (prefixed with the xdist worker's name, in a worker)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    line = f"[{worker}] {message}" if worker else message
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capman.global_and_fixture_disabled():
        sys.stderr.write(f"\n{line}\n")
        sys.stderr.flush()


@contextmanager
def saying(config: pytest.Config, doing: str) -> Iterator[None]:
    """Say ``doing ...`` before a long step and ``doing: done in N s`` after it."""
    started = time.monotonic()
    say(config, f"{doing} ...")
    yield
    say(config, f"{doing}: done in {time.monotonic() - started:.0f} s")


def start_saying(config: pytest.Config, doing: str,
                 start: Callable[[Callable[[str], None]], T]) -> T:
    """``start(progress)`` between ``doing ...`` and ``done``; what it tells ``progress`` (a
    server that does not answer yet) is said too."""
    with saying(config, doing):
        return start(lambda message: say(config, message))


class Heartbeat:
    """Names the tests still running after ``interval`` seconds in which none finished."""

    def __init__(self, config: pytest.Config, interval: float = HEARTBEAT) -> None:
        self.config = config
        self.interval = interval
        self.lock = threading.Lock()
        self.running: dict[str, float] = {}
        self.last = time.monotonic()
        self.beats = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="test-heartbeat", daemon=True)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.last = time.monotonic()
        self.thread.start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        with self.lock:
            self.running[nodeid] = time.monotonic()

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        with self.lock:
            self.running.pop(nodeid, None)
            self.last = time.monotonic()

    def pytest_sessionfinish(self) -> None:
        self.done.set()

    def _beat(self) -> None:
        while not self.done.wait(1.0):
            with self.lock:
                now = time.monotonic()
                if now - self.last < self.interval:
                    continue
                self.last = now
                running = sorted(self.running.items(), key=lambda item: item[1])
            if running:
                names = ", ".join(f"{nodeid} ({now - started:.0f} s)"
                                  for nodeid, started in running)
                line = f"... still running: {names}"
            else:
                line = "... starting the test workers"
            if not self.done.is_set():
                self._write(line)
                self.beats += 1

    def _write(self, line: str) -> None:
        """To the terminal, past the capturing of the test running meanwhile in this process
        (pytest without workers): a thread cannot suspend it. pytest keeps the terminal's
        descriptor in its global capture (``writeorg``); without capturing, the reporter."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        out = getattr(getattr(capman, "_global_capturing", None), "out", None)
        if out is not None and hasattr(out, "writeorg"):
            out.writeorg(f"\n{line}\n")
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)


def install_heartbeat(config: pytest.Config, interval: float = HEARTBEAT) -> None:
    """In the process that reports only (not in an xdist worker), unless collecting only."""
    if hasattr(config, "workerinput") or config.option.collectonly or interval <= 0:
        return
    config.pluginmanager.register(Heartbeat(config, interval), HEARTBEAT_PLUGIN)
