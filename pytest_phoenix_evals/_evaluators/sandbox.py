"""Code evaluators attached in Phoenix, run on this machine (``--phoenix-allow-code-evaluators``).

The source comes from the Phoenix server, so running it here means trusting whoever can edit
evaluators there; that is why it is opt-in. Each call runs in a separate Python process
(``python -I``: no user site, no environment-driven imports) with a time limit, and sees only
its inputs. The processes are kept warm (a few per evaluator) and each call starts in a fresh
namespace, so the limit counts the evaluator's own time; one that overruns is killed. It is not
a security sandbox: the code can do anything this user can.

The steps follow the server's (``phoenix/server/api/evaluators.py``): the inputs are the
parameters of the source's ``evaluate(...)`` (only ``output``, ``reference``, ``input`` and
``metadata`` are allowed), mapped from the context with the dataset evaluator's input mapping;
the return value is read per output config (``coerce_output.py``): a dict of label / score /
explanation, a bool (its text is the label), a number (the score) or a string (the label); a
categorical label must be one of the config's labels and takes its score.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._core.naming import annotation_names
from .._core.types import Example, OutputConfig, Score
from .mapping import MappingError, map_inputs

ALLOWED = ("output", "reference", "input", "metadata")
# A worker: a ``python -I`` process that evaluates one request (a JSON line on stdin) at a
# time and answers with a JSON line on its own stdout; what the evaluator prints goes to
# stderr. Started once and kept warm, so that a call's time limit counts the evaluator's own
# time, never an interpreter starting up (which on a busy machine alone can take seconds).
_WORKER = r"""
import asyncio, inspect, json, sys
answers, sys.stdout = sys.stdout, sys.stderr
answers.write("ready\n")
answers.flush()
for line in sys.stdin:
    request = json.loads(line)
    namespace = {"__name__": "phoenix_code_evaluator"}
    try:
        exec(compile(request["source"], "<code evaluator>", "exec"), namespace)
        value = namespace["evaluate"](**request["inputs"])
        if inspect.isawaitable(value):
            value = asyncio.run(value)
        answer = {"value": value}
        json.dumps(answer)
    except BaseException as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    answers.write(json.dumps(answer, default=repr) + "\n")
    answers.flush()
"""
#: Workers kept per code evaluator (cases evaluated at once beyond this wait for one).
MAX_WORKERS = 4


class _Worker:
    def __init__(self) -> None:
        import tempfile

        # Read only to say why a worker died; closed with it.
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _WORKER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, encoding="utf-8",
            bufsize=1)
        self.ready = False

    def answer(self, line: str | None, timeout: float | None) -> str | None:
        """Send ``line`` (None: only wait until ready); the answer line, or None at the
        timeout (the worker is then stopped)."""
        import selectors

        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.close()
                return None
        return self.process.stdout.readline()

    def tail(self) -> str:
        """The last line the worker wrote to stderr (why it died)."""
        self.stderr.seek(0)
        return (self.stderr.read().strip().splitlines() or ["no output"])[-1]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self.stderr.close()


class _Workers:
    """Warm workers of one code evaluator, at most :data:`MAX_WORKERS`; thread-safe."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_WORKERS)

    def run(self, request: str, timeout: float, name: str) -> Any:
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker()
            if not worker.ready:  # the start-up is waited for apart from the time limit
                worker.ready = worker.answer(None, None) == "ready\n"
                if not worker.ready:
                    raise ValueError(f"code evaluator {name!r} could not start Python: "
                                     f"{worker.tail()}")
            reply = worker.answer(request, timeout)
            if reply is None:
                raise ValueError(f"code evaluator {name!r} timed out after {timeout:g} s "
                                 f"(--phoenix-code-timeout)")
            if not reply:  # the process ended (os._exit, a crash)
                code = worker.process.wait()
                tail = worker.tail()
                worker.close()
                raise ValueError(f"code evaluator {name!r} exited with code {code}: {tail}")
            with self._lock:
                self._idle.append(worker)
        answer = json.loads(reply)
        if "error" in answer:
            raise ValueError(answer["error"])
        return answer["value"]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


