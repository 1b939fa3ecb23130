"""The recorder: uploads case results to Phoenix as experiment runs and annotations.

One experiment per dataset per session, created when its first case finishes. Each case is
posted from a background task on the engine's loop: the run first, then its annotations
concurrently. Nothing here blocks a test; :meth:`ExperimentRecorder.drain` waits at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..engine import Engine
from ..._phoenix.gateway import Gateway, LoadedDataset, PhoenixError
from .journal import post_evaluation, post_run
from ..._core.secrets import redact, redact_value
from ..._core.types import CaseResult

if TYPE_CHECKING:
    from .journal import Journal

MAX_UPLOADS_IN_FLIGHT = 8


class Sink(Protocol):
    """Where results go: experiments today, span annotations later."""

    async def project(self, dataset: LoadedDataset) -> str | None:
        """The Phoenix project of the dataset's experiment (where task traces go), if any."""
        try:
            return (await self._experiment(dataset)).project_name
        except Exception:  # reported by _experiment; the task then runs untraced
            return None

    def record(self, result: CaseResult, dataset: LoadedDataset) -> None: ...

    def drain(self, timeout: float) -> UploadReport: ...


@dataclass
class Experiment:
    id: str
    url: str
    dataset: LoadedDataset
    project_name: str | None = None


@dataclass
class UploadReport:
    experiments: list[Experiment] = field(default_factory=list)
    uploaded_runs: int = 0
    uploaded_annotations: int = 0
    failures: list[str] = field(default_factory=list)
    pending: int = 0
    # Cases kept in journal files (not all of them in Phoenix), by file.
    journaled: dict[str, int] = field(default_factory=dict)


