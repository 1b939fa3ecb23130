"""A mode: one job of the plugin, as a thing in the code.

A mode names what a run reads (its groups and cases), what it runs (a task, or none when the
case carries its output), what it judges with (its evaluators), where it writes (its sink),
what it adds to the record (metadata), and what it does at the end (comparisons, promotion,
failures into a dataset, the lines it adds to the summary). The pytest layer only turns a
mode's plans into items and its :class:`~.._core.errors.UsageProblem` into pytest's usage
error; the session builds the shared parts and the one mode :func:`~. choose` picks.

pytest-free: a mode runs with an in-memory host, source and sink where importing pytest fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from .._core.types import Case, CaseResult, Group
    from .._evaluators.protocol import Evaluator
    from .._run.runner import Job, Runner
    from .._run.sinks.base import Destination, Sink
    from .._run.sources.base import Source
    from .context import Context
    from .outcome import Outcome

Task = Callable[..., Any]


class CasePlan(NamedTuple):
    """One case as the pytest layer makes an item of it: its task (None when the case carries
    its output), its evaluators, and that output."""

    case: Case
    task: Task | None
    evaluators: list[Evaluator]
    output: Any = None
    # Builds the case's whole example and its output when it starts (a span's context,
    # built as it runs: ``SpanSource.prepare``); None when the case has them already.
    prepare: Any = None


class Mode:
    """The defaults every mode shares; a mode overrides what it does differently."""

    #: The mode's name (docs/architecture.md's table).
    name: ClassVar[str] = ""

    def __init__(self, ctx: Context, outcome: Outcome) -> None:
        self.ctx = ctx
        self.outcome = outcome
        self.settings = ctx.settings
        self._checked: set[str] = set()  # groups whose evaluators were checked
        self._sink: Sink | None = None  # built by sink(), the first time it is asked for

    # --- what it reads ----------------------------------------------------------------------

    def describe(self) -> str:
        """What the run reads, for the report header."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before collection: load or list what the run reads, so that problems come first."""

    def groups(self) -> list[Group]:
        """The groups the pytest layer collects (an item per planned case)."""
        raise NotImplementedError

    def plans(self, group: Group) -> list[CasePlan]:
        raise NotImplementedError

    def source(self) -> Source:
        """The source the cases come from."""
        raise NotImplementedError

    def jobs(self) -> list[Job]:
        """Every planned case as a job of the runner, keyed by group and case id (the pytest
        layer keys them by node id instead)."""
        from .._run.runner import Job

        return [Job(f"{group.key}::{plan.case.case_id}", plan.case, plan.task, plan.evaluators,
                    output=plan.output)
                for group in self.groups() for plan in self.plans(group)]

    def untested(self, tested: set[str]) -> None:
        """After collection: a group the mode must run that nothing runs is a usage error
        (``tested``: the groups tests of the fixture style ran on); none by default."""

    # --- what it judges with ----------------------------------------------------------------

    def choose_evaluators(self, group: Group, extra: Sequence[Evaluator] = ()
                          ) -> list[Evaluator]:
        raise NotImplementedError

    def evaluators(self, group: Group, extra: Sequence[Evaluator] = ()) -> list[Evaluator]:
        """The group's evaluators (and ``extra``, a marker's), checked the first time and
        equipped with what they need from the run."""
        every = self.choose_evaluators(group, extra)
        chosen = self._without_skipped(group, every)
        first = group.key not in self._checked
        if first:
            from .._run.engine import duplicate_annotations

            self._checked.add(group.key)
            if not chosen and (line := unasserted_line(group, skipped=bool(every))):
                self.ctx.say(f"phoenix-evals: {line}")
            for line in [*duplicate_annotations(chosen),
                         *self.version_dependent_paths(group, chosen)]:
                self.ctx.say(f"phoenix-evals: {group.label}: {line}")
                self.ctx.notices.append(f"{group.label}: {line}")
        equipped = [self.ctx.equip(evaluator) for evaluator in chosen]
        if first:
            _check_mappings(group, equipped)
            self._check_judges(group, equipped)
            if self.settings.judge_calibration:
                from .calibrations import calibrations

                self.outcome.calibrations.update(calibrations(self.ctx, equipped))
        return equipped

    def version_dependent_paths(self, group: Group, chosen: Sequence[Evaluator]) -> list[str]:
        """Evaluators run here on a path the server may read differently (none by default)."""
        return []

    def _without_skipped(self, group: Group, chosen: list[Evaluator]) -> list[Evaluator]:
        """--phoenix-skip-evaluators: the evaluators left out of this run, by evaluator or
        annotation name; a name that matches nothing is a usage error naming those there are."""
        skip = set(self.settings.skip_evaluators)
        if not skip:
            return chosen
        from .._core.naming import annotation_names

        def names(evaluator: Evaluator) -> set[str]:
            return {evaluator.name, *annotation_names(evaluator.output_configs)}

        unknown = skip - {n for e in chosen for n in names(e)}
        if unknown and group.kind == "dataset":
            raise UsageProblem(
                f"--phoenix-skip-evaluators: {', '.join(sorted(unknown))} is not an evaluator "
                f"of {group.label} (its evaluators: {', '.join(e.name for e in chosen)})")
        return [e for e in chosen if not names(e) & skip]

    def _check_judges(self, group: Group, evaluators: Sequence[Evaluator]) -> None:
        """Judges that cannot call their model (no API key, no endpoint) are said once, before
        anything runs, with the ways out; not once per case."""
        from .._evaluators.llm.client import JudgeError
        from .._evaluators.protocol import NeedsJudges

        stuck: dict[str, list[str]] = {}
        for evaluator in evaluators:
            judge = getattr(evaluator, "judge", evaluator)  # a judge under benchmark: its own
            prompt = getattr(judge, "prompt", None)
            if not isinstance(evaluator, NeedsJudges) or prompt is None or \
                    getattr(judge, "problem", None):
                continue
            try:
                self.ctx.judges.endpoint(getattr(prompt, "model_provider", None) or "OPENAI")
            except JudgeError as exc:
                stuck.setdefault(str(exc), []).append(evaluator.name)
        for problem, names in stuck.items():
            shown = ", ".join(repr(n) for n in names)
            raise UsageProblem(
                f"{group.label}: LLM judge(s) {shown} cannot call a model: {problem}. Or run "
                f"the attached ones on Phoenix with --phoenix-evaluate-on=server, or leave them "
                f"out with --phoenix-skip-evaluators={','.join(names)}")

    # --- where it writes --------------------------------------------------------------------

    def sink(self) -> Sink:
        """Where results go (not asked with --phoenix-no-upload)."""
        raise NotImplementedError

    @property
    def opened_sink(self) -> Sink | None:
        """The sink, if anything asked for it (on xdist's controller: the one that made the
        workers' experiments)."""
        return self._sink

    def announce(self, group: Group, destination: Destination) -> str:
        """The line that says where a group's results go, before any case runs."""
        return f"phoenix-evals: experiment for {group.label}: {destination.url}"

    # --- the run ----------------------------------------------------------------------------

    def selected(self, cases: Sequence[Case]) -> None:
        """Told which cases the run selected (all of its items), before any runs."""

    def gated(self, group: Group) -> bool:
        """Whether the gates (and a promotion) read this group's results."""
        return True

    def for_workers(self, directory: str) -> dict[str, Any]:
        """On xdist's controller: what the workers are handed (workerinput entries)."""
        return {}

    def to_controller(self) -> dict[str, Any]:
        """On a worker: what the mode hands the controller beside the results."""
        return {}

    def absorb(self, part: dict[str, Any]) -> None:
        """On xdist's controller: a worker's :meth:`to_controller`."""

    # --- the end ----------------------------------------------------------------------------

    def after_uploads(self) -> None:
        """Once the results are uploaded (or given up on), before the engine stops."""

    def measure(self) -> None:
        """Before the gates: read what the run's gates and summary need from Phoenix after
        the uploads (the runs' cost)."""

    def compare(self) -> bool | None:
        """The comparison with a baseline, for the summary; False when it fails the run,
        None without one."""
        return None

    def finish(self, passed: bool | None) -> None:
        """What the mode does once the gates are decided (lines into the summary)."""

    def pictures(self) -> None:
        """After the end: what only the markdown summary shows (charts), read failure-
        tolerantly (``outcome.markdown``)."""

    def nothing_to_do(self) -> bool:
        """Whether the run found nothing to do and that is a success (pytest's 'no tests')."""
        return False

    def regate(self) -> int:
        """--phoenix-regate: decide the gates anew on what Phoenix holds; the exit status."""
        raise UsageProblem(f"--phoenix-regate: not with the {self.name} mode")

    def collect_only_line(self) -> str | None:
        """--collect-only: what a run would cost (None: nothing to say)."""
        return None