def input_schema(source: str) -> dict[str, Any]:
    """The schema of ``evaluate(...)``'s inputs; ValueError saying why it cannot be read."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"Could not parse the Python evaluator signature: {exc.msg} "
                         f"(line {exc.lineno})") from None
    function = next((node for node in tree.body
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and node.name == "evaluate"), None)
    if function is None:
        raise ValueError("no top-level `evaluate(...)` function was found in the source")
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    with_defaults = {a.arg for a in positional[len(positional) - len(arguments.defaults):]}
    with_defaults |= {a.arg for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d}
    names = [a.arg for a in (*positional, *arguments.kwonlyargs)]
    unsupported = [n for n in names if n not in ALLOWED]
    if unsupported:
        raise ValueError(f"the `evaluate(...)` signature uses unsupported parameter names: "
                         f"{', '.join(unsupported)}; supported: {', '.join(ALLOWED)}")
    return {"type": "object", "properties": {n: {} for n in names},
            "required": [n for n in names if n not in with_defaults]}


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, not {value!r}")
    return float(value)


def coerce(value: Any, config: OutputConfig) -> tuple[str | None, float | None, str | None]:
    """(label, score, explanation) of one returned value under one output config."""
    label: Any = None
    score: Any = None
    explanation: Any = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"label", "score", "explanation"})
        if unknown:
            raise ValueError(f"Unrecognized keys in output dict: {unknown}. Accepted dict keys "
                             f"are: ['explanation', 'label', 'score']")
        label, score, explanation = value.get("label"), value.get("score"), \
            value.get("explanation")
    elif isinstance(value, bool):
        label = str(value)
    elif isinstance(value, (int, float)):
        score = value
    elif isinstance(value, str):
        label = value
    elif value is not None:
        raise ValueError(f"unsupported result {type(value).__name__}: return a dict of label/"
                         f"score/explanation, a bool, a number or a string")
    if label is not None:
        label = str(label)
    if config.kind == "CATEGORICAL":
        labels = dict(config.values)
        if label is None:
            raise ValueError(f"a label is required for categorical output config "
                             f"{config.name!r} (one of {list(labels)})")
        if label not in labels:
            raise ValueError(f"Label {label!r} not in categorical output config values "
                             f"{list(labels)}.")
        configured = labels[label]
        if score is not None:
            score = _number(score, "score")
            if configured is not None and score != configured:
                raise ValueError(f"Score {score} does not match the configured score "
                                 f"{configured} for label {label!r}.")
        score = configured if configured is not None else score
    elif config.kind == "CONTINUOUS":
        if score is None:
            raise ValueError(f"a numeric score is required for continuous output config "
                             f"{config.name!r}")
        score = _number(score, "score")
        if config.lower_bound is not None and score < config.lower_bound:
            raise ValueError(f"Score {score} is below lower_bound {config.lower_bound}")
        if config.upper_bound is not None and score > config.upper_bound:
            raise ValueError(f"Score {score} is above upper_bound {config.upper_bound}")
    elif score is not None:
        score = _number(score, "score")
    return label, score, None if explanation is None else str(explanation)


@dataclass
class LocalCode:
    """A Python code evaluator from Phoenix, run here in a separate process."""

    name: str
    source: str
    output_configs: Sequence[OutputConfig]
    path_mapping: dict[str, str] = field(default_factory=dict)
    literal_mapping: dict[str, Any] = field(default_factory=dict)
    timeout: float = 10.0
    kind: str = "CODE"
    _workers: _Workers = field(default_factory=_Workers, repr=False, compare=False)

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        start = datetime.now(UTC)
        names = annotation_names(self.output_configs) or [self.name]
        hint = None
        try:
            try:
                inputs = map_inputs(input_schema=input_schema(self.source),
                                    path_mapping=self.path_mapping,
                                    literal_mapping=self.literal_mapping, context=context)
            except MappingError as exc:
                hint = exc.hint
                raise ValueError(f"Input mapping failed: {exc}") from None
            value = await asyncio.to_thread(self._run, inputs)
            scores = []
            values = self._per_config(value)
            for config, name, item in zip(self.output_configs, names, values):
                try:
                    label, score, explanation = coerce(item, config)
                    error = None
                except ValueError as exc:
                    label = score = explanation = None
                    error = str(exc)
                scores.append(Score(name=name, evaluator=self.name, label=label, score=score,
                                    explanation=explanation, error=error, config=config,
                                    start_time=start, end_time=datetime.now(UTC)))
            return scores
        except ValueError as exc:
            only = self.output_configs[0] if len(self.output_configs) == 1 else None
            return [Score(name=names[0], evaluator=self.name, error=str(exc), hint=hint,
                          config=only, start_time=start, end_time=datetime.now(UTC))]

    def _per_config(self, value: Any) -> list[Any]:
        """Several configs: a dict naming every config gives each its own value."""
        configs = self.output_configs
        if len(configs) > 1 and isinstance(value, dict) and all(c.name in value for c in configs):
            shared = value.get("explanation") if isinstance(value.get("explanation"), str) \
                else None
            out = []
            for config in configs:
                item = value[config.name]
                if shared is not None and isinstance(item, dict) and "explanation" not in item:
                    item = {**item, "explanation": shared}
                out.append(item)
            return out
        return [value] * len(configs)

    def _run(self, inputs: dict[str, Any]) -> Any:
        request = json.dumps({"source": self.source, "inputs": inputs})
        return self._workers.run(request, self.timeout, self.name)

    async def aclose(self) -> None:
        """Stop the warm workers (the session closes every evaluator it handed out)."""
        self._workers.close()
