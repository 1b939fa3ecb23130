"""Install and run a local Phoenix server in a virtual environment of its own.

Standard library only: the README's commands and the test suite call this before anything else
is installed. The server lives in its own virtual environment on purpose: the
``arize-phoenix`` package installs a ``phoenix/__init__.py`` that imports the whole server, so a
virtual environment holding both the server and ``arize-phoenix-client`` makes every
``import phoenix.client`` (and so every pytest start there) take seconds. We talk to the server
over HTTP only.

Usage::

    python scripts/phoenix_server.py install          # create the server's venv (cached)
    python scripts/phoenix_server.py start --workdir .phoenix --port 6006
    python scripts/phoenix_server.py stop --workdir .phoenix
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The server version the plugin is tested against. Override with PHOENIX_EVALS_SERVER_VERSION.
SERVER_VERSION = os.environ.get("PHOENIX_EVALS_SERVER_VERSION", "20.26.1")

#: The jsonpath-ng that Phoenix's lock file and Docker image pin. A pip-installed server gets the
#: newest instead, and the two read some paths differently (``[*]``, slices, indices).
PINNED_JSONPATH = "1.8.0"

#: A long step (an install, a server starting) says how it is going at least this often, in
#: seconds: nobody should wonder whether it hangs.
PROGRESS_EVERY = 15.0


def cache_dir() -> Path:
    """Where cached virtual environments live (PHOENIX_EVALS_CACHE_DIR, else ~/.cache)."""
    explicit = os.environ.get("PHOENIX_EVALS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-phoenix-evals"


def _log(message: str) -> None:
    print(f"[phoenix-server] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _file_lock(path: Path):
    """Serialise installs between processes (pytest-xdist workers, parallel CI jobs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(
    target: Path, requirements: list[str], *, label: str, stamp: str = ""
) -> Path:
    """Create ``target`` as a virtual environment holding ``requirements``, once.

    A marker file records what was installed (``requirements`` and ``stamp``); a second call
    with the same ones returns at once. Returns the environment's python executable.
    """
    python = target / "bin" / "python"
    marker = target / ".installed"
    wanted = "\n".join([*requirements, stamp])
    if marker.is_file() and marker.read_text() == wanted and python.exists():
        return python
    with _file_lock(target.parent / f".{target.name}.lock"):
        if marker.is_file() and marker.read_text() == wanted and python.exists():
            return python
        if target.exists():
            shutil.rmtree(target)
        _log(f"creating the {label} virtual environment in {target} (once; one to three "
             f"minutes)")
        started = time.monotonic()
        venv.EnvBuilder(with_pip=True).create(target)
        _log(f"{label}: downloading and installing {len(requirements)} requirement(s) and "
             f"their dependencies ({time.monotonic() - started:.0f} s)")
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                   "--progress-bar", "off", *requirements]
        code, output = _install(command, label, started)
        if code != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise SystemExit(f"installing {label} failed (pip exit {code}):\n" + output[-4000:])
        marker.write_text(wanted)
        _log(f"{label}: installed in {time.monotonic() - started:.0f} s")
    return python


def _install(command: list[str], label: str, started: float) -> tuple[int, str]:
    """Run pip, saying how far it got every ten packages, and at least every ``PROGRESS_EVERY``
    seconds (pip's own output is kept for an error message, not shown: it is hundreds of
    lines, and it says nothing while it installs)."""
    lines, collected = [], 0
    doing = "downloading"
    said = time.monotonic()
    lock = threading.Lock()
    finished = threading.Event()

    def say(message: str) -> None:
        nonlocal said
        with lock:
            _log(message)
            said = time.monotonic()

    def keep_saying() -> None:
        while not finished.wait(1.0):
            if time.monotonic() - said >= PROGRESS_EVERY:
                say(f"{label}: still {doing} ({time.monotonic() - started:.0f} s)")

    ticker = threading.Thread(target=keep_saying, daemon=True)
    ticker.start()
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                seconds = time.monotonic() - started
                if line.startswith(("Collecting ", "Processing ")):
                    collected += 1
                    if collected % 10 == 0:
                        say(f"{label}: {collected} packages found ({seconds:.0f} s)")
                elif line.startswith("Installing collected packages"):
                    doing = f"installing {collected} packages"
                    say(f"{label}: {doing} ({seconds:.0f} s)")
    finally:
        finished.set()
        ticker.join()
    return process.returncode, "".join(lines)


def ensure_server_venv() -> Path:
    """The cached virtual environment that holds the Phoenix server; returns its `phoenix`."""
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    target = cache_dir() / f"phoenix-server-{SERVER_VERSION}-{python}"
    ensure_venv(target, [f"arize-phoenix=={SERVER_VERSION}"], label=f"Phoenix {SERVER_VERSION}")
    return target / "bin" / "phoenix"


def ensure_jsonpath_overlay(version: str = PINNED_JSONPATH) -> Path:
    """A cached folder holding jsonpath-ng ``version`` alone; put ahead of the server's own
    site-packages (``server_env``), the server's code runs on that version.

    Much cheaper than a second server environment (1.5 GB): one small package, installed with
    the server environment's pip into a folder of its own (``--target``). The server
    environment itself is never changed.
    """
    server_python = ensure_server_venv().parent / "python"
    target = cache_dir() / f"jsonpath-ng-{version}-py{sys.version_info[0]}{sys.version_info[1]}"
    marker = target / ".installed"
    if marker.is_file() and marker.read_text() == version:
        return target
    with _file_lock(target.parent / f".{target.name}.lock"):
        if marker.is_file() and marker.read_text() == version:
            return target
        shutil.rmtree(target, ignore_errors=True)
        _log(f"installing jsonpath-ng {version} in {target} (once)")
        done = subprocess.run(
            [str(server_python), "-m", "pip", "install", "--disable-pip-version-check",
             "--no-deps", "--target", str(target), f"jsonpath-ng=={version}"],
            capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise SystemExit(f"installing jsonpath-ng {version} failed (pip exit "
                             f"{done.returncode}):\n" + (done.stdout + done.stderr)[-4000:])
        marker.write_text(version)
    return target


def server_env(jsonpath: str | None = None) -> dict[str, str]:
    """The environment that runs the server's code on jsonpath-ng ``jsonpath`` (None: the
    version installed with the server). Pass it to the server's python or ``phoenix``."""
    env = dict(os.environ)
    if jsonpath is not None:
        overlay = str(ensure_jsonpath_overlay(jsonpath))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (overlay, env.get("PYTHONPATH")) if p)
    return env


