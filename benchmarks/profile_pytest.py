"""Run pytest under cProfile, every thread included, and write one merged profile.

    python profile_pytest.py OUTPUT [pytest arguments]

``python -m cProfile -m pytest`` only sees pytest's main thread, while this plugin runs tasks,
judges and uploads on its engine's loop thread (and sync code in that loop's thread pool). Here
each thread started during the run gets a profiler of its own; when pytest returns, the
profiles of the main thread and of every thread that has finished are merged (pstats) into
OUTPUT. Threads still running then (daemon threads nobody stopped) are left out and named.
Read the result with ``python -m pstats OUTPUT`` (``sort tottime``, ``stats 30``).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
import time


def main(argv: list[str]) -> int:
    output, pytest_args = argv[0], argv[1:]
    finished: list[tuple[str, cProfile.Profile, float]] = []
    running: dict[int, str] = {}
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        started = time.perf_counter()
        with lock:
            running[id(self)] = self.name
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()
            with lock:
                running.pop(id(self), None)
                finished.append((self.name, profile, time.perf_counter() - started))

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    import pytest

    main_profile = cProfile.Profile()
    started = time.perf_counter()
    main_profile.enable()
    try:
        code = pytest.main(pytest_args)
    finally:
        main_profile.disable()
    wall = time.perf_counter() - started
    with lock:
        done, still = list(finished), sorted(set(running.values()))
    stats = pstats.Stats(main_profile)
    for _, profile, _ in done:
        stats.add(profile)
    stats.dump_stats(output)

    report = io.StringIO()
    print(f"\nprofile: pytest took {wall:.2f}s; merged {1 + len(done)} thread(s) into {output}",
          file=report)
    by_name: dict[str, list[float]] = {}
    for name, _, seconds in done:
        by_name.setdefault(name.rsplit("_", 1)[0], []).append(seconds)
    for name, times in sorted(by_name.items()):
        print(f"  {len(times):3d} x {name}: alive {sum(times):.2f}s in total", file=report)
    if still:
        print(f"  left out (still running at the end): {', '.join(still)}", file=report)
    print("\ntop functions by own time (all threads; waiting shows as lock/queue/poll):",
          file=report)
    pstats.Stats(output, stream=report).sort_stats("tottime").print_stats(20)
    print("this plugin's functions by cumulative time (a coroutine counts one call per resume):",
          file=report)
    pstats.Stats(output, stream=report).sort_stats("cumulative").print_stats(
        "pytest_phoenix_evals", 25)
    print(report.getvalue(), file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
