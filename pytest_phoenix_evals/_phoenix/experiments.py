"""The gateway's writes of experiments, on the engine's loop: creating an experiment (made
idempotent by a creation token, looked up by that token), deleting one, and uploading runs and
their evaluations (one post each, as the server takes them; a re-posted run Phoenix already
has is recognised by its 409).

The reads of datasets and experiments are :mod:`.datasets`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from .base import GatewayBase
from .http import Observe, PhoenixError, json_body, not_the_api, raise_for_retryable

__all__ = ["CREATION_TOKEN", "EXISTING_RUN", "ExperimentCalls", "send_evaluation", "send_run"]

#: The metadata key of the token that makes experiment creation idempotent: one per
#: :meth:`Gateway.acreate_experiment` call, looked for after a failed attempt.
CREATION_TOKEN = "pytest_phoenix_evals_creation"

#: Phoenix's 409 for a run that already exists without an error (``experiment_runs.py``).
EXISTING_RUN = re.compile(r"Experiment run (\S+) already exists")


class ExperimentCalls(GatewayBase):
    """Experiments made and deleted, runs and evaluations uploaded (``a*``: the engine's
    loop)."""

    async def acreate_experiment(
        self, dataset_id: str, dataset_version_id: str, *, dataset_name: str,
        experiment_name: str, metadata: Mapping[str, Any], description: str | None = None,
        splits: Sequence[str] = (),
        repetitions: int = 1, token: str | None = None, look_first: bool | None = None,
    ) -> dict[str, Any]:
        """Create an experiment (the request arize-phoenix-client's ``experiments.create``
        posts); the server's record of it (``id``, ``project_name``, ...).

        Idempotent under the retry policy: the experiment's metadata carries a token of this
        call (:data:`CREATION_TOKEN`), and after a failed attempt (a 5xx or a dropped
        connection, possibly after the server made it) the dataset's newest experiments are
        looked up for one carrying the token before trying again, and once more when every
        attempt failed. So a flaky server never leaves empty experiments of the same name.

        ``token`` (default: a new one) is for a caller that kept it (a journal) and calls again
        after a crash: the experiment already made with it is then looked up first, and used
        (``look_first``: by default, when a token is given).
        """
        doing = f"creating an experiment on dataset {dataset_name!r}"
        look_first = token is not None if look_first is None else look_first
        token = token or uuid.uuid4().hex
        payload: dict[str, Any] = {"repetitions": repetitions,
                                   "metadata": {**metadata, CREATION_TOKEN: token}}
        if experiment_name.strip():
            payload["name"] = experiment_name.strip()
        if description and description.strip():
            payload["description"] = description.strip()
        if dataset_version_id.strip():
            payload["version_id"] = dataset_version_id.strip()
        if splits:
            payload["splits"] = list(splits)
        http = self._async()
        path = f"v1/datasets/{quote(dataset_id)}/experiments"
        attempts = 0

        async def attempt() -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            if (attempts > 1 or look_first) and (
                    made := await self._acreated(dataset_id, token, doing)):
                return made
            response = await http.post(path, json=payload, extensions=self._extensions(doing))
            response.raise_for_status()
            created = self._json(response, doing, "data")["data"]
            if not isinstance(created, dict) or "id" not in created:
                raise not_the_api(response, doing, self.where())
            return dict(created)

        try:
            return await self.acall(doing, attempt)
        except PhoenixError:
            try:  # the last attempt may have been made by the server all the same
                made = await self._acreated(dataset_id, token, doing)
            except (httpx.TransportError, httpx.HTTPStatusError, PhoenixError):
                made = None
            if made is None:
                raise
            return made

    async def aoldest_with_token(self, dataset_id: str, token: str) -> dict[str, Any] | None:
        """The first experiment the dataset got with creation ``token`` (several shards of a
        run may each have made one at once), or None."""
        doing = "looking for the run's experiment"

        async def look() -> dict[str, Any] | None:
            found = [e async for e in self._awith_token(dataset_id, token, doing, strict=True)]
            return min(found, key=lambda e: (e.get("created_at") or "", _row_id(e["id"])),
                       default=None)

        return await self.acall(doing, look)

    async def _awith_token(self, dataset_id: str, token: str, doing: str, *, strict: bool
                           ) -> AsyncIterator[dict[str, Any]]:
        """The dataset's experiments made with creation ``token``, newest first, page by page.
        A listing the server refuses (a 4xx) raises with ``strict``, else ends the iteration;
        httpx errors worth a retry are raised for the retry policy."""
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = raise_for_retryable(await self._async().get(
                f"v1/datasets/{quote(dataset_id)}/experiments", params=params,
                extensions=self._extensions(doing)))
            if response.status_code != 200:
                if strict:
                    response.raise_for_status()
                return
            body = self._json(response, doing, "data")
            for experiment in body["data"] or ():
                if (experiment.get("metadata") or {}).get(CREATION_TOKEN) == token:
                    yield dict(experiment)
            cursor = body.get("next_cursor")
            if not cursor:
                return

    async def adelete_experiment(self, experiment_id: str) -> None:
        doing = f"deleting experiment {experiment_id}"
        http = self._async()

        async def delete() -> None:
            response = raise_for_retryable(await http.delete(
                f"v1/experiments/{quote(experiment_id)}", extensions=self._extensions(doing)))
            if response.status_code != 404:  # gone already: as good
                response.raise_for_status()

        await self.acall(doing, delete)

    async def _acreated(self, dataset_id: str, token: str, doing: str) -> dict[str, Any] | None:
        """The dataset's experiment made with creation ``token``, if the server has it (newest
        first, page by page: a journal's may be old); None also when the server cannot list
        them (a 4xx). Raises httpx errors worth a retry, for the retry policy."""
        async for experiment in self._awith_token(
                dataset_id, token, f"{doing} (looking for one already made)", strict=False):
            return experiment
        return None

    async def apost_run(self, experiment_id: str, run: Mapping[str, Any], *,
                        doing: str | None = None, observe: Observe | None = None) -> str:
        """Post a run (the body arize-phoenix-client's log_run posts); its id, also when
        Phoenix already had it. ``observe`` is told of every attempt's answer."""
        http = self._async()
        doing = doing or f"uploading a run of experiment {experiment_id}"
        return await self.acall(doing, lambda: send_run(http, experiment_id, run,
                                                        where=self.where(), doing=doing),
                                observe=observe)

    async def apost_evaluation(self, run_id: str, evaluation: Mapping[str, Any], *,
                               doing: str | None = None, observe: Observe | None = None) -> None:
        """Post one evaluation of a run (Phoenix upserts by run and name); ``observe`` as for
        :meth:`apost_run`."""
        http = self._async()
        doing = doing or f"uploading annotation {evaluation.get('name')!r}"
        await self.acall(doing, lambda: send_evaluation(http, run_id, evaluation,
                                                        where=self.where(), doing=doing),
                         observe=observe)


async def send_run(http: httpx.AsyncClient, experiment_id: str, run: Mapping[str, Any], *,
                   where: str = "Phoenix", doing: str = "uploading a run") -> str:
    """One post of a run, no retry; its id, also when Phoenix already had it (a retried post
    that had gone through, or a journaled case uploaded before the session died: Phoenix
    answers 409 naming it). A run Phoenix already had is this run only when its times and
    output are this run's: another session's run of the same example is never adopted
    (PhoenixError with status 409). Raises httpx errors, and PhoenixError (naming ``where``)
    for an answer that is not the Phoenix API's."""
    response = await http.post(f"v1/experiments/{quote(experiment_id)}/runs", json=dict(run))
    if response.status_code == 409 and (found := EXISTING_RUN.search(response.text)):
        existing = await _read_run(http, experiment_id, found.group(1), where, doing)
        if existing is not None and not _same_run(existing, run):
            raise PhoenixError(
                f"example {run.get('dataset_example_id')} (repetition "
                f"{run.get('repetition_number', 1)}) already has another run in experiment "
                f"{experiment_id} ({found.group(1)}, started {existing.get('start_time')}, not "
                f"{run.get('start_time')}): another session recorded it; this result was not "
                f"uploaded", status=409)
        return found.group(1)
    response.raise_for_status()
    body = json_body(response, doing, where, "data")
    if not isinstance(body["data"], dict) or "id" not in body["data"]:
        raise not_the_api(response, doing, where)
    return str(body["data"]["id"])


async def _read_run(http: httpx.AsyncClient, experiment_id: str, run_id: str, where: str,
                    doing: str) -> dict[str, Any] | None:
    """One run of an experiment (None if the server does not show it). The run list pages
    by run id, newest first, from the cursor: a cursor at the run with a limit of one gives
    exactly that run."""
    response = await http.get(f"v1/experiments/{quote(experiment_id)}/runs",
                              params={"cursor": run_id, "limit": 1})
    if response.status_code != 200:
        return None
    runs = json_body(response, f"{doing} (reading the run Phoenix had)", where, "data")["data"]
    return dict(runs[0]) if runs and runs[0].get("id") == run_id else None


def _same_run(existing: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
    """The run Phoenix has is ``run``: the same start and end times and the same output."""
    def moment(value: Any) -> Any:
        try:
            found = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return value
        return found if found.tzinfo else found.replace(tzinfo=UTC)  # stored as UTC

    def canonical(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    return all(moment(existing.get(k)) == moment(run.get(k)) for k in ("start_time", "end_time")) \
        and canonical(existing.get("output")) == canonical(run.get("output"))


async def send_evaluation(http: httpx.AsyncClient, run_id: str,
                          evaluation: Mapping[str, Any], *, where: str = "Phoenix",
                          doing: str = "uploading an annotation") -> None:
    """One post of an evaluation of a run, no retry. Raises httpx errors, and PhoenixError
    (naming ``where``) for an answer that is not the Phoenix API's (a 200 login page must not
    pass for an upload)."""
    response = await http.post("v1/experiment_evaluations",
                               json={**evaluation, "experiment_run_id": run_id})
    response.raise_for_status()
    json_body(response, doing, where, "data")


def _row_id(global_id: str) -> int:
    """The row id in a GraphQL global id ("Experiment:12", base64): creation order."""
    import base64

    try:
        return int(base64.b64decode(global_id).decode().rsplit(":", 1)[-1])
    except (ValueError, UnicodeDecodeError):
        return 0

