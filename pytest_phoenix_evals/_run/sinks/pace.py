"""How many uploads go to Phoenix at once: as many as its latency calls for, fewer when it says
it is overloaded.

To keep busy a server that takes R seconds to answer one request unloaded (mostly the network's
round trip, for a remote or hosted Phoenix) and serves X requests a second, about X·R requests
must be in flight (Little's law); more only queue at the server. A fixed number is wrong one way
or the other: 8 left a Phoenix 100 ms away idle most of the time, and many more would only queue
at a local one. So the limit follows the answers (the gradient rule of Netflix's
concurrency-limits): after each window of as many answers as the limit (about one round trip),

    limit = limit · clamp(R_min / R, 0.5, 1) + QUEUE

with R_min the fastest answer seen (the unloaded latency) and R the window's mean. While answers
come as fast as unloaded, the limit grows by QUEUE a window; once they queue at the server
(R = limit / X), it settles at X·R_min + QUEUE: the requests the round trip needs, and QUEUE more
waiting at the server, which keep it busy while this process is busy elsewhere. The clamp keeps
one slow window (a pause of this process) from halving the limit; latency alone never takes it
below 2·QUEUE, which is the fixed 8 of before, while a local server serves 1 to 8 requests
at once alike. A 429 or 503 (the server, or a proxy in front of it, saying it is overloaded)
halves the limit, once a window (a window's answers are one signal), down to one.

The N workers of a pytest-xdist run upload to the same server: each paces a share
(:meth:`Pace.shared`, 1/N of the start, the queue and the bound), so that together they keep
in flight what one process would (each keeping its own 8 made the server work more for the
same uploads).

Written by hand: the adaptive-concurrency packages on the index are single 0.x releases, and the
rule is a few lines; asyncio's Semaphore cannot change its size, so the gate is here too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

#: Requests kept waiting at the server beyond what the round trip needs (also the growth a
#: window while the answers come unloaded).
QUEUE = 4
#: How much slower than the fastest answer the window's may be before the limit shrinks
#: (Gradient2's tolerance): answers slowed by this process's own work, or by the network's
#: jitter, are not the server's queue.
TOLERANCE = 1.5
#: The limit it starts from (the fixed number of before), and its bounds.
START = 2 * QUEUE
MOST = 64
LEAST = 1
#: Answers that mean "slow down": too many requests, service unavailable.
OVERLOADED = frozenset({429, 503})


class Pace:
    """A gate of ``limit`` uploads at once (first come, first served) whose limit follows the
    answers it is told of (:meth:`answered`). One event loop only."""

    def __init__(self, start: float = START, *, most: int = MOST,
                 queue: float = QUEUE) -> None:
        self.most = most
        self.queue = queue
        self.limit = min(max(float(start), LEAST), most)
        #: What it did, for the summary and the tests: the highest limit, the most uploads at
        #: once, the overload answers, and the lowest limit they brought it to.
        self.highest = self.limit
        self.peak = 0
        self.overloads = 0
        self.lowest_after_overload: float | None = None
        self._in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._fastest: float | None = None
        self._answers = 0  # in the current window
        self._window: list[float] = []  # its accepted answers' seconds
        self._halved_in_window = False

    def overload_notice(self) -> str | None:
        """What the summary says when Phoenix answered 429 or 503 (None when it did not)."""
        if not self.overloads:
            return None
        return (f"Phoenix answered {self.overloads} upload request(s) with 429 or 503 (over "
                f"capacity): uploads went fewer at once (down to "
                f"{int(self.lowest_after_overload or 1)}) and were retried")

    @classmethod
    def shared(cls, processes: int) -> Pace:
        """One of ``processes`` paces that upload to the same server (xdist's workers)."""
        processes = max(1, processes)
        return cls(START / processes, most=max(LEAST, MOST // processes),
                   queue=QUEUE / processes)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``limit`` places while the body runs."""
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._wake()

    def answered(self, seconds: float, status: int | None) -> None:
        """One attempt's answer: accepted (``status`` None) after ``seconds``, or refused with
        an HTTP ``status`` (429 and 503 halve the limit; others say nothing of load)."""
        if status is not None and status not in OVERLOADED:
            return
        self._answers += 1
        if status is None:
            self._fastest = seconds if self._fastest is None else min(self._fastest, seconds)
            self._window.append(seconds)
        else:
            self._overloaded()
        if self._answers >= self.limit:  # a window: about one round trip's answers
            if not self._halved_in_window and self._window:
                mean = sum(self._window) / len(self._window)
                assert self._fastest is not None
                gradient = min(1.0, max(0.5, TOLERANCE * self._fastest / mean)) \
                    if mean > 0 else 1.0
                self._set(self.limit * gradient + self.queue)
            self._answers, self._window, self._halved_in_window = 0, [], False

    # --- the gate ---------------------------------------------------------------------------

    async def _acquire(self) -> None:
        if self._in_flight < int(self.limit) and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # _wake counted the place as taken before waking it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # woken, then cancelled: give it back
                self._in_flight -= 1
                self._wake()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _take(self) -> None:
        self._in_flight += 1
        self.peak = max(self.peak, self._in_flight)

    def _wake(self) -> None:
        while self._waiters and self._in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    # --- the limit --------------------------------------------------------------------------

    def _overloaded(self) -> None:
        self.overloads += 1
        if self._halved_in_window:  # one window's answers are one signal
            return
        self._halved_in_window = True
        self._set(self.limit / 2)
        self.lowest_after_overload = self.limit if self.lowest_after_overload is None else \
            min(self.lowest_after_overload, self.limit)

    def _set(self, limit: float) -> None:
        self.limit = min(float(self.most), max(float(LEAST), limit))
        self.highest = max(self.highest, self.limit)
        self._wake()
