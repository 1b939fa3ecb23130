"""The gateway's reads of datasets and experiments: a dataset at a version with its attached
evaluators and splits, the dataset's experiments (by id, by name, by what a spec such as
``previous`` or ``main`` names), baselines, and an experiment's runs with their annotations.

Creating experiments and uploading their runs and evaluations is :mod:`.experiments`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from .._core.types import Example
from .base import GatewayBase, closest
from .http import PhoenixError, raise_for_retryable
from .wire import example, experiment_run

__all__ = ["MAIN_BRANCHES", "DatasetCalls", "LoadedDataset"]

#: Experiments whose ``git_branch`` metadata names one of these are baselines for "main".
MAIN_BRANCHES = ("main", "master")

_DATASET_QUERY = """
query($id: ID!) { node(id: $id) { ... on Dataset {
  splits { name }
  datasetEvaluators(first: 100) { edges { node {
    id name
    inputMapping { pathMapping literalMapping }
    outputConfigs { __typename
      ... on CategoricalAnnotationConfig { name optimizationDirection values { label score } }
      ... on ContinuousAnnotationConfig { name optimizationDirection lowerBound upperBound }
      ... on FreeformAnnotationConfig { name optimizationDirection threshold lowerBound
                                        upperBound } }
    project { name }
    evaluator { __typename id name kind
      ... on BuiltInEvaluator { inputSchema }
      ... on LLMEvaluator { prompt { id name } promptVersionTag { name } promptVersion { id } }
      ... on CodeEvaluator { inputSchema sourceCode language sandboxConfig { id } } } } } } } } }
"""
_RUNS_QUERY = """
query($id: ID!, $after: String) { node(id: $id) { ... on Experiment {
  runs(first: 200, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { repetitionNumber error example { id }
      annotations { edges { node { name label score explanation error annotatorKind } } }
    } }
  } } } }
"""
_COSTS_QUERY = """
query($id: ID!, $after: String) { node(id: $id) { ... on Experiment {
  runs(first: 200, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { traceId trace { id } costSummary { total { cost tokens } } } }
  } } } }
"""
_BASELINE_QUERY = """
query($id: ID!) { node(id: $id) { ... on Dataset { baselineExperiment { id name } } } }
"""
_SET_BASELINE = """
mutation($id: ID!) { setExperimentBaseline(experimentId: $id, baseline: true) {
  __typename } }
