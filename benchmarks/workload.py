"""The benchmark's workload, shared by every runner so that they all do the same work.

* :func:`examples` - a deterministic dataset: arithmetic questions with reference answers.
* :func:`task` - the task under test: ``async``, sleeps ``BENCH_TASK_LATENCY`` seconds (default
  0.05), computes for ``BENCH_TASK_CPU`` seconds of CPU (default 0: a CPU-bound step, which
  holds the interpreter as any Python computation does) and answers the question (wrong for
  every ``BENCH_WRONG_EVERY``-th question; 0, the default: never).
* :func:`exact_match`, :func:`answer_length` - the two code evaluators (plain functions).
* :func:`qa_correctness_async` / :func:`qa_correctness_sync` - the LLM judge for the peers of
  this plugin, sending the request this plugin's ``qa_correctness()`` sends (read from the JSON
  file named by ``BENCH_JUDGE_SPEC``, which ``run.py`` writes from the plugin's own prompt) to
  ``OPENAI_BASE_URL`` with the ``openai`` client, and reading the label back from the tool call.

Imported by the runners' processes (``PYTHONPATH`` holds this directory); it imports nothing
heavy at module level so that no runner pays for what it does not use.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from typing import Any

_QUESTION = re.compile(r"^Q(\d+): What is (\d+) (plus|minus|times) (\d+)\?$")
_OPERATIONS = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b,
               "times": lambda a, b: a * b}


def examples(n: int, seed: int = 20261123) -> list[dict[str, Any]]:
    """``n`` examples ``{"input": {"question"}, "output": {"answer"}, "metadata": {"n"}}``,
    the same for the same ``n`` and ``seed`` on every machine."""
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        a, b = rng.randrange(2, 100), rng.randrange(2, 100)
        operation = ("plus", "minus", "times")[rng.randrange(3)]
        out.append({"input": {"question": f"Q{i}: What is {a} {operation} {b}?"},
                    "output": {"answer": str(_OPERATIONS[operation](a, b))},
                    "metadata": {"n": i}})
    return out


def solve(question: str) -> str:
    match = _QUESTION.match(question)
    if match is None:
        return "I do not know."
    n, a, operation, b = match.groups()
    answer = _OPERATIONS[operation](int(a), int(b))
    wrong_every = int(os.environ.get("BENCH_WRONG_EVERY", "0") or 0)
    if wrong_every and int(n) % wrong_every == 0:
        answer += 1
    return str(answer)


async def task(input: dict[str, Any]) -> str:
    """The app under test: a fixed latency (``BENCH_TASK_LATENCY`` seconds), then the answer."""
    await asyncio.sleep(float(os.environ.get("BENCH_TASK_LATENCY", "0.05")))
    burn(float(os.environ.get("BENCH_TASK_CPU", "0") or 0))
    return solve(input["question"])


def burn(seconds: float) -> None:
    """Compute for ``seconds`` of this thread's CPU time (pure Python: it holds the GIL)."""
    if seconds <= 0:
        return
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        for i in range(1000):
            n += i * i


def exact_match(output: Any, expected: Any) -> bool:
    """Code evaluator 1: the output equals the reference answer."""
    return output == expected["answer"]


def answer_length(output: Any) -> int:
    """Code evaluator 2: the answer's length in characters (a score; nothing asserted)."""
    return len(str(output))


# --- the LLM judge, for the runners other than this plugin ---------------------------------

_SPEC: dict[str, Any] | None = None


def _spec() -> dict[str, Any]:
    """The judge request template: {"model", "messages" (with {{question}}, {{answer}},
    {{reference}}), "tools", "tool_choice", "params", "scores": {label: score}}."""
    global _SPEC
    if _SPEC is None:
        with open(os.environ["BENCH_JUDGE_SPEC"]) as handle:
            _SPEC = json.load(handle)
    return _SPEC


def _readable(value: Any) -> str:
    """As the plugin's judges show an input: a dict of one value stands for the value."""
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True)


def judge_request(input: Any, output: Any, expected: Any) -> dict[str, Any]:
    """The chat completion request for one case, as keyword arguments of ``create``."""
    spec = _spec()
    question = input["question"] if isinstance(input, dict) and "question" in input else input
    values = {"question": _readable(question), "answer": _readable(output),
              "reference": _readable(expected)}
    messages = []
    for message in spec["messages"]:
        content = message["content"]
        for key, value in values.items():
            content = content.replace("{{" + key + "}}", value)
        messages.append({**message, "content": content})
    return {"model": spec["model"], "messages": messages, "tools": spec["tools"],
            "tool_choice": spec["tool_choice"], **spec["params"]}


def judge_result(completion: Any) -> dict[str, Any]:
    """The evaluation result from the judge's tool call (label, its score, explanation)."""
    calls = completion.choices[0].message.tool_calls or []
    if not calls:
        raise ValueError(f"the judge called no tool: {completion.choices[0].message.content!r}")
    arguments = json.loads(calls[0].function.arguments)
    label = arguments["label"]
    return {"label": label, "score": _spec()["scores"][label],
            "explanation": arguments.get("explanation")}


def _client_options() -> dict[str, Any]:
    # As the plugin's judge client: one attempt (the plugin retries itself), 30 s timeout.
    return {"base_url": os.environ["OPENAI_BASE_URL"],
            "api_key": os.environ.get("OPENAI_API_KEY") or "no-key-set",
            "max_retries": 0, "timeout": 30.0}


_ASYNC_CLIENTS: dict[int, Any] = {}


async def _qa_correctness_async(input: Any, output: Any, expected: Any) -> dict[str, Any]:
    from openai import AsyncOpenAI

    loop = id(asyncio.get_running_loop())  # an AsyncOpenAI client belongs to one event loop
    client = _ASYNC_CLIENTS.get(loop)
    if client is None:
        client = _ASYNC_CLIENTS[loop] = AsyncOpenAI(**_client_options())
    completion = await client.chat.completions.create(**judge_request(input, output, expected))
    return judge_result(completion)


_SYNC_CLIENT: Any = None


def _qa_correctness_sync(input: Any, output: Any, expected: Any) -> dict[str, Any]:
    from openai import OpenAI

    global _SYNC_CLIENT
    if _SYNC_CLIENT is None:
        _SYNC_CLIENT = OpenAI(**_client_options())
    completion = _SYNC_CLIENT.chat.completions.create(**judge_request(input, output, expected))
    return judge_result(completion)


def _as_llm_evaluator(function: Any) -> Any:
    """``function`` as arize-phoenix-client's evaluator named ``qa_correctness``, kind LLM."""
    from phoenix.client.experiments import create_evaluator

    return create_evaluator(kind="LLM", name="qa_correctness")(function)


def qa_correctness_async() -> Any:
    """The judge for ``run_experiment`` (async: it awaits evaluators on its loop)."""
    return _as_llm_evaluator(_qa_correctness_async)


def qa_correctness_sync() -> Any:
    """The judge for the client's pytest plugin (sync: it calls evaluators from pytest's
    thread, driving an async one with a fresh ``asyncio.run`` per call)."""
    return _as_llm_evaluator(_qa_correctness_sync)