class ExperimentRecorder:
    """Posts runs and annotations in the background; reports what it could not post."""

    def __init__(self, gateway: Gateway, engine: Engine, name: str,
                 metadata: Mapping[str, Any],
                 given: Mapping[str, Mapping[str, Any]] | None = None,
                 journal_dir: Path | None = None, journal_suffix: str = "",
                 repetitions: int = 1) -> None:
        self._gateway = gateway
        self._engine = engine
        self._name = name
        self._metadata = dict(metadata)
        self._experiments: dict[str, asyncio.Future[Experiment]] = {}
        # Experiments made elsewhere (by pytest-xdist's controller), by dataset id.
        self._given = dict(given or {})
        self._report = UploadReport()
        # Every upload's future, appended from pytest's thread only (never mutated elsewhere).
        self._uploads: list[concurrent.futures.Future[None]] = []
        self._client: Any = None
        self._http: Any = None
        self._slots: asyncio.Semaphore | None = None
        self._journal_dir = journal_dir
        self._repetitions = repetitions
        self._journal_suffix = journal_suffix
        self._journals: dict[str, Journal] = {}

    async def project(self, dataset: LoadedDataset) -> str | None:
        """The Phoenix project of the dataset's experiment (where task traces go), if any."""
        try:
            return (await self._experiment(dataset)).project_name
        except Exception:  # reported by _experiment; the task then runs untraced
            return None

    def record(self, result: CaseResult, dataset: LoadedDataset) -> None:
        future = self._engine.submit(self._upload(result, dataset))
        future.add_done_callback(lambda _: result.mark(uploaded=True))
        self._uploads.append(future)

    def url_for(self, dataset_id: str) -> str | None:
        """The dataset's experiment URL if the experiment exists by now (never waits)."""
        future = self._experiments.get(dataset_id)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result().url

    def waiting(self) -> int:
        """Uploads not finished yet."""
        return sum(not upload.done() for upload in self._uploads)

    def drain(self, timeout: float) -> UploadReport:
        if self._uploads:
            _, not_done = concurrent.futures.wait(self._uploads, timeout=timeout)
            self._report.pending = len(not_done)
        for journal in self._journals.values():
            left = journal.close()
            if left:
                self._report.journaled[str(journal.path)] = left
        if self._http is not None:
            try:
                self._engine.run(self._http.aclose(), timeout=5)
            except Exception:
                pass
        return self._report

    def create_now(self, dataset: LoadedDataset) -> dict[str, Any]:
        """Create the dataset's experiment from pytest's thread (for xdist's controller, which
        hands it to every worker); its id, url and project as plain data."""
        experiment = self._engine.run(self._experiment(dataset))
        return {"id": experiment.id, "url": experiment.url,
                "project_name": experiment.project_name}

    async def _experiment(self, dataset: LoadedDataset) -> Experiment:
        if dataset.id not in self._experiments:
            future: asyncio.Future[Experiment] = asyncio.get_running_loop().create_future()
            self._experiments[dataset.id] = future
            try:
                future.set_result(await self._create(dataset))
            except Exception as exc:
                future.set_exception(exc)
                self._report.failures.append(f"{dataset.name}: creating the experiment: {exc}")
        return await asyncio.shield(self._experiments[dataset.id])

    async def _create(self, dataset: LoadedDataset) -> Experiment:
        if self._client is None:
            self._client, self._http = self._gateway.async_client()
            self._slots = asyncio.Semaphore(MAX_UPLOADS_IN_FLIGHT)
        if dataset.id in self._given:
            given = self._given[dataset.id]
            return Experiment(id=given["id"], url=given["url"], dataset=dataset,
                              project_name=given.get("project_name"))
        metadata = redact_value({**self._metadata, "dataset_version_id": dataset.version_id})
        if dataset.splits:
            metadata["splits"] = list(dataset.splits)
        created = await self._gateway.acall(
            f"creating an experiment on dataset {dataset.name!r}",
            lambda: self._client.experiments.create(
                dataset_id=dataset.id, dataset_version_id=dataset.version_id,
                experiment_name=redact(self._name), experiment_metadata=metadata,
                splits=list(dataset.splits) or None, repetitions=self._repetitions))
        experiment = Experiment(id=created["id"], dataset=dataset,
                                url=self._gateway.experiment_url(dataset.id, created["id"]),
                                project_name=created.get("project_name"))
        self._report.experiments.append(experiment)
        return experiment

    def _journal(self, experiment: Experiment) -> Journal | None:
        if self._journal_dir is None:
            return None
        if experiment.id not in self._journals:
            from .journal import Journal
            from ..._local import safe_name

            safe = safe_name(experiment.id)
            self._journals[experiment.id] = Journal(
                self._journal_dir / f"{safe}{self._journal_suffix}.jsonl")
        return self._journals[experiment.id]

    async def _upload(self, result: CaseResult, dataset: LoadedDataset) -> None:
        case = result.case
        try:
            experiment = await self._experiment(dataset)
        except Exception:
            self._report.failures.append(f"{case.case_id}: not uploaded (no experiment)")
            return
        run, evaluations = self._payloads(result)
        key = f"{case.example.id}:{case.repetition}"
        journal = self._journal(experiment)
        if journal is not None:  # on disk before anything is posted
            journal.case(key, {"id": experiment.id, "url": experiment.url,
                               "dataset": dataset.name}, run, evaluations)
        assert self._slots is not None
        async with self._slots:
            try:
                run_id = await self._gateway.acall(
                    f"uploading the run of {case.case_id}",
                    lambda: post_run(self._http, experiment.id, run))
            except PhoenixError as exc:
                self._report.failures.append(f"{case.case_id}: run: {exc}")
                return
            self._report.uploaded_runs += 1
            outcomes = await asyncio.gather(
                *(self._post_evaluation(run_id, e, case.case_id) for e in evaluations))
            self._report.uploaded_annotations += sum(outcomes)
            if journal is not None and all(outcomes):
                journal.mark_done(key)

    def _payloads(self, result: CaseResult) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The run and evaluation bodies exactly as posted (and journaled), redacted; the
        same fields arize-phoenix-client's log_run and log_evaluation post."""
        case = result.case
        now = datetime.now(timezone.utc)
        start = result.start_time or now
        run: dict[str, Any] = {
            "dataset_example_id": case.example.id, "output": redact_value(result.output),
            "repetition_number": case.repetition, "start_time": start.isoformat(),
            "end_time": (result.end_time or start).isoformat()}
        if result.trace_id:
            run["trace_id"] = result.trace_id
        if result.error:
            run["error"] = result.error
        evaluations = []
        for score in result.scores:
            outcome = {k: v for k, v in (("score", score.score), ("label", score.label),
                                         ("explanation", score.explanation)) if v is not None}
            if not outcome and score.error is None:
                self._report.failures.append(f"{case.case_id}: {score.name}: no label, score, "
                                             f"explanation or error to upload")
                continue
            begin = score.start_time or start
            evaluations.append({
                "name": score.name, "annotator_kind": score.annotator_kind,
                "start_time": begin.isoformat(), "end_time": (score.end_time or begin).isoformat(),
                "result": outcome or None, "error": score.error,
                "metadata": dict(score.metadata or {}), "trace_id": score.trace_id})
        return run, evaluations

    async def _post_evaluation(self, run_id: str, evaluation: dict[str, Any],
                               case_id: str) -> bool:
        try:
            await self._gateway.acall(f"uploading annotation {evaluation['name']!r} of "
                                      f"{case_id}",
                                      lambda: post_evaluation(self._http, run_id, evaluation))
        except PhoenixError as exc:
            self._report.failures.append(f"{case_id}: {evaluation['name']}: {exc}")
            return False
        return True
