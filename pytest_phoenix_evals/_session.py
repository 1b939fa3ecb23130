"""The session: all state of one pytest run, built lazily so that an unused plugin costs nothing.

Registered with pytest's plugin manager by ``plugin.py`` and kept in ``config.stash``. Phoenix,
the engine and the recorder come to life only when a dataset is actually requested.
"""

from __future__ import annotations

import base64
import functools
import importlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._options import Settings

if TYPE_CHECKING:
    import concurrent.futures

    from ._run.engine import Engine
    from ._phoenix.gateway import Gateway, LoadedDataset
    from ._evaluators.llm.client import Judges
    from ._run.sinks.experiment import ExperimentRecorder, UploadReport
    from ._core.types import Case, CaseResult, Example

# workerinput / workeroutput keys: pytest-xdist's controller makes one experiment per dataset
# and hands it to every worker; each worker hands back its results for the summary.
XDIST_EXPERIMENTS = "phoenix_evals_experiments"
XDIST_RESULTS = "phoenix_evals_results"
# Where the traces of judges defined in code go (attached ones use their own project).
JUDGE_PROJECT = "pytest-phoenix-evals judges"


def plugin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-phoenix-evals")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _row_id(example_id: str) -> str:
    """``DatasetExample:17`` -> ``17``: the readable part of the example's GlobalID."""
    try:
        decoded = base64.b64decode(example_id, validate=True).decode()
    except Exception:
        return example_id
    return decoded.rsplit(":", 1)[-1] if ":" in decoded else example_id


def _first_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for item in value.values():
            if text := _first_text(item):
                return text
    if isinstance(value, list):
        for item in value:
            if text := _first_text(item):
                return text
    return ""


def _run_key(node_id: str | None, case: Case) -> str:
    return f"{node_id}#{case.repetition}"


def case_id(example: Example, repetition: int = 1) -> str:
    """A readable id, stable between runs: the example's row id and a slug of its input."""
    slug = re.sub(r"[^a-z0-9]+", "-", _first_text(example.input).lower()).strip("-")
    if len(slug) > 40:
        slug = slug[:40].rsplit("-", 1)[0] or slug[:40]
    name = f"ex{_row_id(example.id)}" + (f"-{slug}" if slug else "")
    return name + (f"-rep{repetition}" if repetition > 1 else "")