def unasserted_line(group: Group, *, skipped: bool = False) -> str | None:
    """What a dataset run with no evaluator asserts (nothing but the task's errors), said at
    collection; None for a group that asserts in another way (a test's own body)."""
    if group.kind != "dataset":
        return None
    why = ("every evaluator is left out (--phoenix-skip-evaluators)" if skipped else
           "none is attached to the dataset in Phoenix and none comes from code (the "
           "pytest_phoenix_evals_evaluators hook)")
    return (f"{group.label}: NO EVALUATOR: {why}; a case fails only if its task raises, "
            f"nothing else is asserted")


def _check_mappings(group: Group, evaluators: Sequence[Evaluator]) -> None:
    """A mapping written in code with a path Phoenix would refuse to store is a usage error
    before anything runs (attached ones passed the server's check already)."""
    for evaluator in evaluators:
        judge = getattr(evaluator, "judge", evaluator)  # a judge under benchmark: its own
        problems = getattr(judge, "mapping_problems", None)
        if problems:
            raise UsageProblem(
                f"{group.label}: evaluator {evaluator.name!r}: Phoenix would refuse this "
                f"mapping's path {'; '.join(problems)}")


def run_without_pytest(mode: Mode, runner: Runner) -> list[CaseResult]:
    """Run a whole mode as a session does, with no pytest: prepare, plan, run every case into
    the runner's sink, drain it, and finish (the end of the mode's run; its summary lines go
    to ``mode.outcome``). The results."""
    mode.prepare()
    jobs = mode.jobs()
    mode.selected([job.case for job in jobs])
    mode.outcome.runner = runner
    results = runner.run_jobs(jobs)
    if runner.sink is not None:
        mode.outcome.upload_report = runner.sink.drain(60.0)
    mode.after_uploads()
    cases = [run for job in jobs for run in runner.runs_of(job.case)]
    passed = mode.outcome.apply_gates(cases, mode.gated)
    mode.compare()
    mode.finish(passed)
    return results
