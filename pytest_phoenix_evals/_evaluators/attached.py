"""The evaluators attached to a dataset in Phoenix, built from the nodes the gateway reads.

Each attached evaluator runs where the command line says: built-ins and LLM judges here by
default (``--phoenix-evaluate-on=server`` sends them to the server's ``evaluatorPreviews``),
Python code evaluators here only with ``--phoenix-allow-code-evaluators`` (else on the
server). A kind this version does not know reports every case as not run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._core.naming import annotation_names
from .._core.types import NOT_RUN, Example, OutputConfig, Score
from .._phoenix.http import PhoenixError
from .._phoenix.wire import (
    builtin_preview,
    code_preview,
    input_mapping,
    llm_preview,
    output_config,
)

if TYPE_CHECKING:
    from .._phoenix.gateway import Gateway, LoadedDataset
    from .protocol import Evaluator


@dataclass
class UnsupportedEvaluator:
    """An attached evaluator this version cannot run locally: every case reports it as not run."""

    name: str
    kind: str
    output_configs: Sequence[OutputConfig]
    reason: str

    async def evaluate(self, context: dict[str, Any], example: Example) -> list[Score]:
        return [Score(name=name, evaluator=self.name, error=self.reason, config=config)
                for name, config in zip(annotation_names(self.output_configs),
                                        self.output_configs)]


@dataclass
class AttachedEvaluators:
    """How to build the evaluator that runs each attached evaluator, where it should run.

    ``notices`` collects what the user should read in the summary (a prompt tag not found).
    """

    gateway: Gateway
    prompt_tag: str | None = None
    notices: list[str] = field(default_factory=list)
    evaluate_on: str = "local"
    allow_code: bool = False
    code_timeout: float = 10.0

    def for_dataset(self, dataset: LoadedDataset) -> list[Evaluator]:
        """The evaluators of every node the gateway read for ``dataset``."""
        return [self.build(node, dataset.name) for node in dataset.evaluator_nodes]

    def build(self, node: dict[str, Any], dataset: str) -> Evaluator:
        from .builtins import BuiltinEvaluator
        from .server import ServerEvaluator, batcher_for

        configs = [output_config(c) for c in node["outputConfigs"]]
        evaluator = node["evaluator"]
        typename = evaluator["__typename"]
        name = node["name"]
        path_mapping, literal_mapping = input_mapping(node)
        project = (node.get("project") or {}).get("name")
        on_server = self.evaluate_on == "server"

        def server(preview: dict[str, Any], kind: str, **extra: Any) -> ServerEvaluator:
            return ServerEvaluator(name=name, kind=kind, output_configs=configs, preview=preview,
                                   path_mapping=path_mapping, literal_mapping=literal_mapping,
                                   batcher=batcher_for(self.gateway), **extra)

        if typename == "BuiltInEvaluator":
            if on_server:
                return server(builtin_preview(evaluator["id"]), "BUILTIN")
            return BuiltinEvaluator(
                name=name, builtin=evaluator["name"],
                input_schema=evaluator.get("inputSchema") or {}, output_configs=configs,
                path_mapping=path_mapping, literal_mapping=literal_mapping, project_name=project)
        if typename == "LLMEvaluator":
            from .llm.judge import LLMJudge, PromptSpec

            prompt_name = (evaluator.get("prompt") or {}).get("name") or ""
            data, problem = self._prompt(name, evaluator, dataset)
            if data is not None and on_server:
                return server(llm_preview(name, data, configs), "LLM")
            prompt = None
            if data is not None:
                try:
                    prompt = PromptSpec.from_phoenix(prompt_name, data)
                except ValueError as exc:  # a string template cannot back a judge
                    problem = str(exc)
            return LLMJudge(name=name, prompt=prompt, output_configs=configs,
                            path_mapping=path_mapping, literal_mapping=literal_mapping,
                            project_name=project, problem=problem)
        if typename == "CodeEvaluator":
            source = evaluator.get("sourceCode") or ""
            language = evaluator.get("language") or "PYTHON"
            if self.allow_code and not on_server and language == "PYTHON":
                from .sandbox import LocalCode

                return LocalCode(name=name, source=source, output_configs=configs,
                                 path_mapping=path_mapping, literal_mapping=literal_mapping,
                                 timeout=self.code_timeout)
            sandbox = (evaluator.get("sandboxConfig") or {}).get("id")
            how = "" if on_server else (
                " (run it locally with --phoenix-allow-code-evaluators)"
                if language == "PYTHON" else "")
            return server(code_preview(name, source, language, configs, sandbox), "CODE",
                          refused=f"the Phoenix server could not run code evaluator "
                                  f"{name!r}{how}")
        return UnsupportedEvaluator(
            name=name, kind=evaluator.get("kind") or typename, output_configs=configs,
            reason=f"{NOT_RUN}{typename} evaluators are not known to this version of "
                   f"pytest-phoenix-evals")

    def _prompt(self, name: str, evaluator: dict[str, Any], dataset: str
                ) -> tuple[dict[str, Any] | None, str | None]:
        """The prompt version (REST JSON) an attached LLM evaluator runs, or why there is none.

        Without --phoenix-prompt-tag it is the version the server's runner would use
        (``LLMEvaluator.promptVersion``: its pinned tag's, else the latest).
        """
        prompt_name = (evaluator.get("prompt") or {}).get("name") or ""
        version_id = (evaluator.get("promptVersion") or {}).get("id")
        data = None
        try:
            if self.prompt_tag:
                data = self.gateway.prompt_version(prompt_name, tag=self.prompt_tag)
                if data is None:
                    self.notices.append(
                        f"LLM evaluator {name!r} (dataset {dataset!r}): prompt {prompt_name!r} "
                        f"has no version tagged {self.prompt_tag!r}; it runs the version the "
                        f"server would run")
            if data is None and version_id:
                data = self.gateway.prompt_version(prompt_name, version_id=version_id)
            if data is None:
                return None, f"prompt {prompt_name!r} of LLM evaluator {name!r} has no version"
            return data, None
        except PhoenixError as exc:
            return None, f"cannot load the prompt of LLM evaluator {name!r}: {exc}"


def version_dependent_paths(evaluators: Sequence[Evaluator],
                            known: Callable[[str], str] | None = None) -> list[str]:
    """A line for each path of an attached evaluator run here that the server may read
    differently: Phoenix's Docker image runs jsonpath-ng 1.8.0, a pip-installed Phoenix the
    newest release, and this process whichever it has (see ``mapping.version_dependent``).
    ``known`` takes out of a path what the task's output shape makes certain (an index into a
    list it always holds reads alike on both versions)."""
    from importlib.metadata import version

    from .mapping import version_dependent
    from .server import ServerEvaluator

    lines = []
    for evaluator in evaluators:
        if isinstance(evaluator, ServerEvaluator):  # the server reads its own paths
            continue
        for key, path in (getattr(evaluator, "path_mapping", None) or {}).items():
            what = version_dependent(known(str(path)) if known else str(path))
            if what:
                lines.append(
                    f"evaluator {evaluator.name!r}: path {path!r} (input {key!r}) uses {what}, "
                    f"which jsonpath-ng 1.8.0 (Phoenix's Docker image) and the latest releases "
                    f"(a pip-installed Phoenix) read differently; it is evaluated here with "
                    f"jsonpath-ng {version('jsonpath-ng')}. To get the server's own reading, "
                    f"run with --phoenix-evaluate-on=server")
    return lines
