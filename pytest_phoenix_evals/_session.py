"""The session: the composition root of one pytest run, and the only object that holds ``config``.

Built in ``pytest_configure`` only when the plugin is asked for (an option, a marker, a test
requesting ``phoenix_example``), registered with pytest's plugin manager and kept in
``config.stash``. It builds the shared parts (:class:`~._modes.context.Context`), the outcome,
the runner and the one mode the settings choose, and answers what the hooks ask by handing it
to them. No feature logic lives here: the modes (``_modes/``) hold it, pytest-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._modes import choose
from ._modes.context import Context, Host
from ._modes.outcome import Outcome
from ._settings import Settings

if TYPE_CHECKING:
    from ._core.types import Case, CaseResult, Group
    from ._evaluators.protocol import Evaluator
    from ._modes.base import CasePlan
    from ._modes.dataset import DatasetRun
    from ._run.runner import Job, Runner


def _print(line: str) -> None:
    print(line, flush=True)


class PhoenixEvalsSession:
    """State of one pytest run; every public method is what one hook needs."""

    def __init__(self, config: pytest.Config, settings: Settings, *,
                 command: bool = False) -> None:
        self.config = config
        self.settings = settings
        # A run that runs no tests starts before pytest_configure: no terminal reporter yet.
        self.ctx = Context(settings, self._host(_print if command else self.say))
        self.outcome = Outcome(settings, self.ctx.notices)
        self.mode = choose(settings)(self.ctx, self.outcome)
        self._runner: Runner | None = None
        #: On xdist's controller: the folder where the workers leave their trace spans, sent
        #: from here once every worker has finished.
        self.handed_over_spans: Path | None = None
        self._closed = False
        self._made: tuple[int, Any] | None = None  # auto repetitions: the runs each case took

    def _host(self, say: Callable[[str], None]) -> Host:
        """What the modes may know of pytest: plain values and callables."""
        from ._tasks import evaluators_from_hook, task_from_hook

        config = self.config
        case_hook = config.hook.pytest_phoenix_evals_case_result

        def pytest_phoenix_evals_case_result(result: CaseResult) -> None:
            case_hook(config=config, result=result)

        return Host(rootpath=config.rootpath, say=say,
                    command_line=config.invocation_params.args,
                    task_hook=lambda group: task_from_hook(config, group),
                    evaluators_hook=lambda group, kind: evaluators_from_hook(config, group,
                                                                            kind),
                    case_hook=pytest_phoenix_evals_case_result, selected_by=self._selected_by,
                    workerinput=getattr(config, "workerinput", None) or {},
                    front_end={"pytest_version": pytest.__version__})

    def _selected_by(self) -> str:
        option, s = self.config.option, self.settings
        found = [f"-k {option.keyword!r}" if getattr(option, "keyword", "") else "",
                 f"-m {option.markexpr!r}" if getattr(option, "markexpr", "") else "",
                 "--lf" if getattr(option, "lf", False) else "",
                 "--phoenix-examples" if s.examples else "",
                 f"--phoenix-limit={s.limit}" if s.limit else ""]
        return ", ".join(f for f in found if f) or "node ids or another plugin's selection"

    def say(self, line: str) -> None:
        """A progress line on the terminal (nothing under -q -q or without a terminal)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.get_verbosity() > -2:
            reporter.write_line(line)

    @property
    def rootpath(self) -> Path:
        return self.config.rootpath

    def header(self) -> str:
        upload = ("off (--phoenix-offline)" if self.settings.offline else
                  "off (--phoenix-no-upload)" if self.settings.no_upload else "on")
        return (f"phoenix-evals: {self.mode.describe()}; {self.ctx.gateway.where()}; "
                f"upload {upload}")

    # --- runs that run no tests ------------------------------------------------------------

    def command(self) -> int:
        """--phoenix-corrections, --phoenix-upload-pending or --phoenix-regate: the exit
        status."""
        if self.settings.corrections:
            from ._modes.benchmark import JudgeBenchmark

            assert isinstance(self.mode, JudgeBenchmark)
            return self.mode.corrections()
        if self.settings.upload_pending:
            from ._modes.pending import upload_pending

            return upload_pending(self.ctx)
        return self.mode.regate()

    # --- collection -------------------------------------------------------------------------

    @property
    def dataset_run(self) -> DatasetRun:
        """The mode, for a test function of the fixture style (it runs on a dataset)."""
        from ._core.errors import UsageProblem
        from ._modes.dataset import DatasetRun

        if not isinstance(self.mode, DatasetRun):
            raise UsageProblem(f"phoenix_example runs a test on a dataset's examples; not in "
                               f"{self.mode.name} (--phoenix-project)")
        return self.mode

    def groups(self) -> list[Group]:
        """The groups collected at the session's level (an item per planned case)."""
        return self.mode.groups()

    def plans(self, group: Group) -> list[CasePlan]:
        return self.mode.plans(group)

    def test_group(self, spec: str, test: str) -> Group:
        return self.dataset_run.test_group(spec, test)

    def cases(self, group: Group) -> list[Case]:
        return self.dataset_run.cases(group)

    def evaluators(self, group: Group, marker: Sequence[Any] = ()) -> list[Evaluator]:
        """The group's evaluators and ``marker``'s (a test's own), checked and equipped."""
        from ._modes.tasks import evaluators_from

        return self.mode.evaluators(group, evaluators_from(marker, "the phoenix_evals marker"))

    # --- running ----------------------------------------------------------------------------

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            from ._run.runner import Runner, RunSettings

            s = self.settings
            observers: list[Callable[[CaseResult], None]] = [self._keep_row]
            if self.ctx.host.case_hook is not None:
                observers.append(self.ctx.host.case_hook)
            self._runner = self.outcome.runner = Runner(
                self.ctx.engine, None if s.no_upload else self.mode.sink(),
                RunSettings(thresholds=s.thresholds, concurrency=s.concurrency,
                            task_timeout=s.task_timeout, repetitions=s.repetitions,
                            auto=s.repetitions_auto, pass_rule=s.pass_rule,
                            keep_failures=s.add_failures_to is not None),
                tracing=self.ctx.tracing, observers=observers)
        return self._runner

    def _keep_row(self, result: CaseResult) -> None:
        self.outcome.keep_row(result, self.experiment_url(result.case.group))

    def start(self, jobs: Sequence[Job], selected: Sequence[Job] | None = None) -> None:
        """Create the experiments of these jobs (printing their links first), then start the
        jobs ahead of pytest (--phoenix-concurrency at once). ``selected``: every job pytest
        selected, when these are an xdist worker's share of them."""
        if not jobs:
            return
        self.mode.selected([job.case for job in (jobs if selected is None else selected)])
        if not self.settings.no_upload:
            self._announce({job.case.group.key: job.case.group for job in jobs}.values())
        self.runner.start(jobs)

    def _announce(self, groups: Any) -> None:
        """Create each group's destination now and print its URL, before any case runs (a
        failure to create it is reported with the uploads)."""
        sink = self.mode.sink()
        for group in sorted(groups, key=lambda g: g.key):
            try:
                destination = sink.open(group)
            except Exception:
                continue
            self.say(self.mode.announce(group, destination))
            tracing = self.ctx.tracing
            if tracing is not None and destination.project_name:
                # Made here, not on the engine's loop by the first case: setting tracing up
                # takes a while, and the loop carries every case.
                tracing.tracer(destination.project_name)

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
        if self.settings.repetitions_auto:  # the runs it took, here or in an xdist worker
            from ._core.repeat import RunsMade

            results = self.outcome.results
            if self._made is None or self._made[0] != len(results):
                self._made = (len(results), RunsMade(results))
            return self._made[1].of(case)
        return self.runner.runs_of(case) if self.settings.repetitions > 1 else [case]

    def experiment_url(self, group: Group | None) -> str | None:
        sink = self.mode.opened_sink
        return sink.url(group) if sink is not None and group is not None else None

    # --- pytest-xdist -----------------------------------------------------------------------

    def for_workers(self, directory: str) -> dict[str, Any]:
        """On xdist's controller: what every worker is handed (the mode's share, and what the
        controller read from Phoenix)."""
        from ._run.handover import TAPE

        given = self.mode.for_workers(directory)
        tape = self.ctx.tape_for_workers(directory)
        return {**given, TAPE: tape} if tape is not None else given

    def for_controller(self) -> dict[str, Any]:
        """On an xdist worker: what the controller's summary needs."""
        return self.outcome.to_controller(self.mode.to_controller())

    def absorb(self, part: dict[str, Any]) -> None:
        """On xdist's controller: a worker's results and upload report, for the summary."""
        self.outcome.absorb(part)
        self.mode.absorb(part)

    # --- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for uploads, let the mode finish its writes, then stop the engine; a second
        call does nothing."""
        if self._closed:
            return
        self._closed = True
        sink = self.mode.opened_sink
        if sink is not None:
            waiting = sink.waiting()
            if waiting:
                self.say(f"phoenix-evals: waiting for {waiting} upload(s) to finish (at most "
                         f"{self.settings.upload_timeout:g} s, --phoenix-upload-timeout) ...")
            deadline = time.monotonic() + self.settings.upload_timeout
            try:
                self.outcome.upload_report = sink.drain(max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt as stop:  # SIGTERM or Ctrl-C: stop waiting, keep all
                self.outcome.interrupted(stop, "waiting for the uploads")
                self.outcome.upload_report = self._stoppable(
                    lambda: sink.drain(0.0), "closing the journal") or self.outcome.upload_report
            # Phoenix answered uploads with 429 or 503: it is at capacity, the run slowed.
            pace = getattr(sink, "pace", None)
            notice = pace.overload_notice() if pace is not None else None
            if notice:
                self.ctx.notices.append(notice)
        self.outcome.merge_worker_reports()
        if self.ctx.built:
            self._stoppable(self.mode.after_uploads, "finishing the mode's writes")
        if self.handed_over_spans is not None:
            spans = self.handed_over_spans
            self._stoppable(lambda: self.ctx.send_handed_over(spans),
                            "sending the workers' trace spans")
        if self.ctx.built:
            # (else the plugin was not used: import nothing on the way out)
            self._stoppable(self.ctx.shut_down, "sending the trace spans")
            self.outcome.lost_spans = self.ctx.lost_spans

    def _stoppable(self, step: Callable[[], Any], what: str) -> Any:
        """One step of the end that waits on the network: an interrupt (SIGTERM, Ctrl-C)
        stops it, not the end; the run then exits as interrupted (the outcome says so)."""
        try:
            return step()
        except KeyboardInterrupt as stop:
            self.outcome.interrupted(stop, what)
            return None

    def finish(self, expected: Sequence[Case],
               exitstatus: int | pytest.ExitCode) -> int | pytest.ExitCode:
        """Once every case ran: the observers told, the gates, the comparison, the mode's
        end; the exit status (gates decide it; results not all in Phoenix never exit 0)."""
        results = self.outcome.results
        if results:
            self.config.hook.pytest_phoenix_evals_session_finish(
                config=self.config, results=results, report=self.outcome.upload_report)
        self._stoppable(self.mode.measure, "reading the runs' cost from Phoenix")
        passed = self.outcome.apply_gates(expected or [r.case for r in results],
                                          self.mode.gated)
        steady = self._stoppable(self.mode.compare, "comparing with the baseline")
        if steady is False:
            self.outcome.failed_by.append("a regression against the baseline "
                                          "(--phoenix-max-regression)")
        self._stoppable(lambda: self.mode.finish(passed), "finishing the run")
        self._stoppable(self.mode.pictures, "reading the recent experiments for the charts")
        # An interrupt, an internal or usage error keeps its own status.
        decided = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                                 pytest.ExitCode.NO_TESTS_COLLECTED)
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.mode.nothing_to_do():
            exitstatus = pytest.ExitCode.OK  # every span judged already: a scheduled success
        # Gates over no case at all are not applicable: the status stays as decided above.
        if passed is not None and decided and self.outcome.gates_apply:
            exitstatus = pytest.ExitCode.OK if passed else pytest.ExitCode.TESTS_FAILED
        # A regression beyond --phoenix-max-regression fails the run either way, and so do
        # results that did not all reach Phoenix (or a broken observer).
        if decided and (steady is False or self.outcome.at_risk()
                        or self.outcome.promotion_failed):
            exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.outcome.interrupted_while and exitstatus != pytest.ExitCode.INTERNAL_ERROR:
            exitstatus = pytest.ExitCode.INTERRUPTED  # as Ctrl-C during the tests
        self.outcome.write_outputs(int(exitstatus))
        return exitstatus

    def summary(self) -> list[str]:
        return self.outcome.summary()

    @property
    def results(self) -> list[CaseResult]:
        """Every result of the run: run here, handed back by workers, or regated."""
        return self.outcome.results
