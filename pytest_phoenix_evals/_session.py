"""The session: the composition root of one pytest run, and the only object that holds ``config``.

Built in ``pytest_configure`` only when a dataset is requested (by an option or a marker),
registered with pytest's plugin manager and kept in ``config.stash``. It builds the parts lazily
(so that an unused plugin costs nothing): the gateway to Phoenix, the engine, the dataset source,
the experiment sink and the runner, and it answers what the hooks ask. The running itself is in
the pytest-free ``_run`` package; every line of the summary is built in ``_report``.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._settings import Settings, is_prompt_task

if TYPE_CHECKING:
    from ._benchmark import Benchmark
    from ._core.gates import GateResult
    from ._core.types import Case, CaseResult, Group
    from ._evaluators.llm.client import Judges
    from ._evaluators.protocol import Evaluator
    from ._phoenix.gateway import Gateway
    from ._phoenix.traces import Traces
    from ._prompt import PromptUnderTest
    from ._report.summary import Summary
    from ._run.baselines import Baselines
    from ._run.engine import Engine
    from ._run.runner import Job, Runner
    from ._run.sinks.base import Sink, UploadReport
    from ._run.sources.dataset import DatasetSource
    from ._run.sources.spans import SpanSource

# Where the traces of judges defined in code go (attached ones use their own project).
JUDGE_PROJECT = "pytest-phoenix-evals judges"


def plugin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-phoenix-evals")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class PhoenixEvalsSession:
    """State of one pytest run; every public method is what one hook needs."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.notices: list[str] = []
        self.upload_report: UploadReport | None = None
        self.gate_results: list[GateResult] | None = None
        self.baseline_lines: list[str] = []
        # --phoenix-results rows, kept only when that file was asked for.
        self.rows: list[dict[str, Any]] = []
        self.written: list[str] = []  # files the session wrote (results, markdown)
        # Results regated from Phoenix (--phoenix-regate) or handed back by xdist workers.
        self._other_results: list[CaseResult] = []
        self._worker_reports: list[UploadReport] = []
        self._worker_observer_errors: list[list[str]] = []
        self._gateway: Gateway | None = None
        self._engine: Engine | None = None
        self._judges: Judges | None = None
        self._tracing: Any = None
        self._source: DatasetSource | None = None
        self._spans: SpanSource | None = None
        self._benchmark: Benchmark | None = None
        self._prompt: PromptUnderTest | None = None
        # Groups run in part (-k, --lf, --phoenix-examples, ...): what the experiment says.
        self._partial: dict[str, dict[str, Any]] = {}
        self.promotion_failed = False
        self._traces: Traces | None = None
        self._sink: Sink | None = None
        self._runner: Runner | None = None
        self._tasks: dict[str, Callable[..., Any] | None] = {}
        self._baselines: Baselines | None = None  # --phoenix-baseline
        # Every evaluator handed out, by identity: those holding connections are closed at the end.
        self._handed_out: dict[int, Evaluator] = {}
        self._checked: set[str] = set()  # groups whose annotation names were checked
        self._shared: dict[str, dict[str, Any]] | None = None
        #: On xdist's controller: the folder where the workers leave their trace spans, sent
        #: from here once every worker has finished.
        self.handed_over_spans: Path | None = None
        self._closed = False

    # --- lazily built parts ---------------------------------------------------------------

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            from ._phoenix.gateway import Gateway
            from ._phoenix.http import resolve_url

            if self.settings.offline:
                self._gateway = self._offline_gateway()
            else:
                url, source = resolve_url(self.settings.url, self.settings.url_source)
                self._gateway = Gateway(url, source, primed=self._primed())
        return self._gateway

    @property
    def _workerinput(self) -> dict[str, Any]:
        """What xdist's controller handed this worker ({} outside a worker)."""
        return getattr(self.config, "workerinput", None) or {}

    def _primed(self) -> dict[str, Any] | None:
        """On an xdist worker: what the controller read from Phoenix (see Gateway)."""
        from ._xdist import TAPE

        path = self._workerinput.get(TAPE)
        if not path:
            return None
        try:
            return dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None  # then the worker asks the server itself

    def tape_for_workers(self, directory: str) -> str | None:
        """On xdist's controller, once it has loaded the datasets: its gateway's tape in a
        file of the shared folder, for the workers (None when offline or nothing was read)."""
        if self.settings.offline or self._gateway is None or not self._gateway.tape:
            return None
        path = Path(directory, "tape.json")
        if not path.exists():
            part = path.with_suffix(".part")
            part.write_text(json.dumps(self._gateway.tape), encoding="utf-8")
            part.replace(path)
        return str(path)

    def _offline_gateway(self) -> Gateway:
        from ._local import local_path, safe_name
        from ._phoenix.offline import load, offline_gateway
        from ._run.sources.dataset import parse_spec

        tape: dict[str, Any] = {}
        taken = []
        for spec in self.settings.datasets:
            # A dataset whose whole name holds "@" or ":" is known by its snapshot's folder.
            known = [spec] if local_path(self.config.rootpath, "snapshots",
                                         safe_name(spec)).is_dir() else []
            name, version, _ = parse_spec(spec, self._selection(), known.copy)
            try:
                snapshot = load(self.config.rootpath, name, version)
                tape.update(snapshot["tape"])
                taken.append(f"{name} version {snapshot['version_id']} saved "
                             f"{snapshot['saved_at']}")
            except ValueError as exc:
                raise pytest.UsageError(f"--phoenix-offline: {exc}") from None
            except (KeyError, TypeError, AttributeError):
                raise pytest.UsageError(
                    f"--phoenix-offline: the local snapshot of dataset {name!r} is not one this "
                    f"plugin wrote (its fields are missing): delete "
                    f"{local_path(self.config.rootpath, 'snapshots', safe_name(name))} and run "
                    f"once without --phoenix-offline") from None
        return offline_gateway(tape, f"the local snapshot ({'; '.join(taken) or 'none'})")

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
            from ._xdist import judges_share, workers_of

            workers = workers_of(self.config)
            self._judges = Judges(judges_share(self.settings.judge, workers), workers=workers)
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
            from ._phoenix.http import headers
            from ._tracing.export import Tracing
            from ._xdist import SHARED_DIR, SPANS_DIR

            shared = self._workerinput.get(SHARED_DIR)
            self._tracing = Tracing(self.gateway.url, headers(),
                                    hand_over=Path(shared, SPANS_DIR) if shared else None)
        return self._tracing

    def _selection(self) -> Any:
        from ._run.sources.dataset import Selection

        s = self.settings
        return Selection(version=s.dataset_version, splits=s.splits, examples=s.examples,
                         limit=s.limit, sample_seed=s.sample_seed,
                         split_membership=any(g.scope == "split" for g in s.gates))

    @property
    def source(self) -> DatasetSource:
        """The command line's datasets (and the markers' datasets, as they are asked for)."""
        if self._source is None:
            from ._evaluators.attached import AttachedEvaluators
            from ._run.sources.dataset import DatasetSource
            from ._tasks import evaluators_from_hook

            attached = AttachedEvaluators(
                self.gateway, prompt_tag=self.settings.prompt_tag, notices=self.notices,
                evaluate_on=self.settings.evaluate_on,
                allow_code=self.settings.allow_code_evaluators,
                code_timeout=self.settings.code_timeout)
            self._source = DatasetSource(
                self.gateway, list(dict.fromkeys(self.settings.datasets)), self._selection(),
                attached=attached, extra=lambda group: evaluators_from_hook(self.config, group),
                task_for=self.task)
        return self._source

    @property
    def traces(self) -> Traces:
        """The gateway's span half."""
        if self._traces is None:
            from ._phoenix.traces import Traces

            self._traces = Traces(self.gateway)
        return self._traces

    @property
    def spans(self) -> SpanSource:
        """--phoenix-project: the project's spans that lack the evaluators' annotations."""
        if self._spans is None:
            from ._spans import span_source

            self._spans = span_source(self)
        return self._spans

    @property
    def benchmark(self) -> Benchmark | None:
        """--phoenix-benchmark: the judge under test and the golden cases (None otherwise)."""
        if self._benchmark is None and self.settings.benchmark:
            from ._benchmark import Benchmark

            self._benchmark = Benchmark(self)
        return self._benchmark

    @property
    def prompt(self) -> PromptUnderTest | None:
        """--phoenix-task=prompt:NAME or prompt-file:PATH: the prompt under test (None
        otherwise)."""
        if self._prompt is None and is_prompt_task(self.settings.task):
            from ._prompt import PromptUnderTest

            self._prompt = PromptUnderTest(self)
        return self._prompt

    @property
    def sink(self) -> Sink | None:
        """Where results go; None with --phoenix-no-upload."""
        if self.settings.no_upload:
            return None
        if self._sink is None and self.settings.project:
            from ._spans import annotation_sink

            self._sink = annotation_sink(self)
        if self._sink is None:
            from ._core.secrets import safe_command_line
            from ._run.sinks.experiment import (
                ExperimentPlan,
                ExperimentSink,
                default_experiment_name,
                git_info,
            )
            from ._run.sinks.journal import journal_dir
            from ._xdist import EXPERIMENTS, SHARED_DIR, workers_of

            git = git_info(self.config.rootpath)
            metadata: dict[str, Any] = {
                **git,
                "command_line": safe_command_line(self.config.invocation_params.args),
                "plugin": "pytest-phoenix-evals",
                "plugin_version": plugin_version(),
                "pytest_version": pytest.__version__,
                "runner": self.settings.task or "pytest_phoenix_evals_task hook",
            }
            if self.benchmark is not None:
                metadata["runner"] = f"benchmark of judge {self.settings.benchmark}"
            if self.settings.run_id:
                metadata["run_id"] = self.settings.run_id
            plan = ExperimentPlan(self.settings.experiment_name
                                  or default_experiment_name(git, run_id=self.settings.run_id),
                                  metadata,
                                  self.settings.repetitions,
                                  per_group=self._group_metadata, run_id=self.settings.run_id)
            workerinput = self._workerinput
            worker = workerinput.get("workerid")
            shared = workerinput.get(SHARED_DIR)
            self._sink = ExperimentSink(
                self.gateway, self.engine, plan, given=workerinput.get(EXPERIMENTS),
                shared_dir=Path(shared) if shared else None,
                journal_dir=journal_dir(self.config.rootpath),
                # Per session (and worker): a later session, or another server's experiment
                # of the same id, never appends to this session's file.
                journal_suffix=f"-{uuid.uuid4().hex[:8]}" + (f"-{worker}" if worker else ""),
                processes=workers_of(self.config))
        return self._sink

    def _group_metadata(self, group: Group) -> dict[str, Any]:
        """What a group adds to its experiment's metadata: a benchmark's judge, a partial
        run's selection."""
        found = self.benchmark.metadata(group) if self.benchmark is not None else {}
        if self.prompt is not None:
            found.update(self.prompt.metadata())
        if self.settings.skip_evaluators:
            found["skipped_evaluators"] = list(self.settings.skip_evaluators)
        if group.key in self._partial:
            found["partial_run"] = self._partial[group.key]
        return found

    def _note_partial(self, jobs: Sequence[Job]) -> None:
        """A dataset run on some of its examples says so, in the summary and in the
        experiment's metadata (Phoenix shows the others as not run)."""
        counts: dict[str, int] = {}
        groups: dict[str, Group] = {}
        for job in jobs:
            counts[job.case.group.key] = counts.get(job.case.group.key, 0) + 1
            groups[job.case.group.key] = job.case.group
        for key, group in groups.items():
            if group.kind != "dataset" or group.key not in {g.key for g in self.source.groups()}:
                continue
            total = len(self.source.dataset(group).examples)
            if counts[key] >= total:
                continue
            why = self._selected_by()
            self._partial[key] = {"cases": counts[key], "examples": total, "selected_by": why}
            self.notices.append(f"{group.label}: a partial run: {counts[key]} of {total} "
                                f"examples selected ({why}); Phoenix shows the others as not "
                                f"run in this experiment")

    def _selected_by(self) -> str:
        option, s = self.config.option, self.settings
        found = [f"-k {option.keyword!r}" if getattr(option, "keyword", "") else "",
                 f"-m {option.markexpr!r}" if getattr(option, "markexpr", "") else "",
                 "--lf" if getattr(option, "lf", False) else "",
                 "--phoenix-examples" if s.examples else "",
                 f"--phoenix-limit={s.limit}" if s.limit else ""]
        return ", ".join(f for f in found if f) or "node ids or another plugin's selection"

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            from ._run.runner import Runner, RunSettings

            s = self.settings
            self._runner = Runner(
                self.engine, self.sink,
                RunSettings(thresholds=s.thresholds, concurrency=s.concurrency,
                            task_timeout=s.task_timeout, repetitions=s.repetitions),
                source=self.spans if s.project else self.source, tracing=self.tracing,
                observers=[self._keep_row, self._case_hook()])
        return self._runner

    def _equip(self, evaluator: Evaluator) -> Evaluator:
        """Give an evaluator what it needs from the session (judge clients, tracing)."""
        from ._evaluators.protocol import LoadsFromPhoenix, NeedsJudges

        self._handed_out.setdefault(id(evaluator), evaluator)
        if isinstance(evaluator, NeedsJudges) and evaluator.judges is None:
            evaluator.judges = self.judges
            if isinstance(evaluator, LoadsFromPhoenix):  # its prompt comes from the server
                evaluator.load(self.gateway)
            if self.tracing is not None and evaluator.tracing is None:
                from ._evaluators.llm.trace import JudgeTrace

                project = evaluator.project_name or JUDGE_PROJECT
                evaluator.tracing = JudgeTrace(self.tracing, project)
        return evaluator

    # --- groups, cases, tasks, evaluators -------------------------------------------------

    def group(self, spec: str) -> Group:
        """The group of a dataset spec, loaded once (PhoenixError if it cannot be)."""
        return self.source.group(spec)

    def test_group(self, spec: str, test: str) -> Group:
        return self.source.test_group(self.group(spec), test)

    def cases(self, group: Group) -> list[Case]:
        return self.source.cases(group)

    def task(self, group: Group) -> Callable[..., Any] | None:
        """The task for a group: --phoenix-task, else the pytest_phoenix_evals_task hook."""
        if group.key not in self._tasks:
            from ._tasks import import_task, task_from_hook

            if self.prompt is not None:
                self.prompt.check(group)  # every example fills the template, before any runs
                self._tasks[group.key] = self.prompt.task
            else:
                self._tasks[group.key] = (import_task(self.settings.task, self.config.rootpath)
                                          if self.settings.task else
                                          task_from_hook(self.config, group))
        return self._tasks[group.key]

    def evaluators(self, group: Group, marker: Sequence[Any] = ()) -> list[Evaluator]:
        """The group's attached evaluators, the hook's and ``marker``'s, equipped."""
        from ._tasks import evaluators_from

        if group.kind in ("spans", "traces"):
            chosen = self.spans.evaluators(group)
        elif self.benchmark is not None:
            chosen = [self.benchmark.judge(group)]
        else:
            chosen = self.source.evaluators(group, evaluators_from(marker,
                                                                   "the phoenix_evals marker"))
        chosen = self._without_skipped(group, chosen)
        first = group.key not in self._checked
        if first:
            from ._run.engine import duplicate_annotations

            self._checked.add(group.key)
            for line in [*duplicate_annotations(chosen),
                         *self._version_dependent_paths(group, chosen)]:
                self.say(f"phoenix-evals: {group.label}: {line}")
                self.notices.append(f"{group.label}: {line}")
        equipped = [self._equip(evaluator) for evaluator in chosen]
        if first:
            self._check_mappings(group, equipped)
            self._check_judges(group, equipped)
        return equipped

    def _version_dependent_paths(self, group: Group, chosen: Sequence[Evaluator]) -> list[str]:
        """Attached evaluators run here on a path the server may read differently (its
        jsonpath-ng version decides): said at collection, with the way to the server."""
        if group.kind not in ("dataset", "test") or self.benchmark is not None:
            return []
        from ._evaluators.attached import version_dependent_paths

        attached = {id(evaluator) for evaluator in self.source.attached_to(group)}
        known: Callable[[str], str] | None = None
        if self.prompt is not None:  # a prompt's output: its lists are lists
            from ._run.prompt_task import without_list_indexes

            known = without_list_indexes
        return version_dependent_paths([e for e in chosen if id(e) in attached], known)

    @staticmethod
    def _check_mappings(group: Group, evaluators: Sequence[Evaluator]) -> None:
        """A mapping written in code with a path Phoenix would refuse to store is a usage
        error before anything runs (attached ones passed the server's check already)."""
        for evaluator in evaluators:
            judge = getattr(evaluator, "judge", evaluator)  # a judge under benchmark: its own
            problems = getattr(judge, "mapping_problems", None)
            if problems:
                raise pytest.UsageError(
                    f"{group.label}: evaluator {evaluator.name!r}: Phoenix would refuse this "
                    f"mapping's path {'; '.join(problems)}")

    def _without_skipped(self, group: Group, chosen: list[Evaluator]) -> list[Evaluator]:
        """--phoenix-skip-evaluators: the evaluators left out of this run, by evaluator or
        annotation name; a name that matches nothing is a usage error naming those there are."""
        skip = set(self.settings.skip_evaluators)
        if not skip:
            return chosen
        from ._core.naming import annotation_names

        def names(evaluator: Evaluator) -> set[str]:
            return {evaluator.name, *annotation_names(evaluator.output_configs)}

        unknown = skip - {n for e in chosen for n in names(e)}
        if unknown and group.kind == "dataset":
            raise pytest.UsageError(
                f"--phoenix-skip-evaluators: {', '.join(sorted(unknown))} is not an evaluator "
                f"of {group.label} (its evaluators: {', '.join(e.name for e in chosen)})")
        return [e for e in chosen if not names(e) & skip]

    def _check_judges(self, group: Group, evaluators: Sequence[Evaluator]) -> None:
        """Judges that cannot call their model (no API key, no endpoint) are said once, before
        anything runs, with the ways out; not once per case."""
        from ._evaluators.llm.client import JudgeError
        from ._evaluators.protocol import NeedsJudges

        stuck: dict[str, list[str]] = {}
        for evaluator in evaluators:
            judge = getattr(evaluator, "judge", evaluator)  # a judge under benchmark: its own
            prompt = getattr(judge, "prompt", None)
            if not isinstance(evaluator, NeedsJudges) or prompt is None or \
                    getattr(judge, "problem", None):
                continue
            try:
                self.judges.endpoint(getattr(prompt, "model_provider", None) or "OPENAI")
            except JudgeError as exc:
                stuck.setdefault(str(exc), []).append(evaluator.name)
        for problem, names in stuck.items():
            shown = ", ".join(repr(n) for n in names)
            raise pytest.UsageError(
                f"{group.label}: LLM judge(s) {shown} cannot call a model: {problem}. Or run "
                f"the attached ones on Phoenix with --phoenix-evaluate-on=server, or leave them "
                f"out with --phoenix-skip-evaluators={','.join(names)}")

    def preload(self) -> None:
        """Load the command line's datasets (or list the project's spans) before collection,
        so errors come first."""
        if self.settings.project:
            from ._spans import preload_spans

            preload_spans(self)
            return
        if not self.settings.datasets:
            return
        from ._phoenix.http import PhoenixError
        from ._run.sources.dataset import SelectionError

        try:
            groups = self.source.groups()
        except PhoenixError as exc:
            raise pytest.UsageError(str(exc)) from None
        for group in groups:
            dataset = self.source.dataset(group)
            if not dataset.examples:
                where = f" in split(s) {', '.join(group.splits)}" if group.splits else ""
                self.say(f"phoenix-evals: dataset {dataset.name!r} has no examples at version "
                          f"{dataset.version_id}{where}: there is nothing to run")
            if self.task(group) is not None:
                self.evaluators(group)
            for judged in self.benchmark_groups(group):  # the judge(s) under test, now
                self.evaluators(judged)
        try:
            self.source.check_examples()
        except SelectionError as exc:
            raise pytest.UsageError(str(exc)) from None
        if not self.settings.offline:
            self.notices += self.source.save_snapshots(self.config.rootpath)
        if self.settings.baseline:
            for group in groups:
                self.load_baseline(group)

    # --- running --------------------------------------------------------------------------

    def start(self, jobs: Sequence[Job], selected: Sequence[Job] | None = None) -> None:
        """Create the experiments of these jobs (printing their links first), then start the
        jobs ahead of pytest (--phoenix-concurrency at once). ``selected``: every job pytest
        selected, when these are an xdist worker's share of them."""
        if not jobs:
            return
        if self.settings.datasets and self.benchmark is None and not self.settings.run_id:
            # (a shard of a run records part of it by design)
            self._note_partial(jobs if selected is None else selected)
        if self.sink is not None:
            self._announce({job.case.group.key: job.case.group for job in jobs}.values())
        self.runner.start(jobs)

    def _announce(self, groups: Any) -> None:
        """Create each group's experiment now and print its URL, before any case runs (a
        failure to create it is reported with the uploads)."""
        assert self.sink is not None
        for group in sorted(groups, key=lambda g: g.key):
            try:
                destination = self.sink.open(group)
            except Exception:
                continue
            self.say(f"phoenix-evals: experiment for {group.label}: {destination.url}"
                     if group.kind in ("dataset", "test") else
                     f"phoenix-evals: annotations go to project {group.label}: {destination.url}")
            if self.tracing is not None and destination.project_name:
                # Made here, not on the engine's loop by the first case: setting tracing up
                # takes a while, and the loop carries every case.
                self.tracing.tracer(destination.project_name)

    def run(self, job: Job) -> list[CaseResult]:
        return self.runner.run(job)

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()

    def evaluate_output(self, case: Case, output: Any, evaluators: Sequence[Evaluator],
                        start: datetime) -> CaseResult:
        return self.runner.evaluate_output(case, output, evaluators, start)

    def record_error(self, case: Case, error: str, start: datetime | None) -> None:
        self.runner.record_error(case, error, start)

    def runs_of(self, case: Case) -> list[Case]:
        return self.runner.runs_of(case) if self.settings.repetitions > 1 else [case]

    def experiment_url(self, group: Group | None) -> str | None:
        return self._sink.url(group) if self._sink is not None and group is not None else None

    def _keep_row(self, result: CaseResult) -> None:
        if self.settings.results and not (self.settings.only_failures and result.passed):
            from ._report.outputs import result_rows

            self.rows += result_rows(result, self.experiment_url(result.case.group))

    def _case_hook(self) -> Callable[[CaseResult], None]:
        hook = self.config.hook.pytest_phoenix_evals_case_result

        def pytest_phoenix_evals_case_result(result: CaseResult) -> None:
            hook(config=self.config, result=result)

        return pytest_phoenix_evals_case_result

    def take_results(self, results: Sequence[CaseResult], report: UploadReport) -> None:
        """Results made elsewhere (regated from Phoenix) and where they are, for the summary."""
        self._other_results.extend(results)
        self.upload_report = report

    @property
    def rootpath(self) -> Path:
        return self.config.rootpath

    @property
    def results(self) -> list[CaseResult]:
        """Every result of the session: run here, handed back by workers, or regated."""
        mine = self._runner.results if self._runner is not None else []
        return [*mine, *self._other_results]

    # --- pytest-xdist ---------------------------------------------------------------------

    def for_workers(self) -> dict[str, dict[str, Any]]:
        """On xdist's controller: one experiment per command-line dataset, made once for every
        worker to upload into (so that -n 4 gives one experiment per group, not four)."""
        if self.sink is None:
            return {}
        if self._shared is None:
            self._shared = {}
            for spec in dict.fromkeys(self.settings.datasets):
                try:
                    group = self.group(spec)
                    self._shared[group.key] = self.sink.open(group).to_wire()
                    self.say(f"phoenix-evals: experiment for {group.label}: "
                              f"{self._shared[group.key]['url']}")
                except Exception as exc:  # the workers then make their own, and say why
                    self.notices.append(f"could not make one experiment for all xdist workers "
                                        f"on dataset {spec!r}: {exc}")
        return self._shared

    def for_controller(self) -> dict[str, Any]:
        """On an xdist worker: what the controller's summary needs."""
        from ._xdist import dump_result

        return {"results": [dump_result(r) for r in self.results],
                "report": self.upload_report.to_wire() if self.upload_report else None,
                "rows": self.rows, "notices": self.notices, "partial": self._partial,
                "observer_errors": self.observer_errors()}

    def _record_partial(self) -> None:
        """On xdist's controller: the experiments it made before any worker had collected
        learn of a partial selection now, from the workers."""
        from ._core.secrets import redact_value

        for key, partial in self._partial.items():
            made = (self._shared or {}).get(key)
            if made is None:
                continue
            try:
                self.gateway.add_experiment_metadata(
                    made["id"], redact_value({"partial_run": partial}))
            except Exception as exc:
                self.notices.append(f"could not note the partial run in the metadata of "
                                    f"experiment {made['id']}: {exc}")

    def absorb(self, part: dict[str, Any]) -> None:
        """On xdist's controller: a worker's results and upload report, for the summary."""
        from ._run.sinks.base import UploadReport
        from ._xdist import load_result

        self._other_results.extend(load_result(r) for r in part["results"])
        self.rows.extend(part.get("rows") or ())
        if part.get("report"):
            self._worker_reports.append(UploadReport.from_wire(part["report"]))
        self.notices += [n for n in part.get("notices") or () if n not in self.notices]
        for key, partial in (part.get("partial") or {}).items():
            self._partial.setdefault(key, partial)
        self._worker_observer_errors += list(part.get("observer_errors") or ())

    # --- end of session -------------------------------------------------------------------

    def close(self) -> None:
        """Wait for uploads, then stop the engine; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._sink is not None:
            waiting = self._sink.waiting()
            if waiting:
                self.say(f"phoenix-evals: waiting for {waiting} upload(s) to finish (at most "
                          f"{self.settings.upload_timeout:g} s, --phoenix-upload-timeout) ...")
            deadline = time.monotonic() + self.settings.upload_timeout
            self.upload_report = self._sink.drain(max(0.0, deadline - time.monotonic()))
            self._say_overloaded()
        if self._worker_reports:
            from ._run.sinks.base import UploadReport

            self.upload_report = self.upload_report or UploadReport()
            for part in self._worker_reports:
                self.upload_report.merge(part)
        if self._shared and self._partial:
            self._record_partial()
        if self.settings.set_baseline and self.upload_report is not None:
            from ._run.baselines import set_baselines

            self.notices += set_baselines(self.gateway, self.upload_report)
        if self._spans is not None:
            from ._spans import finish_spans

            finish_spans(self)
        if self.handed_over_spans is not None and self.tracing is not None:
            self.tracing.send_handed_over(self.handed_over_spans)
        if self._engine is not None or self._gateway is not None:
            self._shut_down()  # else the plugin was not used: import nothing on the way out

    def _say_overloaded(self) -> None:
        """A notice when Phoenix answered uploads with 429 or 503: it is at capacity, and the
        run slowed down for it (a sink without a pace has nothing to say)."""
        pace = getattr(self._sink, "pace", None)
        notice = pace.overload_notice() if pace is not None else None
        if notice:
            self.notices.append(notice)

    def _shut_down(self) -> None:
        from ._evaluators.protocol import Closes

        if self._tracing is not None:
            self._tracing.shutdown(timeout_seconds=10)
            lost, ended = self._tracing.lost_spans
            if lost:
                self.notices.append(
                    f"{lost} of {ended} trace span(s) of tasks and judges did not reach Phoenix "
                    f"(its trace endpoint refused them, was unreachable, or took them more "
                    f"slowly than the run made them); the results and annotations are not "
                    f"affected")
        if self._judges is not None and self._judges.cache is not None:
            self._judges.cache.close()
            if self._judges.cache.problem:
                self.notices.append(self._judges.cache.problem)
        if self._engine is not None:
            closers = [self._judges.aclose()] if self._judges is not None else []
            if self._prompt is not None:
                closers.append(self._prompt.aclose())
            if self._gateway is not None:
                closers.append(self._gateway.aclose())
            closers += [e.aclose() for e in self._handed_out.values() if isinstance(e, Closes)]
            for closer in closers:
                with contextlib.suppress(Exception):  # idle connections must not fail a run
                    self._engine.run(closer, timeout=10)
            self._engine.close()
        if self._gateway is not None:
            self._gateway.close()

    def finish_benchmark(self, passed: bool | None) -> None:
        """--phoenix-benchmark: the agreement report, then --phoenix-promote-tag."""
        if self.benchmark is None:
            return
        self.baseline_lines += self.benchmark.report_lines(self.results)
        self.baseline_lines += self.benchmark.promote(passed)

    def finish_prompt(self, passed: bool | None) -> None:
        """A prompt as the task: --phoenix-push-prompt, then --phoenix-promote-tag."""
        if self._prompt is not None:
            self.baseline_lines += self._prompt.finish(passed)

    def finish_session(self) -> None:
        """Tell the observers that the session's results are all in."""
        if self.results:
            self.config.hook.pytest_phoenix_evals_session_finish(
                config=self.config, results=self.results, report=self.upload_report)

    # --- baselines ------------------------------------------------------------------------

    def load_baseline(self, group: Group, exclude: Sequence[str] = ()) -> None:
        """Read the group's baseline now (--phoenix-baseline), before any case runs."""
        from ._phoenix.http import PhoenixError
        from ._run.baselines import Baselines

        assert self.settings.baseline is not None
        if self._baselines is None:
            spec = self.settings.baseline
            if spec.startswith("prompt:") and self.prompt is not None:
                spec = self.prompt.baseline_spec(spec.removeprefix("prompt:"))
            self._baselines = Baselines(self.gateway, spec, self.settings.max_regression,
                                        self.settings.thresholds)
        try:
            self._baselines.load(group, exclude)
        except PhoenixError as exc:
            wanted = self._prompt.baseline_version if self._prompt is not None else None
            if wanted is not None and str(exc).startswith("no experiment"):
                name, tag, version = wanted
                raise pytest.UsageError(
                    f"--phoenix-baseline=prompt:{tag}: {exc} (prompt {name!r}, tagged {tag!r}); "
                    f"record one first: pytest --phoenix-dataset={group.dataset_name} "
                    f"--phoenix-task=prompt:{name}@{tag}") from None
            raise pytest.UsageError(f"--phoenix-baseline: {exc}") from None

    def compare_with_baselines(self) -> bool | None:
        """The baseline comparison, for the summary; False when an annotation regressed more
        than --phoenix-max-regression, None without a baseline."""
        if not self._baselines:
            return None
        ok, lines = self._baselines.compare(self.results, self.source.dataset,
                                            self.source.evaluators, self.upload_report)
        self.baseline_lines += lines
        return ok

    # --- gates, files, summary ------------------------------------------------------------

    def benchmark_groups(self, group: Group) -> list[Group]:
        """--phoenix-benchmark: the golden set's group, and the one judged by the version
        --phoenix-benchmark-against names; none otherwise."""
        if self.benchmark is None:
            return []
        other = self.benchmark.against(group)
        return [group] + ([other] if other is not None else [])

    def apply_gates(self, expected: Sequence[Case]) -> bool | None:
        """Decide the --phoenix-fail-under gates on every selected case (``expected``) and
        what they did; None without gates."""
        if not self.settings.gates:
            return None
        from ._core.gates import evaluate_gates

        if self.benchmark is not None:  # the version compared against is not gated
            expected = [case for case in expected if self.benchmark.gated(case.group)]
        self.gate_results = evaluate_gates(self.settings.gates, expected, self.results)
        return all(r.passed for r in self.gate_results)

    def observer_errors(self) -> list[list[str]]:
        """(observer, case id, error) of each observer call that raised, here and in workers."""
        mine = [list(e) for e in self._runner.observer_errors] if self._runner else []
        return mine + self._worker_observer_errors

    def at_risk(self) -> list[str]:
        """Why the exit status must not be 0 whatever the tests said: results that are not all
        in Phoenix, or an observer that raised."""
        reasons = []
        report = self.upload_report
        if report is not None and not report.complete:
            reasons.append("results are not all in Phoenix")
        if report is not None and report.unjournaled:
            reasons.append("the journal could not keep every result")
        if self.observer_errors():
            reasons.append("an observer of finished cases raised")
        return reasons

    def summary_input(self) -> Summary:
        from ._report.summary import Summary

        return Summary(results=self.results, report=self.upload_report,
                       no_upload=self.settings.no_upload, notices=self.notices,
                       gate_results=self.gate_results, baseline_lines=self.baseline_lines,
                       written=self.written, repetitions=self.settings.repetitions,
                       pass_rule=self.settings.pass_rule,
                       observer_errors=self.observer_errors(), at_risk=self.at_risk())

    def write_outputs(self, exitstatus: int) -> None:
        """The files asked for: --phoenix-results and the markdown summary."""
        from ._report.outputs import write_files

        self.written += write_files(self.settings.results, self.settings.summary_md, self.rows,
                                    self.summary_input(), exitstatus)

    def summary(self) -> list[str]:
        return self.summary_input().lines()

    def say(self, line: str) -> None:
        """A progress line on the terminal (nothing under -q -q or without a terminal)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.get_verbosity() > -2:
            reporter.write_line(line)
