"""The cost Phoenix computed for each run of the session's experiments: read at the end, once
the trace spans were sent, waiting (bounded) for the server to store the runs' traces. Phoenix
prices an LLM span when it stores it, from the span's model name and token counts
(``SpanCost``); an experiment run's ``costSummary`` sums its trace's. No pytest here."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .._core.measures import RunCost
from .._phoenix.gateway import Gateway
from .._phoenix.http import PhoenixError

#: Seconds between two reads while the server has not stored every trace yet.
POLL = 1.0


def read_costs(gateway: Gateway, experiments: Iterable[str], wanted: set[str],
               timeout: float) -> tuple[dict[str, RunCost], str | None]:
    """Each run's cost by its trace id, once Phoenix has stored the traces in ``wanted``
    (waiting at most ``timeout`` seconds); and what could not be read, or None."""
    deadline = time.monotonic() + timeout
    experiments = list(experiments)
    while True:
        found: dict[str, RunCost] = {}
        try:
            runs: list[dict[str, Any]] = [
                run for experiment in experiments for run in gateway.run_costs(experiment)]
        except PhoenixError as exc:
            return {}, f"could not read the runs' cost: {exc}"
        for run in runs:
            if run["trace_id"] and run["traced"]:
                found[run["trace_id"]] = RunCost(run["cost"], run["tokens"])
        waiting = wanted - set(found)
        if not waiting:
            return found, None
        if time.monotonic() >= deadline:
            return found, (f"Phoenix had not stored the traces of {len(waiting)} run(s) after "
                           f"{timeout:g} s (--phoenix-upload-timeout): their cost is unknown")
        time.sleep(POLL)
