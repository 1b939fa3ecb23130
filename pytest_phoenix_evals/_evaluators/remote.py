"""Evaluators that run somewhere else: a web service of yours (``remote_evaluator``), the
code evaluators attached in Phoenix (:class:`AttachedCode`), and Phoenix itself
(:class:`ServerEvaluator`, through the server's ``evaluatorPreviews``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._core.secrets import redact
from .._core.types import Example, OutputConfig, Score, Verdict
from .._core.verdict import Threshold, declared, parse_threshold
from .code import normalize_result
from .llm.client import backoff


@dataclass
class RemoteEvaluator:
    """POSTs the evaluation context as JSON to ``url`` and reads back a result.

    The request body is ``{"evaluator", "example_id", "input", "output", "reference",
    "metadata"}``. The answer is JSON: an object with ``label``, ``score``, ``explanation``
    (and optionally ``metadata``), or anything a code evaluator may return (a number, a bool, a
    label, a list of objects with ``name``). 429, 5xx, timeouts and connection errors are
    retried with backoff (honouring Retry-After); then the evaluator errors.
    """

    name: str
    url: str
    timeout: float = 30.0
    retries: int = 3
    headers: Mapping[str, str] = field(default_factory=dict)
    threshold: Threshold | None = None
    pass_labels: frozenset[str] | None = None
    output_configs: Sequence[OutputConfig] = ()
    kind: str = "REMOTE"

    def __post_init__(self) -> None:
        self._client: Any = None

    def verdict(self, score: Score) -> Verdict | None:
        return declared(score, self.threshold, self.pass_labels)

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        start = datetime.now(UTC)
        body = {"evaluator": self.name, "example_id": example.id if example else None,
                **context}
        try:
            results = normalize_result(await self._post(body))
        except _RemoteError as exc:
            return [Score(name=self.name, evaluator=self.name, error=str(exc),
                          start_time=start, end_time=datetime.now(UTC))]
        except (TypeError, ValueError) as exc:
            return [Score(name=self.name, evaluator=self.name,
                          error=f"{self.url} answered something that is not a result: {exc}",
                          start_time=start, end_time=datetime.now(UTC))]
        end = datetime.now(UTC)
        return [Score(name=item.get("name") or (self.name if len(results) == 1
                                                 else f"{self.name}.{index + 1}"),
                      evaluator=self.name, label=item.get("label"), score=item.get("score"),
                      explanation=item.get("explanation"),
                      metadata=dict(item.get("metadata") or {}), start_time=start, end_time=end)
                for index, item in enumerate(results)]

    async def _post(self, body: dict[str, Any]) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=dict(self.headers))
        attempts = 1 + max(0, self.retries)
        for attempt in range(1, attempts + 1):
            problem: str
            headers = None
            try:
                response = await self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"cannot connect ({type(exc).__name__}: {exc})"
            else:
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise _RemoteError(f"{self.url} answered with invalid JSON: "
                                           f"{response.text[:300]!r}") from None
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                headers = response.headers
                if response.status_code != 429 and response.status_code < 500:
                    raise _RemoteError(redact(f"{self.url} refused the request ({problem})"))
            if attempt == attempts:
                raise _RemoteError(redact(f"{self.url} failed after {attempt} attempt(s): "
                                          f"{problem}"))
            await asyncio.sleep(backoff(attempt, headers))
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class _RemoteError(Exception):
    pass


def remote_evaluator(
    url: str,
    *,
    name: str,
    timeout: float = 30.0,
    retries: int = 3,
    headers: Mapping[str, str] | None = None,
    threshold: str | None = None,
    pass_labels: Iterable[str] | None = None,
) -> RemoteEvaluator:
    """An evaluator served over HTTP at ``url``; see :class:`RemoteEvaluator`.

    ``threshold`` (for example ``">=0.8"``) or ``pass_labels`` declare its pass rule, as for
    ``@evaluator``; ``headers`` are sent with every request (their values are never printed).
    """
    if threshold is not None and pass_labels is not None:
        raise ValueError("give at most one of threshold= and pass_labels=")
    from .._core.secrets import register

    for value in (headers or {}).values():
        register(value)
    return RemoteEvaluator(
        name=name, url=url, timeout=timeout, retries=retries, headers=dict(headers or {}),
        threshold=parse_threshold(threshold, name=name) if threshold else None,
        pass_labels=frozenset(pass_labels) if pass_labels is not None else None)