"""


@dataclass
class LoadedDataset:
    """A dataset at one version, with its examples and attached evaluators."""

    id: str
    name: str
    version_id: str
    splits: tuple[str, ...]
    examples: list[Example]
    # The attached evaluators as the server stores them (GraphQL ``DatasetEvaluator`` nodes);
    # the evaluators package turns them into evaluators (``AttachedEvaluators.for_dataset``).
    evaluator_nodes: list[dict[str, Any]] = field(default_factory=list)


class DatasetCalls(GatewayBase):
    """Datasets, experiments by id or name, baselines, runs (reads, at collection time)."""

    # --- datasets -------------------------------------------------------------------------

    def dataset_names(self) -> dict[str, str]:
        """Every dataset's name -> id."""
        return {d["name"]: d["id"] for d in self.pages("v1/datasets", "listing datasets")}

    def load_dataset(
        self, name: str, version_id: str | None = None, splits: Sequence[str] = (),
        split_membership: bool = False,
    ) -> LoadedDataset:
        """The dataset's examples (at ``version_id``, in ``splits``) and its attached evaluator
        nodes. With ``split_membership`` each example learns its splits: the REST listing does
        not say them, so every split of the dataset is listed once more."""
        names = self.dataset_names()
        dataset_id = names.get(name) or (name if name in names.values() else None)
        if dataset_id is None:
            raise PhoenixError(f"dataset {name!r} not found in {self.where()}."
                               + closest("datasets", name, list(names)))
        name = next(n for n, i in names.items() if i == dataset_id)
        data = self._graphql(_DATASET_QUERY, {"id": dataset_id},
                             f"reading the evaluators of dataset {name!r}")
        node = data.get("node") or {}
        known_splits = [s["name"] for s in node.get("splits") or ()]
        for split in splits:
            if split not in known_splits:
                raise PhoenixError(f"split {split!r} not found in dataset {name!r}."
                                   + closest("splits", split, known_splits))
        params: dict[str, Any] = {}
        if version_id:
            params["version_id"] = version_id
        if splits:
            params["split"] = list(splits)
        path = f"v1/datasets/{quote(dataset_id)}/examples"
        response = self._get(path, params, f"loading the examples of dataset {name!r}")
        if version_id and response.status_code in (404, 422):
            raise PhoenixError(f"version {version_id!r} not found for dataset {name!r}."
                               + self._versions_hint(dataset_id))
        self._raise_for_status(response, f"loading the examples of dataset {name!r}")
        body = self._json(response, f"loading the examples of dataset {name!r}", "data")["data"]
        membership: dict[str, list[str]] = {}
        for split in known_splits if split_membership else ():
            listed = self._get(path, {"version_id": body["version_id"], "split": split},
                               f"listing split {split!r} of dataset {name!r}")
            self._raise_for_status(listed, f"listing split {split!r} of dataset {name!r}")
            listing = self._json(listed, f"listing split {split!r} of dataset {name!r}", "data")
            for e in listing["data"]["examples"]:
                membership.setdefault(e["id"], []).append(split)
        examples = [example(e, dataset_name=name, dataset_id=dataset_id,
                            version_id=body["version_id"], splits=membership.get(e["id"], ()))
                    for e in body["examples"]]
        nodes = [edge["node"] for edge in (node.get("datasetEvaluators") or {}).get("edges", ())]
        return LoadedDataset(id=dataset_id, name=name, version_id=body["version_id"],
                             splits=tuple(splits), examples=examples, evaluator_nodes=nodes)

    def _versions_hint(self, dataset_id: str) -> str:
        response = self._get(f"v1/datasets/{quote(dataset_id)}/versions", {"limit": 10},
                             "listing dataset versions")
        if response.status_code != 200:
            return ""
        versions = self._json(response, "listing dataset versions", "data")["data"]
        lines = [f"  {v['version_id']}  {v.get('created_at', '')}  {v.get('description') or ''}"
                 for v in versions]
        return " Newest versions:\n" + "\n".join(lines) if lines else ""

    # --- experiments and baselines --------------------------------------------------------

    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        """An experiment by id (REST), or None when the server has none of that id."""
        doing = f"reading experiment {experiment_id!r}"
        response = self._get(f"v1/experiments/{quote(experiment_id)}", None, doing)
        if response.status_code in (404, 422):
            return None
        self._raise_for_status(response, doing)
        return dict(self._json(response, doing, "data")["data"])

    def add_experiment_metadata(self, experiment_id: str, extra: Mapping[str, Any]) -> None:
        """Add keys to an experiment's metadata: ``PATCH /v1/experiments/{id}``, which replaces
        the metadata whole, so what is there is read first."""
        found = self.experiment(experiment_id)
        if found is None:
            raise PhoenixError(f"experiment {experiment_id!r} not found in {self.where()}")
        doing = f"updating the metadata of experiment {experiment_id}"
        metadata = {**(found.get("metadata") or {}), **extra}

        def patch() -> httpx.Response:
            return raise_for_retryable(self._http.patch(
                f"v1/experiments/{quote(experiment_id)}", json={"metadata": metadata},
                extensions=self._extensions(doing)))

        self._raise_for_status(self.call(doing, patch), doing)

    def dataset_experiments(self, dataset_id: str) -> list[dict[str, Any]]:
        """Every experiment of the dataset (REST JSON, page by page: the server gives 50 a
        page unless asked), newest first."""
        experiments = self.pages(f"v1/datasets/{dataset_id}/experiments",
                                 "listing the dataset's experiments", limit=1000)
        return sorted(experiments, key=lambda e: e.get("created_at") or "", reverse=True)

    def baseline_experiment(self, dataset_id: str, dataset_name: str) -> dict[str, Any] | None:
        """The dataset's baseline experiment as {id, name}; None when it has none."""
        data = self._graphql(_BASELINE_QUERY, {"id": dataset_id},
                             f"reading the baseline of dataset {dataset_name!r}")
        found = (data.get("node") or {}).get("baselineExperiment")
        return {"id": found["id"], "name": found.get("name")} if found else None

    def find_experiment(self, spec: str, dataset_id: str, dataset_name: str,
                        exclude: Sequence[str] = ()) -> dict[str, Any]:
        """The experiment ``spec`` names on a dataset, as {id, name}: ``dataset`` (its
        baseline), ``previous`` (the newest), ``main`` (the newest of a main branch), else an
        experiment id or name; ``prompt-version:ID`` (the newest whose metadata says its task
        was that prompt version); never one in ``exclude``. PhoenixError saying what exists."""
        if spec == "dataset":
            found = self.baseline_experiment(dataset_id, dataset_name)
            if found is None:
                raise PhoenixError(f"dataset {dataset_name!r} has no baseline experiment; set "
                                   f"one in Phoenix or with --phoenix-set-baseline")
            return found
        experiments = [e for e in self.dataset_experiments(dataset_id)
                       if e["id"] not in exclude]
        if spec == "previous":
            chosen = experiments[0] if experiments else None
        elif spec == "main":
            chosen = next((e for e in experiments if (e.get("metadata") or {}).get("git_branch")
                           in MAIN_BRANCHES), None)
        elif spec.startswith("prompt-version:"):
            version = spec.removeprefix("prompt-version:")
            chosen = next((e for e in experiments if ((e.get("metadata") or {}).get("task")
                                                       or {}).get("prompt_version_id") == version),
                          None)
        else:
            chosen = next((e for e in experiments if spec in (e["id"], e.get("name"))), None)
        if chosen is None and spec.startswith("prompt-version:"):
            raise PhoenixError(f"no experiment on dataset {dataset_name!r} ran prompt version "
                               f"{spec.removeprefix('prompt-version:')}")
        if chosen is None:
            names = ", ".join(f"{e.get('name')} ({e['id']})" for e in experiments[:5])
            raise PhoenixError(f"no experiment {spec!r} on dataset {dataset_name!r}"
                               + (f"; the latest: {names}" if names else "; it has none"))
        return {"id": chosen["id"], "name": chosen.get("name")}

    def set_baseline(self, experiment_id: str) -> None:
        """Make the experiment its dataset's baseline."""
        self._graphql(_SET_BASELINE, {"id": experiment_id}, "setting the dataset's baseline",
                      read=False)

    def run_costs(self, experiment_id: str) -> list[dict[str, Any]]:
        """What Phoenix computed for each run's trace (GraphQL ``ExperimentRun.costSummary``:
        the summed cost of the trace's priced spans): {trace_id, traced (Phoenix has stored
        the trace), cost (USD), tokens}. Not kept on the tape: it changes as spans arrive."""
        runs: list[dict[str, Any]] = []
        after = None
        while True:
            data = self._graphql(_COSTS_QUERY, {"id": experiment_id, "after": after},
                                 f"reading the cost of the runs of experiment {experiment_id}",
                                 read=False)
            node = data.get("node")
            if not node:
                raise PhoenixError(f"experiment {experiment_id!r} not found in {self.where()}")
            page = node["runs"]
            for edge in page["edges"]:
                run = edge["node"]
                total = (run.get("costSummary") or {}).get("total") or {}
                runs.append({"trace_id": run.get("traceId"), "traced": bool(run.get("trace")),
                             "cost": total.get("cost"), "tokens": total.get("tokens")})
            if not page["pageInfo"]["hasNextPage"]:
                return runs
            after = page["pageInfo"]["endCursor"]

    def experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every run of an experiment with its annotations (GraphQL, page by page), as
        {example_id, repetition, error, annotations}."""
        runs: list[dict[str, Any]] = []
        after = None
        while True:
            data = self._graphql(_RUNS_QUERY, {"id": experiment_id, "after": after},
                                 f"reading the runs of experiment {experiment_id}")
            node = data.get("node")
            if not node:
                raise PhoenixError(f"experiment {experiment_id!r} not found in {self.where()}")
            page = node["runs"]
            runs.extend(experiment_run(edge["node"]) for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                return runs
            after = page["pageInfo"]["endCursor"]
