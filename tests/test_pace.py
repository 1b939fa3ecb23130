"""The upload pace (``_run/sinks/pace.py``) on its own: how its limit follows the answers it is
told of, and that its gate holds no more than the limit at once. No server and no clock: the
answers' seconds are given. What it does against a real Phoenix behind a slow or overloaded
proxy is in test_faults.py."""

from __future__ import annotations

import asyncio

from pytest_phoenix_evals._run.sinks.pace import LEAST, QUEUE, START, Pace


def window(pace: Pace, seconds: float, status: int | None = None) -> None:
    """As many answers as the limit: one window."""
    for _ in range(int(pace.limit)):
        pace.answered(seconds, status)


def test_the_limit_grows_while_answers_come_as_fast_as_unloaded() -> None:
    pace = Pace()
    assert pace.limit == START
    for expected in (START + QUEUE, START + 2 * QUEUE, START + 3 * QUEUE):
        window(pace, 0.1)  # a far server, answering each as fast as the first
        assert pace.limit == expected


def test_it_settles_where_answers_queue_and_never_below_the_old_fixed_number() -> None:
    pace = Pace(start=40)
    for _ in range(20):
        window(pace, 0.1)
        window(pace, 1.0)  # ten times slower: the requests queue at the server
    assert pace.limit < 40
    assert pace.limit >= 2 * QUEUE  # latency alone: at least the 8 of before
    window(pace, 0.01)  # a faster answer than any: the new unloaded latency
    for _ in range(12):
        window(pace, 0.1)
    assert abs(pace.limit - 2 * QUEUE) < 0.1


def test_overload_halves_the_limit_once_a_window_down_to_one() -> None:
    pace = Pace(start=32)
    for _ in range(5):
        pace.answered(0.1, 429)  # five answers of one window: one signal
    assert pace.limit == 16
    pace.answered(0.1, 500)  # a server error says nothing of load
    assert pace.limit == 16
    for _ in range(10):
        window(pace, 0.1, 503)
    assert pace.limit == LEAST
    assert pace.overloads > 10  # every one counted
    assert pace.lowest_after_overload == LEAST


def test_it_recovers_after_the_overload_ends_and_stays_bounded() -> None:
    pace = Pace(most=20)
    pace.answered(0.1, 429)
    assert pace.limit == START / 2
    for _ in range(10):
        window(pace, 0.1)
    assert pace.limit == 20


def test_the_gate_holds_no_more_than_the_limit_first_come_first_served() -> None:
    async def main() -> tuple[list[int], int]:
        pace = Pace(start=3)
        order: list[int] = []
        release = asyncio.Event()

        async def upload(i: int) -> None:
            async with pace.slot():
                order.append(i)
                await release.wait()

        tasks = [asyncio.create_task(upload(i)) for i in range(10)]
        await asyncio.sleep(0.01)
        held = len(order)
        tasks[5].cancel()  # a waiter that gives up keeps no place
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order, held

    order, held = asyncio.run(main())
    assert held == 3
    assert order == [0, 1, 2, 3, 4, 6, 7, 8, 9]


def test_a_grown_limit_lets_waiters_in_at_once() -> None:
    async def main() -> int:
        pace = Pace(start=2)
        inside = 0
        go = asyncio.Event()

        async def upload() -> None:
            nonlocal inside
            async with pace.slot():
                inside += 1
                await go.wait()

        tasks = [asyncio.create_task(upload()) for _ in range(8)]
        await asyncio.sleep(0.01)
        window(pace, 0.1)  # 2 -> 6
        await asyncio.sleep(0.01)
        seen = inside
        go.set()
        await asyncio.gather(*tasks)
        return seen

    assert asyncio.run(main()) == 2 + QUEUE


def test_the_workers_of_one_run_pace_a_share_each() -> None:
    # N pytest-xdist workers upload to one server: together they keep what one process would.
    halves = [Pace.shared(2), Pace.shared(2)]
    assert [p.limit for p in halves] == [START / 2] * 2 and halves[0].most == 32
    for pace in halves:
        for _ in range(20):
            window(pace, 0.1)
            window(pace, 1.0)  # answers queue at the server
        window(pace, 0.01)
        for _ in range(12):
            window(pace, 0.1)
    assert abs(sum(p.limit for p in halves) - 2 * QUEUE) < 0.2  # the 8 of one process
    many = Pace.shared(16)
    assert many.limit == LEAST and many.most == 4  # never a gate of none

    async def one_at_a_time() -> int:
        async with many.slot():
            return many.peak

    assert asyncio.run(one_at_a_time()) == 1
