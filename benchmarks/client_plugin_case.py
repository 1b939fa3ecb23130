"""Runner 3: the same workload through the pytest plugin shipped inside arize-phoenix-client
(entry point ``phoenix``, marker ``@pytest.mark.phoenix``). ``run.py`` copies this file as
``test_client_plugin.py`` into a directory of its own and runs pytest there, with or without
pytest-xdist (``-n C``): that plugin has no concurrency of its own.

How that plugin works, and so what differs from the other runners:

* It does not run an existing Phoenix dataset: it uploads the collected tests as a dataset
  (named by ``dataset=``; the parametrized arguments become each example's input, the
  reference output stays empty) and records one experiment on it per session.
* The test body calls the task and hands its output over with ``log_output``; the marker's
  ``evaluators=`` run after the test (in its report hook), one after another, bound by
  parameter name to ``output``, the parametrized arguments (here ``question`` and
  ``expected``, which therefore binds as the reference) and ``input`` (all of them).
* Uploads are synchronous, in pytest's thread: the run, then a ``pass`` annotation of its own
  (a 4th evaluation per run), then each evaluator's; every span is exported synchronously too.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from phoenix.client.pytest import log_output

from workload import answer_length, exact_match, examples, qa_correctness_sync, task

EXAMPLES = examples(int(os.environ["BENCH_EXAMPLES"]))


@pytest.mark.phoenix(dataset=os.environ["BENCH_CLIENT_DATASET"],
                     evaluators=[exact_match, answer_length, qa_correctness_sync()])
@pytest.mark.parametrize(
    "question,expected",
    [(e["input"]["question"], e["output"]) for e in EXAMPLES],
    ids=[f"ex{e['metadata']['n']}" for e in EXAMPLES])
def test_case(question, expected):
    # The task is the workload's async one; a sync test drives it to completion.
    output = asyncio.run(task({"question": question}))
    log_output(output)
