"""The dataset run: each ``--phoenix-dataset`` is a group whose examples run through the task
and are judged by the evaluators attached in Phoenix and written in code, recorded as an
experiment; at the end, the comparison with a baseline. The prompt task and the judge
benchmark are this mode with another task or another evaluator set (subclasses).

pytest-free.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.errors import UsageProblem
from .._run import handover
from .base import CasePlan, Mode

if TYPE_CHECKING:
    from .._core.types import Case, Group
    from .._evaluators.protocol import Evaluator
    from .._run.baselines import Baselines
    from .._run.sinks.base import Sink
    from .._run.sources.dataset import DatasetSource
    from .context import Context
    from .outcome import Outcome

Task = Callable[..., Any]


def dataset_label(group: Group) -> str:
    """The dataset as an experiment's name says it: its name, version (the readable part of
    the version id) and splits (``qa-golden v3``, ``qa-golden v3 split test``)."""
    from .._core.naming import row_id

    label = group.dataset_name
    if group.version_id:
        label += f" v{row_id(group.version_id)}"
    if group.splits:
        label += f" split {','.join(group.splits)}"
    return label


class DatasetRun(Mode):
    """A dataset's examples run through a Python task, recorded as an experiment."""

    name: ClassVar[str] = "dataset run"
    #: What the evaluators hook is told it judges (its ``kind`` argument).
    hook_kind: ClassVar[str] = "dataset"

    def __init__(self, ctx: Context, outcome: Outcome, *,
                 source: DatasetSource | None = None, sink: Sink | None = None) -> None:
        super().__init__(ctx, outcome)
        self._source = source
        self._sink = sink
        self._tasks: dict[str, Task | None] = {}
        self._named: list[Evaluator] | None = None  # --phoenix-evaluators, once built
        self._baselines: Baselines | None = None
        # Groups run in part (-k, --lf, --phoenix-examples, ...): what the experiment says.
        self.partial: dict[str, dict[str, Any]] = {}
        # On xdist's controller: the experiments made for every worker, by group key.
        self._shared: dict[str, dict[str, Any]] | None = None

    # --- what it reads ----------------------------------------------------------------------

    @property
    def dataset_source(self) -> DatasetSource:
        """The command line's datasets (and the markers' datasets, as they are asked for)."""
        if self._source is None:
            from .context import dataset_source

            self._source = dataset_source(self.ctx, self.settings.datasets, self.task,
                                          kind=self.hook_kind)
        return self._source

    def source(self) -> DatasetSource:
        return self.dataset_source

    def describe(self) -> str:
        return f"dataset(s) {', '.join(self.settings.datasets)}"

    def group(self, spec: str) -> Group:
        """The group of a dataset spec, loaded once (PhoenixError if it cannot be)."""
        return self.dataset_source.group(spec)

    def test_group(self, spec: str, test: str) -> Group:
        """The group of a test function of the fixture style run on ``spec``."""
        return self.dataset_source.test_group(self.group(spec), test)

    def cases(self, group: Group) -> list[Case]:
        return self.dataset_source.cases(group)

    def spec_groups(self) -> list[Group]:
        """One group per command-line spec (loading each once)."""
        return [self.group(spec) for spec in dict.fromkeys(self.settings.datasets)]

    def groups(self) -> list[Group]:
        return self.spec_groups()

    def shared_groups(self) -> list[Group]:
        """The groups of the command line's specs that xdist's workers share an experiment
        of, and that are compared with a baseline: one per spec (a prompt on several models:
        one per spec and model)."""
        return self.spec_groups()

    def plans(self, group: Group) -> list[CasePlan]:
        task = self.task(group)
        recorded = self.recorded(group)
        if task is None and recorded is None:
            return []  # tests requesting phoenix_example may run it; checked later
        evaluators = self.evaluators(group)
        if recorded is not None:  # judged outputs: the task's output, or else the recorded one
            return [CasePlan(case, task, evaluators, None if task else output)
                    for case, output in recorded]
        return [CasePlan(case, task, evaluators) for case in self.cases(group)]

    def recorded(self, group: Group) -> list[tuple[Case, Any]] | None:
        """A dataset whose every example carries the output it was judged on (failing spans
        added by --phoenix-add-failures-to): each case in the context the judges saw (the
        task, if any, gets that input), and the recorded output, judged again when there is
        no task. None for any other dataset."""
        if group.kind != "dataset" or group.test:
            return None
        from .._core.recorded import recorded_case

        cases = self.cases(group)
        found = [judged for case in cases if (judged := recorded_case(case)) is not None]
        return found if found and len(found) == len(cases) else None

    def prepare(self) -> None:
        """Load the command line's datasets (their evaluators, tasks and baselines) before
        collection, so that errors come first."""
        if not self.settings.datasets:
            return
        from .._phoenix.http import PhoenixError
        from .._run.sources.dataset import SelectionError

        source = self.dataset_source
        try:
            bases = self.spec_groups()
        except PhoenixError as exc:
            raise UsageProblem(str(exc)) from None
        for group in bases:
            dataset = source.dataset(group)
            if not dataset.examples:
                where = f" in split(s) {', '.join(group.splits)}" if group.splits else ""
                self.ctx.say(f"phoenix-evals: dataset {dataset.name!r} has no examples at "
                             f"version {dataset.version_id}{where}: there is nothing to run")
        for group in self.groups():
            self.prepare_group(group)
        try:
            source.check_examples()
        except SelectionError as exc:
            raise UsageProblem(str(exc)) from None
        if not self.settings.offline:
            self.ctx.notices.extend(source.save_snapshots(self.ctx.host.rootpath))
        if self.settings.baseline:
            for group in self.shared_groups():
                self.load_baseline(group)

    def prepare_group(self, group: Group) -> None:
        """Check a group's task and evaluators before collection (a task exists: its
        evaluators are built and checked now)."""
        if self.task(group) is not None or self.recorded(group) is not None:
            self.evaluators(group)

    # --- what it runs -----------------------------------------------------------------------

    def task(self, group: Group) -> Task | None:
        """The task for a group: --phoenix-task, else the pytest_phoenix_evals_task hook."""
        if group.key not in self._tasks:
            self._tasks[group.key] = self.find_task(group)
        return self._tasks[group.key]

    def find_task(self, group: Group) -> Task | None:
        if self.settings.task:
            from .tasks import import_task

            return import_task(self.settings.task, self.ctx.host.rootpath)
        return self.ctx.host.task_hook(group)

    def untested(self, tested: set[str]) -> None:
        """After collection: a command-line dataset that neither a task nor a test of the
        fixture style (``tested``: the groups they ran on) runs is a usage error."""
        for spec in dict.fromkeys(self.settings.datasets):
            group = self.group(spec)
            if group.key not in tested and self.task(group) is None and \
                    self.recorded(group) is None:
                raise UsageProblem(
                    f"--phoenix-dataset {spec!r} needs a task to run: pass "
                    f"--phoenix-task=module:function, implement pytest_phoenix_evals_task in "
                    f"conftest.py, or write a test that requests the phoenix_example fixture")

    # --- what it judges with ----------------------------------------------------------------

    def choose_evaluators(self, group: Group, extra: Sequence[Evaluator] = ()
                          ) -> list[Evaluator]:
        return [*self.dataset_source.evaluators(group, extra), *self.named_evaluators()]

    def named_evaluators(self) -> list[Evaluator]:
        """--phoenix-evaluators: judges beside the attached ones, built once."""
        if self._named is None:
            from .named_judges import named_evaluators

            self._named = [e for name in self.settings.evaluators
                           for e in named_evaluators(self.ctx, name, subject="dataset example")]
        return self._named

    def version_dependent_paths(self, group: Group, chosen: Sequence[Evaluator]) -> list[str]:
        """Attached evaluators run here on a path the server may read differently (its
        jsonpath-ng version decides): said at collection, with the way to the server."""
        if group.kind not in ("dataset", "test"):
            return []
        from .._evaluators.attached import version_dependent_paths

        attached = {id(evaluator) for evaluator in self.dataset_source.attached_to(group)}
        return version_dependent_paths([e for e in chosen if id(e) in attached],
                                       self.known_paths())

    def known_paths(self) -> Callable[[str], str] | None:
        """What the task's output is known to hold, for the path check (nothing known)."""
        return None

    # --- where it writes --------------------------------------------------------------------

    def sink(self) -> Sink:
        if self._sink is None:
            from datetime import UTC, datetime

            from .._core.secrets import safe_command_line
            from .._core.version import plugin_version
            from .._run.sinks.experiment import (
                ExperimentPlan,
                ExperimentSink,
                default_experiment_name,
                git_info,
            )
            from .._run.sinks.journal import journal_dir

            s, host = self.settings, self.ctx.host
            git = git_info(host.rootpath)
            command_line = safe_command_line(host.command_line)
            metadata: dict[str, Any] = {
                **git, "command_line": command_line,
                "plugin": "pytest-phoenix-evals", "plugin_version": plugin_version(),
                **host.front_end, "runner": self.runner_name()}
            if s.run_id:
                metadata["run_id"] = s.run_id
            now = datetime.now(UTC)  # one time for every group of the session

            def named(group: Group) -> str:
                return default_experiment_name(self.what_ran(group), git, now,
                                               run_id=s.run_id)

            plan = ExperimentPlan(s.experiment_name or named, metadata, s.repetitions,
                                  per_group=self._group_metadata, run_id=s.run_id,
                                  description=command_line)
            shared = host.workerinput.get(handover.SHARED_DIR)
            self._sink = ExperimentSink(
                self.ctx.gateway, self.ctx.engine, plan,
                given=host.workerinput.get(handover.EXPERIMENTS),
                shared_dir=Path(shared) if shared else None,
                journal_dir=journal_dir(host.rootpath),
                journal_suffix=self.ctx.journal_suffix(), processes=host.workers)
        return self._sink

    def runner_name(self) -> str:
        """What ran the cases, for the experiment's metadata."""
        return self.settings.task or "pytest_phoenix_evals_task hook"

    def what_ran(self, group: Group) -> str:
        """The start of a group's default experiment name: the task, on the dataset and its
        version (``my_app.qa:answer on qa-golden v3``)."""
        return f"{self.task_label(group)} on {dataset_label(group)}".strip()

    def task_label(self, group: Group) -> str:
        """The task as the experiment's name says it: --phoenix-task, else the hook's function
        (``module:name``); nothing for a test of the fixture style (its name ends the
        experiment's)."""
        if group.test:
            return ""
        if self.settings.task:
            return self.settings.task
        task = self.task(group)
        if task is None:
            return "recorded outputs" if self.recorded(group) is not None else ""
        module = getattr(task, "__module__", None)
        name = getattr(task, "__qualname__", None) or getattr(task, "__name__", None)
        return f"{module}:{name}" if module and name else "the pytest_phoenix_evals_task hook"

    def metadata(self, group: Group) -> dict[str, Any]:
        """What this mode adds to a group's experiment metadata (nothing here)."""
        return {}

    def _group_metadata(self, group: Group) -> dict[str, Any]:
        """A group's experiment metadata: the mode's, the skipped evaluators, a partial run's
        selection."""
        found = self.metadata(group)
        if self.settings.skip_evaluators:
            found["skipped_evaluators"] = list(self.settings.skip_evaluators)
        if group.key in self.partial:
            found["partial_run"] = self.partial[group.key]
        return found

    # --- the run ----------------------------------------------------------------------------

    def selected(self, cases: Sequence[Case]) -> None:
        """A dataset run on some of its examples says so, in the summary and in the
        experiment's metadata (Phoenix shows the others as not run). A shard of a run
        (--phoenix-run-id) records part of it by design."""
        if not self.settings.datasets or self.settings.run_id:
            return
        counts: dict[str, int] = {}
        groups: dict[str, Group] = {}
        for case in cases:
            counts[case.group.key] = counts.get(case.group.key, 0) + 1
            groups[case.group.key] = case.group
        mine = {g.key for g in self.shared_groups()}
        for key, group in groups.items():
            if group.kind != "dataset" or group.key not in mine:
                continue
            total = len(self.dataset_source.dataset(group).examples)
            if counts[key] >= total:
                continue
            why = self.ctx.host.selected_by()
            self.partial[key] = {"cases": counts[key], "examples": total, "selected_by": why}
            self.ctx.notices.append(f"{group.label}: a partial run: {counts[key]} of {total} "
                                    f"examples selected ({why}); Phoenix shows the others as "
                                    f"not run in this experiment")

    def for_workers(self, directory: str) -> dict[str, Any]:
        """On xdist's controller: one experiment per command-line dataset, made once for every
        worker to upload into (so that -n 4 gives one experiment per group, not four)."""
        if self.settings.no_upload:
            return {handover.EXPERIMENTS: {}}
        if self._shared is None:
            self._shared = {}
            for group in self.shared_groups():
                try:
                    self._shared[group.key] = self.sink().open(group).to_wire()
                    self.ctx.say(f"phoenix-evals: experiment for {group.label}: "
                                 f"{self._shared[group.key]['url']}")
                except Exception as exc:  # the workers then make their own, and say why
                    self.ctx.notices.append(f"could not make one experiment for all xdist "
                                            f"workers on dataset {group.label!r}: {exc}")
        return {handover.EXPERIMENTS: self._shared}

    def to_controller(self) -> dict[str, Any]:
        return {"partial": self.partial}

    def absorb(self, part: dict[str, Any]) -> None:
        for key, partial in (part.get("partial") or {}).items():
            self.partial.setdefault(key, partial)

    # --- the end ----------------------------------------------------------------------------

    def after_uploads(self) -> None:
        """A partial selection noted in the experiments xdist's controller made, and
        --phoenix-set-baseline, once everything is uploaded."""
        if self._shared and self.partial:
            self._record_partial()
        report = self.outcome.upload_report
        if self.settings.set_baseline and report is not None:
            from .._run.baselines import set_baselines

            self.ctx.notices.extend(set_baselines(self.ctx.gateway, report))

    def _record_partial(self) -> None:
        """On xdist's controller: the experiments it made before any worker had collected
        learn of a partial selection now, from the workers."""
        from .._core.secrets import redact_value

        for key, partial in self.partial.items():
            made = (self._shared or {}).get(key)
            if made is None:
                continue
            try:
                self.ctx.gateway.add_experiment_metadata(
                    made["id"], redact_value({"partial_run": partial}))
            except Exception as exc:
                self.ctx.notices.append(f"could not note the partial run in the metadata of "
                                        f"experiment {made['id']}: {exc}")

    def wants_costs(self) -> bool:
        """A gate names the runs' cost."""
        return any(g.stat is not None and g.name == "cost" for g in self.settings.gates)

    def measure(self) -> None:
        """The cost Phoenix computed for each run's trace, when a gate (or the summary) needs
        it: read once the spans were sent, waiting for the server to store them (at most
        --phoenix-upload-timeout); what cannot be read is said by the gates."""
        if not self.wants_costs():
            return
        outcome = self.outcome
        report = outcome.upload_report
        if self.settings.no_upload or report is None or not report.destinations:
            outcome.costs_problem = ("Phoenix computes the cost from the runs' traces, and "
                                     "nothing was uploaded")
            return
        from .._run.costs import read_costs

        wanted = {r.trace_id for r in outcome.results if r.trace_id}
        gateway = self.ctx.gateway.reopened()  # the run's clients are closed by now
        try:
            outcome.costs, outcome.costs_problem = read_costs(
                gateway, [d.id for d in report.destinations if d.group.kind in
                          ("dataset", "test")], wanted, self.settings.upload_timeout)
        finally:
            gateway.close()

    def pictures(self) -> None:
        """--phoenix-summary-md (and $GITHUB_STEP_SUMMARY): each pass-rate gate's annotation
        charted over the dataset's recent experiments, marking this run and the baseline. Read
        after the run, for the markdown only: a chart that cannot be read says so there, and
        the run's result never depends on it."""
        s = self.settings
        if not (s.summary_md or os.environ.get("GITHUB_STEP_SUMMARY")) or \
                self.outcome.gate_results is None:
            return
        this = {(r.dataset, r.gate.name): r.value for r in self.outcome.gate_results
                if r.gate.rate and r.gate.metric is None and r.gate.scope is None
                and r.value is not None}
        if not this:
            return
        from .._report.charts import (
            BASELINE,
            THIS_RUN,
            ChartPoint,
            pass_rate_chart,
            short_time,
            unreadable_chart,
        )

        report = self.outcome.upload_report
        ours = [d.id for d in report.destinations] if report is not None else []
        gateway = self.ctx.gateway.reopened()  # the run's clients are closed by now
        try:
            for group in self.groups():
                names = [name for where, name in this if where == group.label]
                if group.kind != "dataset" or not names:
                    continue
                try:
                    points = self.recent(gateway, group, names, ours)
                except Exception as exc:  # a chart never changes the run
                    self.outcome.markdown += [unreadable_chart(name, group.label, str(exc))
                                              for name in names]
                    continue
                for name in names:
                    shown = [ChartPoint(BASELINE if p.baseline else short_time(p.created_at),
                                        p.name, p.rates[name]) for p in points]
                    shown.append(ChartPoint(THIS_RUN, THIS_RUN, this[(group.label, name)]))
                    self.outcome.markdown.append(pass_rate_chart(name, group.label, shown))
        finally:
            gateway.close()

    def recent(self, gateway: Any, group: Group, names: Sequence[str], exclude: Sequence[str]
               ) -> list[Any]:
        """The group's dataset's recent experiments with the pass rates of ``names``."""
        from .._core.baseline import rules_of
        from .._run.baselines import recent_pass_rates

        return recent_pass_rates(gateway, group, self.dataset_source.dataset(group),
                                 rules_of(self.evaluators(group)), self.settings.thresholds,
                                 names, exclude)

    def baseline_spec(self) -> str:
        """The experiment(s) --phoenix-baseline names."""
        assert self.settings.baseline is not None
        return self.settings.baseline

    def baseline_problem(self, group: Group, problem: str) -> UsageProblem:
        """The usage error for a baseline that cannot be read."""
        return UsageProblem(f"--phoenix-baseline: {problem}")

    def load_baseline(self, group: Group, exclude: Sequence[str] = ()) -> None:
        """Read the group's baseline now (--phoenix-baseline), before any case runs."""
        from .._phoenix.http import PhoenixError
        from .._run.baselines import Baselines

        if self._baselines is None:
            self._baselines = Baselines(self.ctx.gateway, self.baseline_spec(),
                                        self.settings.max_regression, self.settings.thresholds,
                                        self.settings.alpha)
        try:
            self._baselines.load(group, exclude)
        except PhoenixError as exc:
            raise self.baseline_problem(group, str(exc)) from None

    def compare(self) -> bool | None:
        """The baseline comparison, for the summary; False when an annotation regressed more
        than --phoenix-max-regression, None without a baseline."""
        if not self._baselines:
            return None
        source = self.dataset_source
        ok, lines = self._baselines.compare(self.outcome.results, source.dataset,
                                            source.evaluators, self.outcome.upload_report)
        self.outcome.baseline_lines += lines
        return ok

    def regate(self) -> int:
        """--phoenix-regate: judge an experiment already in Phoenix by this command line's
        gates, verdict rules and baseline; print the summary; the exit status."""
        from .._core.baseline import results_of, rules_of
        from .._core.naming import case_id
        from .._core.types import Case
        from .._phoenix.http import PhoenixError
        from .._run.sinks.base import Destination, UploadReport

        spec = self.settings.regate
        assert spec is not None
        source = self.dataset_source
        try:
            if spec == "run" and self.settings.run_id:
                spec = self._run_experiment()
            experiment = self.ctx.gateway.experiment(spec)
            if experiment is None:
                if not self.settings.datasets:
                    raise PhoenixError(f"no experiment with id {spec!r} in "
                                       f"{self.ctx.gateway.where()}; to find one by name, add "
                                       f"--phoenix-dataset=NAME")
                first = source.group(self.settings.datasets[0])
                found = self.ctx.gateway.find_experiment(spec, first.dataset_id, first.dataset_name)
                experiment = self.ctx.gateway.experiment(found["id"])
                source.forget()  # loaded again below, at the experiment's own version
            if experiment is None:
                raise PhoenixError(f"experiment {spec!r} vanished while being read")
            names = {i: n for n, i in self.ctx.gateway.dataset_names().items()}
            group = source.load_at(names[experiment["dataset_id"]],
                                   experiment["dataset_version_id"],
                                   (experiment.get("metadata") or {}).get("splits") or ())
            runs = self.ctx.gateway.experiment_runs(experiment["id"])
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-regate: {exc}") from None
        dataset = source.dataset(group)
        if self.settings.baseline:
            self.load_baseline(group, exclude=[experiment["id"]])
        rules = rules_of(self.evaluators(group))
        results = results_of(runs, dataset.examples, rules, self.settings.thresholds, group)
        expected = [Case(e, case_id(e, r), group, r) for e in dataset.examples
                    for r in range(1, int(experiment.get("repetitions") or 1) + 1)]
        report = UploadReport(destinations=[Destination(
            group=group, id=experiment["id"],
            url=self.ctx.gateway.experiment_url(dataset.id, experiment["id"]))])
        self.outcome.take(results, report)
        self.outcome.costs_problem = ("--phoenix-regate reads no cost: gate it on the run "
                                      "itself")
        passed = self.outcome.apply_gates(expected)
        steady = self.compare()
        self.ctx.say(f"phoenix-evals: regating experiment {experiment.get('name')!r} "
                     f"({experiment['id']}) with {len(results)} runs; no task or judge called")
        missing = len(expected) - len(results)
        for line in self.outcome.summary():
            self.ctx.say(line)
        if missing > 0 and passed is None:
            self.ctx.say(f"{missing} case(s) of the dataset version have no run in this "
                         f"experiment")
        ok = (passed if passed is not None else
              (missing <= 0 and all(r.passed for r in results)))
        return 0 if ok and steady is not False else 1

    def _run_experiment(self) -> str:
        """--phoenix-regate=run: the experiment every shard of --phoenix-run-id recorded into."""
        from .._phoenix.http import PhoenixError

        if len(self.settings.datasets) != 1:
            raise PhoenixError("--phoenix-regate=run needs the run's dataset: one "
                               "--phoenix-dataset=NAME")
        from .._run.sinks.experiment import run_token

        assert self.settings.run_id is not None
        group = self.dataset_source.group(self.settings.datasets[0])
        token = run_token(self.settings.run_id, group)
        found = self.ctx.engine.run(self.ctx.gateway.aoldest_with_token(group.dataset_id, token))
        if found is None:
            raise PhoenixError(f"no experiment of run {self.settings.run_id!r} on dataset "
                               f"{group.dataset_name!r} in {self.ctx.gateway.where()}")
        return str(found["id"])
