"""Runner 2: arize-phoenix-client's ``AsyncClient().experiments.run_experiment`` on the bench
dataset, with the workload's task and evaluators. Started by ``run.py`` as its own process (so
that, like the pytest runners, its time includes starting Python and importing the client).

    python peer_run_experiment.py DATASET CONCURRENCY EXPERIMENT_NAME

The server comes from arize-phoenix-client's usual variables (PHOENIX_COLLECTOR_ENDPOINT);
the judge from OPENAI_BASE_URL. The last line printed is JSON: the experiment id and the times
(seconds since this process started running Python code) of its phases.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402


async def main(dataset_name: str, concurrency: int, experiment_name: str) -> dict:
    from phoenix.client import AsyncClient

    from workload import answer_length, exact_match, qa_correctness_async, task

    marks = {"imported": time.perf_counter() - STARTED}
    client = AsyncClient()
    dataset = await client.datasets.get_dataset(dataset=dataset_name)
    marks["dataset_loaded"] = time.perf_counter() - STARTED

    # run_experiment runs every task first, then hands the runs to evaluate_experiment: note
    # when that happens, to report the two phases (a wrapper; the call itself is unchanged).
    evaluate = client.experiments.evaluate_experiment

    async def timed_evaluate(*args, **kwargs):
        marks["tasks_done"] = time.perf_counter() - STARTED
        return await evaluate(*args, **kwargs)

    client.experiments.evaluate_experiment = timed_evaluate  # type: ignore[method-assign]
    ran = await client.experiments.run_experiment(
        dataset=dataset, task=task,
        evaluators=[exact_match, answer_length, qa_correctness_async()],
        experiment_name=experiment_name, concurrency=concurrency)
    marks["evaluations_done"] = time.perf_counter() - STARTED
    return {"experiment_id": ran["experiment_id"], "task_runs": len(ran["task_runs"]),
            "evaluation_runs": len(ran["evaluation_runs"]), "marks": marks}


if __name__ == "__main__":
    name, concurrency, experiment = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps(asyncio.run(main(name, concurrency, experiment))), flush=True)
