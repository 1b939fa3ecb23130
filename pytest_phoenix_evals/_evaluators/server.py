"""Evaluators run by the Phoenix server itself, through its ``evaluatorPreviews`` mutation.

With ``--phoenix-evaluate-on=server`` every attached evaluator runs here, and attached code
evaluators run here unless ``--phoenix-allow-code-evaluators`` lets them run locally. The server
then uses its own provider credentials, secrets and sandboxes, and the results are the server's
by construction. LLM evaluators are sent inline (the server has no preview of a stored one): the
prompt version it would run, read over REST, is turned back into its GraphQL input
(``_phoenix.wire``).

Batching: previews wait :data:`LINGER` for others, then go many to a request
(``Gateway.aevaluator_previews``: aliased fields of one mutation, at most the server's alias
limit), one request at a time.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._core.naming import annotation_names
from .._core.types import NOT_RUN, AnnotatorKind, Example, OutputConfig, Score
from .._phoenix.gateway import PREVIEWS_PER_REQUEST

if TYPE_CHECKING:
    from .._phoenix.gateway import Gateway

#: Seconds a preview waits for others to share its request.
LINGER = 0.005

# One batcher per gateway, dropped with it (a batcher refers to its gateway weakly).
_BATCHERS: weakref.WeakKeyDictionary[Any, PreviewBatcher] = weakref.WeakKeyDictionary()


def batcher_for(gateway: Gateway) -> PreviewBatcher:
    """The gateway's one batcher, so that previews of every dataset share requests."""
    batcher = _BATCHERS.get(gateway)
    if batcher is None:
        batcher = _BATCHERS[gateway] = PreviewBatcher(gateway)
    return batcher