def git_info(cwd: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                 timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    info = {"git_commit": git("rev-parse", "HEAD"),
            "git_branch": git("rev-parse", "--abbrev-ref", "HEAD")}
    if info["git_commit"]:
        info["git_dirty"] = "true" if git("status", "--porcelain") else "false"
    return {key: value for key, value in info.items() if value}


_SECRET_ARG = re.compile(r"(?i)^(--?[\w-]*(key|token|secret|password|auth)[\w-]*=).*$")


def safe_command_line(args: Sequence[str]) -> str:
    """The pytest command line with secrets and URL credentials masked."""
    from ._phoenix.gateway import mask_url

    cleaned = []
    for arg in args:
        arg = _SECRET_ARG.sub(r"\1***", arg)
        cleaned.append(mask_url(arg) if "://" in arg else arg)
    return " ".join(["pytest", *cleaned])


class TaskError(pytest.UsageError):
    pass


def _as_evaluators(objs: Sequence[Any], source: str) -> list[Any]:
    """Evaluators from what a hook or marker supplied; UsageError naming ``source`` if not."""
    from ._evaluators.code import BindingError, as_evaluator

    try:
        return [as_evaluator(obj, source) for obj in objs]
    except BindingError as exc:
        raise pytest.UsageError(str(exc)) from None


class PhoenixEvalsSession:
    """State of one pytest run; every public method is what one hook needs."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.results: list[CaseResult] = []
        self.upload_report: UploadReport | None = None
        self._gateway: Gateway | None = None
        self._engine: Engine | None = None
        self._recorders: dict[str, ExperimentRecorder] = {}
        self._datasets: dict[str, LoadedDataset] = {}
        self._datasets_by_id: dict[str, LoadedDataset] = {}
        self._evaluators: dict[str, list[Any]] = {}
        self._tasks: dict[str, Callable[..., Any]] = {}
        self._judges: Judges | None = None
        self._tracing: Any = None
        self.notices: list[str] = []
        self.gate_results: list[Any] | None = None
        # --phoenix-baseline: per dataset id, the baseline experiment and its runs
        self._baselines: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self.baseline_lines: list[str] = []
        self._examples_found: set[str] = set()
        # --phoenix-results rows, kept only when that file was asked for.
        self.rows: list[dict[str, Any]] = []
        self.written: list[str] = []  # files the session wrote (results, markdown)
        # Every evaluator handed out, by identity: those holding connections are closed at the end.
        self._handed_out: dict[int, Any] = {}
        # Cases started ahead of their pytest item (--phoenix-concurrency), by item node id.
        self._ahead: dict[str, tuple[Case, concurrent.futures.Future[CaseResult], str]] = {}
        self._closed = False
        self._worker_parts: list[dict[str, Any]] = []
        self._shared: dict[str, dict[str, Any]] | None = None

    # --- lazily built parts ---------------------------------------------------------------

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            from ._phoenix.gateway import Gateway, resolve_url

            if self.settings.offline:
                self._gateway = self._offline_gateway()
            else:
                url, source = resolve_url(self.settings.url, self.settings.url_source)
                self._gateway = Gateway(url, source)
        return self._gateway

    def _offline_gateway(self) -> Gateway:
        from ._phoenix.gateway import OfflineGateway
        from ._phoenix.snapshot import load

        tape: dict[str, Any] = {}
        taken = []
        for spec in self.settings.datasets:
            name, _, rest = spec.partition("@")
            name = name.split(":", 1)[0]
            version = rest.split(":", 1)[0] or self.settings.dataset_version
            try:
                snapshot = load(self.config.rootpath, name, version)
            except ValueError as exc:
                raise pytest.UsageError(f"--phoenix-offline: {exc}") from None
            tape.update(snapshot["tape"])
            taken.append(f"{name} version {snapshot['version_id']} saved {snapshot['saved_at']}")
        return OfflineGateway(tape, f"the local snapshot ({'; '.join(taken) or 'none'})")

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ._run.engine import Engine

            # A case's task and its sync evaluators may each hold a thread.
            self._engine = Engine(threads=2 * self.settings.concurrency + 4)
        return self._engine

    @property
    def judges(self) -> Judges:
        """The judge clients of this session (one per provider endpoint, on the engine loop)."""
        if self._judges is None:
            from ._evaluators.llm.client import Judges

            self._judges = Judges(self.settings.judge)
            if self.settings.cache:
                from ._evaluators.llm.cache import JudgeCache, cache_path

                self._judges.cache = JudgeCache(cache_path(self.config.rootpath))
        return self._judges

    @property
    def tracing(self) -> Any:
        """Traces sent to Phoenix; None with --phoenix-no-upload (then nothing is traced)."""
        if self.settings.no_upload:
            return None
        if self._tracing is None:
            from ._phoenix.gateway import _headers
            from ._tracing.export import Tracing

            self._tracing = Tracing(self.gateway.url, _headers())
        return self._tracing

    def _equip(self, evaluator: Any) -> Any:
        """Give an evaluator what it needs from the session (judge clients, tracing)."""
        self._handed_out.setdefault(id(evaluator), evaluator)
        if hasattr(evaluator, "judges") and evaluator.judges is None:
            evaluator.judges = self.judges
            if hasattr(evaluator, "load"):  # a judge whose prompt comes from the server
                evaluator.load(self.gateway)
            if self.tracing is not None and evaluator.tracing is None:
                from ._tracing.export import JudgeTrace

                project = evaluator.project_name or JUDGE_PROJECT
                evaluator.tracing = JudgeTrace(self.tracing, project)
        return evaluator

    def recorder(self, experiment_key: str) -> ExperimentRecorder | None:
        """One recorder (and so one experiment per dataset) per way of running a dataset."""
        if self.settings.no_upload:
            return None
        if experiment_key not in self._recorders:
            from ._run.sinks.experiment import ExperimentRecorder

            name = self.settings.experiment_name or self._default_experiment_name()
            if experiment_key != "task":
                name = f"{name} {experiment_key.rsplit('::', 1)[-1]}"
            metadata = {
                **self._git,
                "command_line": safe_command_line(self.config.invocation_params.args),
                "plugin": "pytest-phoenix-evals",
                "plugin_version": plugin_version(),
                "pytest_version": pytest.__version__,
                "runner": experiment_key if experiment_key != "task" else
                (self.settings.task or "pytest_phoenix_evals_task hook"),
            }
            from ._run.sinks.journal import journal_dir

            given = None
            workerinput = getattr(self.config, "workerinput", None) or {}
            if experiment_key == "task":
                given = workerinput.get(XDIST_EXPERIMENTS)
            worker = workerinput.get("workerid")
            self._recorders[experiment_key] = ExperimentRecorder(
                self.gateway, self.engine, name, metadata, given,
                journal_dir=journal_dir(self.config.rootpath),
                journal_suffix=f"-{worker}" if worker else "",
                repetitions=self.settings.repetitions)
        return self._recorders[experiment_key]

    @functools.cached_property
    def _git(self) -> dict[str, str]:
        return git_info(self.config.rootpath)

    def _default_experiment_name(self) -> str:
        info = self._git
        if "git_commit" in info:
            return f"pytest {info.get('git_branch', 'HEAD')}@{info['git_commit'][:8]}"
        return "pytest"

    # --- datasets, tasks, evaluators ------------------------------------------------------

    def _dataset_spec(self, text: str) -> tuple[str, str | None, tuple[str, ...]]:
        """``NAME@VERSION:SPLIT`` (each part optional) as (name, version, splits), merged with
        --phoenix-dataset-version and --phoenix-split. A dataset whose whole name contains
        ``@`` or ``:`` is still found by that name."""
        version, splits = self.settings.dataset_version, self.settings.splits
        if ("@" in text or ":" in text) and text not in self.gateway.dataset_names():
            match = re.fullmatch(r"(?P<name>[^@:]+)(?:@(?P<version>[^:]+))?(?::(?P<split>.+))?",
                                 text)
            if match is not None:
                version = match["version"] or version
                if match["split"] and match["split"] not in splits:
                    splits = (*splits, match["split"])
                return match["name"], version, splits
        return text, version, splits

    def dataset(self, name: str, version_id: str | None = None,
                splits: Sequence[str] | None = None) -> LoadedDataset:
        """Load (once) a dataset at the requested version and splits (by default those of
        the command line); PhoenixError if not."""
        if name not in self._datasets:
            from ._phoenix.gateway import AttachedEvaluators

            attached = AttachedEvaluators(
                self.gateway, prompt_tag=self.settings.prompt_tag, notices=self.notices,
                evaluate_on=self.settings.evaluate_on,
                allow_code=self.settings.allow_code_evaluators,
                code_timeout=self.settings.code_timeout)
            real_name, version, chosen = self._dataset_spec(name)
            loaded = self.gateway.load_dataset(
                real_name, version_id or version, chosen if splits is None else splits,
                attached, split_membership=any(g.scope == "split" for g in self.settings.gates))
            self._datasets[name] = self._datasets_by_id[loaded.id] = loaded
        return self._datasets[name]

    def loaded(self, dataset_id: str) -> LoadedDataset:
        """A dataset already loaded, by its id."""
        return self._datasets_by_id[dataset_id]

    def preload(self) -> None:
        """Load the command line's datasets before collection, so errors come first."""
        if not self.settings.datasets:
            return
        from ._phoenix.gateway import PhoenixError

        loaded = []
        for name in self.settings.datasets:
            try:
                dataset = self.dataset(name)
            except PhoenixError as exc:
                raise pytest.UsageError(str(exc)) from None
            loaded.append(dataset)
            if not dataset.examples:
                where = f" in split(s) {', '.join(dataset.splits)}" if dataset.splits else ""
                self._say(f"phoenix-evals: dataset {dataset.name!r} has no examples at version "
                          f"{dataset.version_id}{where}: there is nothing to run")
            if self.task(dataset.name) is not None:
                self.evaluators(dataset)
        if self.settings.examples:
            for dataset in loaded:
                self.cases(dataset)
            self._check_examples(loaded)
        if not self.settings.offline:
            self._save_snapshots(loaded)
        if self.settings.baseline:
            for dataset in loaded:
                self.load_baseline(dataset)

    def _save_snapshots(self, loaded: Sequence[LoadedDataset]) -> None:
        """The answers that built these datasets and evaluators, for --phoenix-offline (a
        snapshot that cannot be written costs a notice, never the run)."""
        from ._phoenix.snapshot import save

        for dataset in loaded:
            try:
                save(self.config.rootpath, dataset.name, dataset.version_id, self.gateway.tape)
            except OSError as exc:
                self.notices.append(f"could not save the local snapshot of {dataset.name}: "
                                    f"{exc}")
    def forget_datasets(self) -> None:
        """Drop the datasets loaded so far (to load one again at another version)."""
        self._datasets.clear()
        self._datasets_by_id.clear()

    def load_baseline(self, dataset: LoadedDataset, exclude: Sequence[str] = ()) -> None:
        """Find the baseline experiment (never one in ``exclude``) and read its runs before
        any case runs (it is in Phoenix already, and the gateway is closed by the time the
        session ends)."""
        from ._core.baseline import experiment_runs, resolve
        from ._phoenix.gateway import PhoenixError

        assert self.settings.baseline is not None
        try:
            found = resolve(self.gateway, self.settings.baseline, dataset, exclude)
            runs = experiment_runs(self.gateway, found["id"])
        except PhoenixError as exc:
            raise pytest.UsageError(f"--phoenix-baseline: {exc}") from None
        self._baselines[dataset.id] = (found, runs)

    def compare_with_baselines(self) -> bool | None:
        """The baseline comparison of each dataset, for the summary; False when an annotation
        regressed more than --phoenix-max-regression, None without a baseline."""
        if not self._baselines:
            return None
        from ._core.baseline import compare, comparison_lines, results_of, rules_of

        ok = True
        for dataset_id, (found, runs) in self._baselines.items():
            dataset = self.loaded(dataset_id)
            current = [r for r in self.results if r.case.example.dataset_id == dataset_id]
            rules = rules_of(self._evaluators.get(dataset.name, dataset.evaluators))
            before = results_of(runs, dataset, rules, self.settings.thresholds)
            changes = compare(current, before, self.settings.max_regression)
            ok = ok and not any(c.failed for c in changes)
            link = self.gateway.experiment_url(dataset.id, found["id"])
            report = self.upload_report
            mine = next((e for e in report.experiments if e.dataset.id == dataset_id), None) \
                if report else None
            if mine is not None:
                link += f"&experimentId={mine.id}"
            self.baseline_lines += ["", *comparison_lines(
                changes, dataset.name, found, link, self.settings.max_regression)]
        return ok

    def task(self, dataset: str) -> Callable[..., Any] | None:
        """The task for a dataset: --phoenix-task, else the pytest_phoenix_evals_task hook."""
        if dataset not in self._tasks:
            found = self._find_task(dataset)
            if found is None:
                return None
            self._tasks[dataset] = found
        return self._tasks[dataset]

    def _find_task(self, dataset: str) -> Callable[..., Any] | None:
        if self.settings.task:
            return self._import_task(self.settings.task)
        found = self.config.hook.pytest_phoenix_evals_task(config=self.config, dataset=dataset)
        if found is None:
            return None
        if not callable(found):
            raise TaskError(f"pytest_phoenix_evals_task returned {found!r} for dataset "
                            f"{dataset!r}, which is not callable")
        self._check_task(found, "the task from pytest_phoenix_evals_task")
        return found  # type: ignore[no-any-return]

    def _import_task(self, spec: str) -> Callable[..., Any]:
        module_name, _, attribute = spec.partition(":")
        for path in (str(self.config.rootpath), str(Path.cwd())):
            if path not in sys.path:
                sys.path.insert(0, path)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TaskError(f"--phoenix-task {spec!r}: cannot import module {module_name!r}: "
                            f"{exc}") from None
        except Exception as exc:
            where = ""
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
            raise TaskError(f"--phoenix-task {spec!r}: importing {module_name!r} raised "
                            f"{type(exc).__name__}: {exc}{where}") from None
        task = getattr(module, attribute, None)
        if task is None:
            names = sorted(n for n, v in vars(module).items()
                           if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
            raise TaskError(f"--phoenix-task {spec!r}: module {module_name!r} has no "
                            f"attribute {attribute!r}; its functions: "
                            f"{', '.join(names) or 'none'}")
        if not callable(task):
            raise TaskError(f"--phoenix-task {spec!r}: {attribute!r} is a "
                            f"{type(task).__name__}, not a callable")
        self._check_task(task, f"--phoenix-task {spec!r}")
        return task  # type: ignore[no-any-return]

    @staticmethod
    def _check_task(task: Callable[..., Any], source: str) -> None:
        from ._evaluators.code import TASK_PARAMETERS, BindingError, check_signature

        try:
            check_signature(task, TASK_PARAMETERS, "task")
        except BindingError as exc:
            raise TaskError(f"{source}: {exc}") from None

    def evaluators(self, dataset: LoadedDataset, extra: Sequence[Any] = ()) -> list[Any]:
        """The dataset's attached evaluators, the hook's and ``extra`` (from a marker)."""
        if dataset.name not in self._evaluators:
            answers = self.config.hook.pytest_phoenix_evals_evaluators(
                config=self.config, dataset=dataset.name)
            found = [obj for answer in answers for obj in answer or ()]
            self._evaluators[dataset.name] = [
                *dataset.evaluators, *_as_evaluators(found, "pytest_phoenix_evals_evaluators")]
        chosen = [*self._evaluators[dataset.name],
                  *_as_evaluators(extra, "the phoenix_evals marker")]
        return [self._equip(evaluator) for evaluator in chosen]

    def cases(self, dataset: LoadedDataset) -> list[Case]:
        """The dataset's cases, narrowed by --phoenix-examples and --phoenix-limit."""
        from ._core.types import Case

        cases = [Case(example=example, case_id=case_id(example))
                 for example in dataset.examples]
        if self.settings.examples:
            cases = self._chosen(dataset, cases)
        if self.settings.limit is not None and len(cases) > self.settings.limit:
            if self.settings.sample_seed is None:
                cases = cases[:self.settings.limit]
            else:
                import random

                # The same seed picks the same examples whatever order the server lists them.
                chosen = random.Random(self.settings.sample_seed).sample(
                    sorted(cases, key=lambda c: c.example.id), self.settings.limit)
                keep = {c.example.id for c in chosen}
                cases = [c for c in cases if c.example.id in keep]
        return cases

    def _chosen(self, dataset: LoadedDataset, cases: list[Case]) -> list[Case]:
        """The cases --phoenix-examples names (by example id or case id), in dataset order."""
        wanted = set(self.settings.examples)
        chosen = []
        for case in cases:
            hits = wanted & {case.example.id, case.case_id, case.case_id.split("-", 1)[0]}
            if hits:
                self._examples_found |= hits
                chosen.append(case)
        return chosen

    def _check_examples(self, datasets: Sequence[LoadedDataset]) -> None:
        """Every --phoenix-examples id names an example of some dataset of the run."""
        missing = set(self.settings.examples) - self._examples_found
        if missing:
            known = [case_id(e).split("-", 1)[0] for d in datasets for e in d.examples[:10]]
            raise pytest.UsageError(
                f"--phoenix-examples: no example {', '.join(sorted(missing))} in dataset(s) "
                f"{', '.join(d.name for d in datasets)}; examples include "
                f"{', '.join(known) or 'none'} (or give example ids)")

    # --- running --------------------------------------------------------------------------

    async def _run_case(self, case: Case, task: Callable[..., Any], evaluators: Sequence[Any],
                        recorder: ExperimentRecorder | None, tracing: Any) -> CaseResult:
        """One case on the engine's loop: its task (traced when uploading), then evaluators.
        The recorder and tracing are made beforehand, in pytest's thread."""
        from ._run.engine import run_case

        tracer = None
        if recorder is not None and tracing is not None:
            project = await recorder.project(self.loaded(case.example.dataset_id))
            tracer = tracing.tracer(project) if project else None
        return await run_case(case, task, evaluators, self.settings.thresholds, tracer,
                              self.settings.task_timeout)

    def run_ahead(self, jobs: Sequence[tuple[str, Case, Callable[..., Any], Sequence[Any]]],
                  experiment_key: str) -> None:
        """Start cases before pytest reaches their items, at most --phoenix-concurrency at once,
        in item order; :meth:`run_case` then only waits for its case."""
        if not jobs:
            return
        import asyncio

        recorder, tracing = self.recorder(experiment_key), self.tracing
        if recorder is not None:
            self._announce(recorder, {case.example.dataset_id for _, case, _, _ in jobs})
        slots: list[asyncio.Semaphore] = []

        async def one(case: Case, task: Callable[..., Any], evaluators: Sequence[Any]
                      ) -> CaseResult:
            if not slots:  # made on the loop; asyncio wakes waiters first come, first served
                slots.append(asyncio.Semaphore(self.settings.concurrency))
            async with slots[0]:
                return await self._run_case(case, task, evaluators, recorder, tracing)

        for node_id, case, task, evaluators in jobs:
            for run in self.repetitions_of(case):
                self._ahead[_run_key(node_id, run)] = (
                    run, self.engine.submit(one(run, task, evaluators)), experiment_key)

    def _announce(self, recorder: ExperimentRecorder, dataset_ids: Iterable[str]) -> None:
        """Create each dataset's experiment now and print its URL, before any case runs (a
        failure to create it is reported with the uploads)."""
        for dataset_id in sorted(dataset_ids):
            dataset = self.loaded(dataset_id)
            try:
                url = recorder.create_now(dataset)["url"]
            except Exception:
                continue
            self._say(f"phoenix-evals: experiment for {dataset.name}: {url}")

    def repetitions_of(self, case: Case) -> list[Case]:
        """The runs of a case: one per --phoenix-repetitions, numbered as the server numbers
        them (1..N)."""
        from dataclasses import replace

        n = self.settings.repetitions
        return [case] if n == 1 else [
            replace(case, case_id=case_id(case.example, r), repetition=r) for r in range(1, n + 1)]

    def run_repeated(self, case: Case, task: Callable[..., Any], evaluators: Sequence[Any],
                     experiment_key: str, node_id: str | None = None) -> list[CaseResult]:
        """Every run of the case (each recorded as it comes)."""
        return [self.run_case(run, task, evaluators, experiment_key,
                              _run_key(node_id, run) if node_id is not None else None)
                for run in self.repetitions_of(case)]

    def run_case(self, case: Case, task: Callable[..., Any], evaluators: Sequence[Any],
                 experiment_key: str, node_id: str | None = None) -> CaseResult:
        """The case's result (waiting for it if it was started ahead), recorded."""
        ahead = self._ahead.pop(node_id, None) if node_id is not None else None
        if ahead is not None:
            result = ahead[1].result()
        else:
            result = self.engine.run(self._run_case(case, task, evaluators,
                                                    self.recorder(experiment_key), self.tracing))
        self.finish(result, experiment_key)
        return result

    def stop_ahead(self) -> None:
        """pytest stopped early (-x, --maxfail, Ctrl-C): cancel the cases not yet done, and
        record those that finished although their items never ran (nothing done is lost)."""
        ahead, self._ahead = self._ahead, {}
        for _, future, _ in ahead.values():
            future.cancel()
        for case, future, key in ahead.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                result = future.result()
                result.mark(reported=True)  # it never will be: nothing waits for its output
                self.finish(result, key)

    def evaluate_output(self, case: Case, output: Any, evaluators: Sequence[Any],
                        experiment_key: str, start: Any) -> CaseResult:
        from datetime import datetime, timezone

        from ._run.engine import OutputNotSerialisable, as_json, evaluate
        from ._core.types import CaseResult

        result = CaseResult(case=case, start_time=start, end_time=datetime.now(timezone.utc))
        try:
            result.output = as_json(output)
        except OutputNotSerialisable as exc:
            result.error = str(exc)
        result = self.engine.run(evaluate(result, evaluators, self.settings.thresholds))
        self.finish(result, experiment_key)
        return result

    def record_error(self, case: Case, error: str, experiment_key: str, start: Any) -> None:
        """A test of the second style failed before it handed its output over."""
        from datetime import datetime, timezone

        from ._core.types import CaseResult

        end = datetime.now(timezone.utc)
        result = CaseResult(case=case, error=error, start_time=start or end, end_time=end)
        self.finish(result, experiment_key)

    def experiment_url(self, result: CaseResult, experiment_key: str) -> str | None:
        recorder = self._recorders.get(experiment_key)
        return recorder.url_for(result.case.example.dataset_id) if recorder else None

    def finish(self, result: CaseResult, experiment_key: str) -> None:
        self.results.append(result)
        if self.settings.results and not (self.settings.only_failures and result.passed):
            from ._report.outputs import result_rows

            self.rows += result_rows(result, self.experiment_url(result, experiment_key))
        self.config.hook.pytest_phoenix_evals_case_result(config=self.config, result=result)
        recorder = self.recorder(experiment_key)
        if recorder is not None:
            recorder.record(result, self.loaded(result.case.example.dataset_id))
        else:
            result.mark(uploaded=True)

    # --- pytest-xdist ---------------------------------------------------------------------

    def experiments_for_workers(self) -> dict[str, dict[str, Any]]:
        """On xdist's controller: one experiment per --phoenix-dataset, made once, for every
        worker to upload into (so that -n 4 gives one experiment, not four)."""
        recorder = self.recorder("task")
        if recorder is None or not self.settings.datasets:
            return {}
        if self._shared is None:
            self._shared = {}
            for name in self.settings.datasets:
                try:
                    dataset = self.dataset(name)
                    self._shared[dataset.id] = recorder.create_now(dataset)
                    self._say(f"phoenix-evals: experiment for {dataset.name}: "
                              f"{self._shared[dataset.id]['url']}")
                except Exception as exc:  # the workers then make their own, and say why
                    self.notices.append(f"could not make one experiment for all xdist workers "
                                        f"on dataset {name!r}: {exc}")
        return self._shared

    def results_for_controller(self) -> list[dict[str, Any]]:
        from ._wire import dump_result

        report = self.upload_report
        return [{"results": [dump_result(r) for r in self.results],
                 "uploaded_runs": report.uploaded_runs if report else 0,
                 "uploaded_annotations": report.uploaded_annotations if report else 0,
                 "failures": list(report.failures) if report else [],
                 "pending": report.pending if report else 0,
                 "journaled": dict(report.journaled) if report else {},
                 "rows": self.rows}]

    def absorb(self, parts: list[dict[str, Any]]) -> None:
        """On xdist's controller: a worker's results and upload report, for the summary."""
        from ._wire import load_result

        self._worker_parts.extend(parts)
        for part in parts:
            self.results.extend(load_result(r) for r in part["results"])
            self.rows.extend(part.get("rows") or ())

    # --- end of session -------------------------------------------------------------------

    def close(self) -> None:
        """Wait for uploads, then stop the engine; a second call does nothing."""
        if self.upload_report is not None or self._closed:
            return
        self._closed = True
        if self._engine is None and self._gateway is None:
            return  # the plugin was not used: import nothing on the way out
        from ._run.sinks.experiment import UploadReport

        report = UploadReport()
        waiting = sum(recorder.waiting() for recorder in self._recorders.values())
        deadline = time.monotonic() + self.settings.upload_timeout
        if waiting:
            self._say(f"phoenix-evals: waiting for {waiting} upload(s) to finish (at most "
                      f"{self.settings.upload_timeout:g} s, --phoenix-upload-timeout) ...")
        for recorder in self._recorders.values():
            part = recorder.drain(max(0.0, deadline - time.monotonic()))
            report.experiments += part.experiments
            report.uploaded_runs += part.uploaded_runs
            report.uploaded_annotations += part.uploaded_annotations
            report.failures += part.failures
            report.pending += part.pending
            report.journaled.update(part.journaled)
        self.upload_report = report
        if self.settings.set_baseline:
            self._set_baselines(report)
        if self._tracing is not None:
            self._tracing.shutdown(timeout_seconds=10)
        if self._judges is not None and self._judges.cache is not None:
            self._judges.cache.close()
        if self._engine is not None:
            closers = [self._judges.aclose()] if self._judges is not None else []
            if self._gateway is not None:
                closers.append(self._gateway.aclose())
            closers += [e.aclose() for e in self._handed_out.values() if hasattr(e, "aclose")]
            for closer in closers:
                try:
                    self._engine.run(closer, timeout=10)
                except Exception:  # closing idle connections must not fail the session
                    pass
            self._engine.close()
        if self._gateway is not None:
            self._gateway.close()

    def _set_baselines(self, report: UploadReport) -> None:
        """--phoenix-set-baseline: only a complete run becomes the baseline."""
        parts = self._worker_parts
        if report.failures or report.pending or report.journaled or any(
                p["failures"] or p["pending"] or p.get("journaled") for p in parts):
            self.notices.append("not made the baseline: some results did not reach Phoenix")
            return
        from ._core.baseline import set_baseline
        from ._phoenix.gateway import PhoenixError

        for experiment in report.experiments:
            try:
                set_baseline(self.gateway, experiment.id)
                self.notices.append(f"{experiment.dataset.name}: this run is now the dataset's "
                                    f"baseline experiment")
            except PhoenixError as exc:
                self.notices.append(f"{experiment.dataset.name}: could not make this run the "
                                    f"baseline: {exc}")

    def _say(self, line: str) -> None:
        """A progress line on the terminal (nothing under -q -q or without a terminal)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.get_verbosity() > -2:
            reporter.write_line(line)

    def apply_gates(self, expected: Sequence[Case]) -> bool | None:
        """Decide the --phoenix-fail-under gates on every selected case (``expected``) and
        what they did; None without gates."""
        if not self.settings.gates:
            return None
        from ._core.gates import evaluate_gates

        # The collected examples (with their splits), not the results' copies: an xdist
        # worker's results carry only ids.
        self.gate_results = evaluate_gates(
            self.settings.gates, [(case.example, case.repetition) for case in expected],
            self.results)
        return all(r.passed for r in self.gate_results)

    def write_outputs(self, exitstatus: int) -> None:
        """The files asked for: --phoenix-results and the markdown summary. A file that
        cannot be written is said in the summary; it never hides the run's outcome."""
        if self.settings.results:
            from ._report.outputs import write_results

            try:
                count = write_results(self.settings.results, self.rows)
                self.written.append(f"results: {self.settings.results} ({count} rows)")
            except Exception as exc:
                self.written.append(f"could not write results to {self.settings.results}: "
                                    f"{type(exc).__name__}: {exc}")
        import os

        if (self.settings.summary_md or os.environ.get("GITHUB_STEP_SUMMARY")) and (
                self.results or self.gate_results):
            from ._report.outputs import markdown_summary, write_markdown

            report = self.upload_report
            experiments = [(e.dataset.name, e.url) for e in report.experiments] if report \
                else []
            failed = sum(not r.passed for r in self.results)
            outcome = (f"**{'PASSED' if exitstatus == 0 else 'FAILED'}**: "
                       f"{len(self.results)} cases, {failed} failed")
            if self.gate_results is not None:
                bad = sum(not g.passed for g in self.gate_results)
                outcome += (f"; gates: {bad} of {len(self.gate_results)} failed" if bad
                            else f"; gates: all {len(self.gate_results)} passed")
            text = markdown_summary(self.results, self._summary_lines(), experiments,
                                    self.gate_results, outcome)
            try:
                self.written += [f"markdown summary: {w}"
                                 for w in write_markdown(text, self.settings.summary_md)]
            except OSError as exc:
                self.written.append(f"could not write the markdown summary: {exc}")

    def summary(self) -> list[str]:
        gates: list[str] = []
        if self.gate_results is not None:
            from ._core.gates import gate_lines

            gates = ["", *gate_lines(self.gate_results)]
        if not self.results:
            return gates[1:] + self.written
        return (self._summary_lines() + self._repetition_lines() + self.baseline_lines + gates
                + self.written)

    def _repetition_lines(self) -> list[str]:
        """With repetitions: how stable the cases were, and which ones were flaky."""
        if self.settings.repetitions == 1:
            return []
        from ._core.repeat import Repeated

        runs: dict[tuple[str, str], list[CaseResult]] = {}
        for result in self.results:
            key = (result.case.example.dataset_id, result.case.example.id)
            runs.setdefault(key, []).append(result)
        cases = [Repeated(sorted(r, key=lambda x: x.case.repetition), self.settings.pass_rule)
                 for r in runs.values()]
        counts = {s: sum(c.stability == s for c in cases)
                  for s in ("stable-pass", "flaky", "stable-fail")}
        lines = ["", f"repetitions: {self.settings.repetitions} runs per case, pass rule "
                     f"{self.settings.pass_rule}: {len(cases)} cases, "
                     + ", ".join(f"{n} {s}" for s, n in counts.items())]
        flaky = [c for c in cases if c.stability == "flaky"]
        lines += [f"  flaky: {c.case_id} ({c.passes}/{len(c.results)} runs passed; "
                  f"{'passes' if c.passed else 'fails'} the rule)" for c in flaky[:30]]
        return lines

    def _summary_lines(self) -> list[str]:
        from ._report.summary import summary_lines

        report = self.upload_report
        experiments = [(e.dataset.name, e.url) for e in report.experiments] if report else []
        failures = [*(report.failures if report else []),
                    *(f for part in self._worker_parts for f in part["failures"])]
        pending = (report.pending if report else 0) + sum(p["pending"]
                                                          for p in self._worker_parts)
        journaled = dict(report.journaled) if report else {}
        for part in self._worker_parts:
            journaled.update(part.get("journaled") or {})
        return summary_lines(self.results, experiments, failures, pending,
                             self.settings.no_upload, notes=self.notices, journaled=journaled)