#: Put before a script run by the server's python that imports one module of the server's code:
#: the ``phoenix`` package then comes without its ``__init__`` (which imports the app, the
#: notebook session and the trace fixtures: 6 to 13 s here, 2 to 3 s without). The module's own
#: code and imports are unchanged; the package's path is extended as its ``__init__`` does.
LIGHT_IMPORT = """
import importlib.util, pkgutil, sys, types
_phoenix = types.ModuleType("phoenix")
_phoenix.__path__ = pkgutil.extend_path(
    list(importlib.util.find_spec("phoenix").submodule_search_locations), "phoenix")
sys.modules["phoenix"] = _phoenix
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes] | None
    workdir: Path
    log_path: Path

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# What the server's log says when a port it was given was taken meanwhile: free_port() only
# finds a port free at that moment, and another process (another test worker starting its own
# server) may bind it first. The server then keeps running without answering.
_PORT_TAKEN = ("Failed to bind to address", "address already in use")
_PORT_ATTEMPTS = 3


def start_server(
    workdir: Path,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180.0,
    detach: bool = False,
    jsonpath: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunningServer:
    """Start ``phoenix serve`` on 127.0.0.1 with SQLite in ``workdir``; wait until healthy.

    A port taken by another process between its choice and the server's bind is chosen again
    (the ports this function chose; at most three attempts).

    jsonpath: run the server on that jsonpath-ng version (see ``ensure_jsonpath_overlay``).
    progress: told every ``PROGRESS_EVERY`` seconds while the server does not answer yet.
    """
    phoenix = ensure_server_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        server, taken = _launch(phoenix, workdir, port or free_port(), extra_env, timeout,
                                detach, jsonpath, progress)
        if server is not None:
            return server
        if not taken or attempt == _PORT_ATTEMPTS:
            break
    raise RuntimeError(f"Phoenix did not become healthy in {workdir} within {timeout:.0f}s:\n"
                       f"{(workdir / 'server.log').read_text(errors='replace')[-3000:]}")


def _launch(phoenix: Path, workdir: Path, port: int, extra_env: dict[str, str] | None,
            timeout: float, detach: bool, jsonpath: str | None,
            progress: Callable[[str], None] | None = None,
            ) -> tuple[RunningServer | None, bool]:
    """One start: (the server once healthy, else None and whether a port was taken)."""
    url = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in server_env(jsonpath).items()
        # The server must not pick up the client-side settings of whoever starts it.
        if not key.startswith(("PHOENIX_", "OTEL_"))
    }
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(free_port()),
        PHOENIX_WORKING_DIR=str(workdir),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    env.update(extra_env or {})
    log_path = workdir / "server.log"
    logged = log_path.stat().st_size if log_path.exists() else 0  # this start's part begins
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [str(phoenix), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
    server = RunningServer(url=url, process=process, workdir=workdir, log_path=log_path)
    launched = time.monotonic()
    deadline = launched + timeout
    said = launched
    taken = False
    while time.monotonic() < deadline and not taken:
        if process.poll() is not None:
            break
        if is_healthy(url):
            (workdir / "server.pid").write_text(f"{process.pid}\n{url}\n")
            return server, False
        time.sleep(0.3)
        if progress is not None and time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            progress(f"Phoenix at {url} does not answer yet ({said - launched:.0f} s; it "
                     f"usually takes 10 to 40 s; its log: {log_path})")
        taken = _port_taken(log_path, logged)
    server.stop()
    return None, taken or _port_taken(log_path, logged)


def _port_taken(log_path: Path, start: int) -> bool:
    """Whether the log, from byte ``start`` on, says a port was taken."""
    with open(log_path, "rb") as log:
        log.seek(start)
        text = log.read().decode(errors="replace")
    return any(sign in text for sign in _PORT_TAKEN)


def running_server(workdir: Path) -> str | None:
    """The URL of a server started earlier in ``workdir`` that still answers, if any."""
    pid_file = workdir / "server.pid"
    if not pid_file.is_file():
        return None
    lines = pid_file.read_text().split()
    if len(lines) != 2:
        return None
    return lines[1] if is_healthy(lines[1]) else None


def stop_server(workdir: Path) -> bool:
    pid_file = workdir / "server.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().split()[0])
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create the server's virtual environment")
    start = sub.add_parser("start", help="start a server in the background")
    start.add_argument("--workdir", type=Path, default=Path(".phoenix"))
    start.add_argument("--port", type=int, default=6006)
    stop = sub.add_parser("stop", help="stop a server started with 'start'")
    stop.add_argument("--workdir", type=Path, default=Path(".phoenix"))
    args = parser.parse_args(argv)
    if args.command == "install":
        print(ensure_server_venv())
    elif args.command == "start":
        url = running_server(args.workdir.resolve())
        if url is None:
            url = start_server(args.workdir.resolve(), port=args.port, detach=True).url
        print(url)
    else:
        print("stopped" if stop_server(args.workdir.resolve()) else "no server was running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