class PreviewBatcher:
    """Sends previews to the server, many per request; use on the engine's loop only."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = weakref.ref(gateway)
        self._queue: list[tuple[dict[str, Any], asyncio.Future[list[dict[str, Any]]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, preview: dict[str, Any]) -> list[dict[str, Any]]:
        """The server's results for one preview; PreviewRefused with its error if refused."""
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._queue.append((preview, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(LINGER)
        while self._queue:
            batch = self._queue[:PREVIEWS_PER_REQUEST]
            self._queue = self._queue[PREVIEWS_PER_REQUEST:]
            await self._send(batch)

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            gateway = self._gateway()
            if gateway is None:
                raise RuntimeError("the session has ended")
            answers = await gateway.aevaluator_previews([preview for preview, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(PreviewRefused(str(exc)))
            return
        for (_, future), answer in zip(batch, answers):
            if future.done():
                continue
            if answer.results is None:
                future.set_exception(PreviewRefused(answer.error or "no result"))
            else:
                future.set_result(answer.results)


class PreviewRefused(Exception):
    """The server refused to run a preview (no sandbox, no provider key, ...)."""


@dataclass
class ServerEvaluator:
    """An attached evaluator that the Phoenix server runs (``evaluatorPreviews``).

    ``preview`` is the ``EvaluatorPreviewInput`` (built-in id, inline LLM or inline code);
    results are renamed the way the server's experiment runner names annotations.
    """

    name: str
    kind: str
    output_configs: Sequence[OutputConfig]
    preview: dict[str, Any]
    path_mapping: dict[str, str] = field(default_factory=dict)
    literal_mapping: dict[str, Any] = field(default_factory=dict)
    batcher: PreviewBatcher | None = None
    # Why the annotation was not computed when the server refuses to run it at all.
    refused: str = "the Phoenix server could not run this evaluator"

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        assert self.batcher is not None
        start = datetime.now(UTC)
        names = annotation_names(self.output_configs) or [self.name]
        kind: AnnotatorKind = "LLM" if self.kind == "LLM" else "CODE"
        item = {"evaluator": self.preview, "context": context,
                "inputMapping": {"pathMapping": self.path_mapping,
                                 "literalMapping": self.literal_mapping}}
        try:
            results = await self.batcher.run(item)
        except PreviewRefused as exc:
            return [Score(name=names[0], evaluator=self.name, annotator_kind=kind,
                          error=f"{NOT_RUN}{self.refused}: {exc}", start_time=start,
                          end_time=datetime.now(UTC))]
        end = datetime.now(UTC)
        if self.kind == "BUILTIN":
            return self._builtin_scores(results, names, start, end)
        if len(results) == 1 and results[0].get("error"):
            only = self.output_configs[0] if len(self.output_configs) == 1 else None
            # An LLM judge that failed as a whole: one annotation, named as the server's
            # runner names it (the first config's name, never "<first>.<first>").
            name = self.output_configs[0].name if kind == "LLM" and self.output_configs \
                else names[0]
            return [Score(name=name, evaluator=self.name, annotator_kind=kind,
                          error=results[0]["error"], config=only, start_time=start,
                          end_time=end)]
        by_config = {config.name: (config, name)
                     for config, name in zip(self.output_configs, names)}
        scores: dict[str, Score] = {}
        for result in results:
            annotation = result.get("annotation") or {}
            config_name = self._config_of(str(result.get("evaluatorName") or ""))
            if config_name not in by_config or config_name in scores:
                continue
            config, name = by_config[config_name]
            scores[config_name] = Score(
                name=name, evaluator=self.name,
                annotator_kind=_annotator_kind(annotation.get("annotatorKind"), kind),
                label=annotation.get("label"), score=annotation.get("score"),
                explanation=annotation.get("explanation"), error=result.get("error"),
                metadata=dict(annotation.get("metadata") or {}), config=config,
                start_time=start, end_time=end)
        return [scores.get(config.name) or Score(
            name=name, evaluator=self.name, annotator_kind=kind, config=config,
            error=f"the server returned no result for {config.name!r}", start_time=start,
            end_time=end) for config, name in by_config.values()]

    def _builtin_scores(self, results: list[dict[str, Any]], names: list[str],
                        start: datetime, end: datetime) -> list[Score]:
        """A built-in's preview runs on the built-in's own config (true/false, or a distance);
        the server's experiment runner maps that one outcome onto each of the dataset
        evaluator's stored configs, renamed, customised or several: so does this (the same
        mapping as a built-in run here)."""
        from .builtins import Outcome, label_and_score

        result: dict[str, Any] = results[0] if results else {
            "error": "the server returned no result"}
        annotation: dict[str, Any] = result.get("annotation") or {}
        error, score = result.get("error"), annotation.get("score")
        if error:
            outcome = Outcome(error=str(error))
        elif annotation.get("label") is None:  # a distance
            outcome = Outcome(distance=score)
        else:  # the built-in's own config: values[0] (score 1) when it holds
            outcome = Outcome(matched=score == 1.0)
        scores = []
        for config, name in zip(self.output_configs, names):
            label, value = label_and_score(outcome, config)
            scores.append(Score(
                name=name, evaluator=self.name,
                annotator_kind=_annotator_kind(annotation.get("annotatorKind"), "CODE"),
                label=label, score=value, explanation=annotation.get("explanation"),
                error=outcome.error, metadata=dict(annotation.get("metadata") or {}),
                config=config, start_time=start, end_time=end))
        return scores

    def _config_of(self, preview_name: str) -> str:
        """The config a preview result belongs to: previews are named ``<name>`` (one config)
        or ``<name>.<config>`` (several), after the inline name or the built-in's."""
        if len(self.output_configs) == 1:
            return self.output_configs[0].name
        for config in self.output_configs:
            if preview_name.endswith(f".{config.name}"):
                return config.name
        return preview_name


def _annotator_kind(value: object, default: AnnotatorKind) -> AnnotatorKind:
    """The server's annotator kind, when it is one Phoenix knows."""
    return value if value in ("CODE", "LLM", "HUMAN") else default
