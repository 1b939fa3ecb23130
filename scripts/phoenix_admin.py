"""Set up datasets in a Phoenix server: for the example's seed script and the tests.

The plugin itself only reads datasets; creating them and attaching evaluators is what this
helper is for. It speaks the server's REST and GraphQL APIs with httpx.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx


class PhoenixAdmin:
    def __init__(self, url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=60)
        self._builtins: dict[str, dict[str, Any]] | None = None

    def close(self) -> None:
        self.http.close()

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return dict(body["data"])

    def dataset_id(self, name: str) -> str | None:
        response = self.http.get("/v1/datasets", params={"name": name})
        response.raise_for_status()
        found = [d["id"] for d in response.json()["data"] if d["name"] == name]
        return found[0] if found else None

    def create_dataset(
        self,
        name: str,
        examples: Sequence[dict[str, Any]],
        splits: Sequence[Sequence[str] | None] | None = None,
    ) -> str:
        """Create ``name`` from examples of the form {input, output, metadata}; its id."""
        payload: dict[str, Any] = {
            "action": "create",
            "name": name,
            "inputs": [e["input"] for e in examples],
            "outputs": [e.get("output", {}) for e in examples],
            "metadata": [e.get("metadata", {}) for e in examples],
        }
        if splits is not None:
            payload["splits"] = [list(s) if s else None for s in splits]
        response = self.http.post("/v1/datasets/upload", params={"sync": "true"}, json=payload)
        response.raise_for_status()
        return str(response.json()["data"]["dataset_id"])

    def builtin_ids(self) -> dict[str, dict[str, Any]]:
        if self._builtins is None:
            data = self.graphql("{ builtInEvaluators { id name inputSchema } }")
            self._builtins = {e["name"]: e for e in data["builtInEvaluators"]}
        return self._builtins

    def attach_builtin(
        self,
        dataset_id: str,
        builtin: str,
        name: str,
        path_mapping: dict[str, str] | None = None,
        literal_mapping: dict[str, Any] | None = None,
        output_configs: list[dict[str, Any]] | None = None,
    ) -> str:
        """Attach a built-in evaluator to a dataset; returns the dataset evaluator's id."""
        variables: dict[str, Any] = {
            "datasetId": dataset_id,
            "evaluatorId": self.builtin_ids()[builtin]["id"],
            "name": name,
            "inputMapping": {"pathMapping": path_mapping or {},
                             "literalMapping": literal_mapping or {}},
        }
        if output_configs is not None:
            variables["outputConfigs"] = output_configs
        data = self.graphql(
            "mutation($input: CreateDatasetBuiltinEvaluatorInput!) {"
            " createDatasetBuiltinEvaluator(input: $input) { evaluator { id } } }",
            input=variables,
        )
        return str(data["createDatasetBuiltinEvaluator"]["evaluator"]["id"])

    def preview_builtins(self, previews: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run built-ins on the server: each preview is {builtin, context, path, literal}."""
        items = [{
            "evaluator": {"builtInEvaluatorId": self.builtin_ids()[p["builtin"]]["id"]},
            "context": p["context"],
            "inputMapping": {"pathMapping": p.get("path", {}),
                             "literalMapping": p.get("literal", {})},
        } for p in previews]
        data = self.graphql(
            "mutation($input: EvaluatorPreviewsInput!) { evaluatorPreviews(input: $input) {"
            " results { evaluatorName error annotation { name label score explanation } } } }",
            input={"previews": items},
        )
        return list(data["evaluatorPreviews"]["results"])

    def experiments(self, dataset_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/v1/datasets/{dataset_id}/experiments")
        response.raise_for_status()
        return list(response.json()["data"])

    def runs(self, experiment_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/v1/experiments/{experiment_id}/runs")
        response.raise_for_status()
        return list(response.json()["data"])

    def annotations(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every annotation of an experiment's runs (GraphQL: the REST API has no listing)."""
        data = self.graphql(
            "query($id: ID!) { node(id: $id) { ... on Experiment { runs(first: 1000) {"
            " edges { run: node { id exampleId: example { id } annotations { edges {"
            " annotation: node { name label score explanation error annotatorKind"
            " metadata } } } } } } } } }",
            id=experiment_id,
        )
        found = []
        for edge in data["node"]["runs"]["edges"]:
            run = edge["run"]
            for a in run["annotations"]["edges"]:
                found.append({**a["annotation"], "run_id": run["id"],
                              "example_id": run["exampleId"]["id"]})
        return found
