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
from typing import Any, Protocol

from ._engine import Engine
from ._gateway import Gateway, LoadedDataset, PhoenixError
from ._secrets import redact, redact_value
from ._types import CaseResult, Score

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


class ExperimentRecorder:
    """Posts runs and annotations in the background; reports what it could not post."""

    def __init__(self, gateway: Gateway, engine: Engine, name: str,
                 metadata: Mapping[str, Any],
                 given: Mapping[str, Mapping[str, Any]] | None = None) -> None:
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
                splits=list(dataset.splits) or None, repetitions=1))
        experiment = Experiment(id=created["id"], dataset=dataset,
                                url=self._gateway.experiment_url(dataset.id, created["id"]),
                                project_name=created.get("project_name"))
        self._report.experiments.append(experiment)
        return experiment

    async def _upload(self, result: CaseResult, dataset: LoadedDataset) -> None:
        case = result.case
        try:
            experiment = await self._experiment(dataset)
        except Exception:
            self._report.failures.append(f"{case.case_id}: not uploaded (no experiment)")
            return
        assert self._slots is not None
        async with self._slots:
            try:
                run = await self._gateway.acall(
                    f"uploading the run of {case.case_id}",
                    lambda: self._client.experiments.log_run(
                        experiment_id=experiment.id, dataset_example_id=case.example.id,
                        output=redact_value(result.output), start_time=result.start_time,
                        end_time=result.end_time, repetition_number=case.repetition,
                        trace_id=result.trace_id, error=result.error))
            except PhoenixError as exc:
                self._report.failures.append(f"{case.case_id}: run: {exc}")
                return
            self._report.uploaded_runs += 1
            outcomes = await asyncio.gather(
                *(self._upload_score(run["id"], score, case.case_id) for score in result.scores))
            self._report.uploaded_annotations += sum(outcomes)

    async def _upload_score(self, run_id: str, score: Score, case_id: str) -> bool:
        if score.error is None and score.label is None and score.score is None and \
                score.explanation is None:
            self._report.failures.append(f"{case_id}: {score.name}: no label, score, "
                                         f"explanation or error to upload")
            return False
        try:
            await self._gateway.acall(
                f"uploading annotation {score.name!r} of {case_id}",
                lambda: self._client.experiments.log_evaluation(
                    experiment_run_id=run_id, name=score.name,
                    annotator_kind=score.annotator_kind, start_time=score.start_time,
                    end_time=score.end_time, score=score.score, label=score.label,
                    explanation=score.explanation, error=score.error,
                    metadata=score.metadata or None, trace_id=score.trace_id))
        except PhoenixError as exc:
            self._report.failures.append(f"{case_id}: {score.name}: {exc}")
            return False
        return True
