"""What a run ends with: every result (run here, handed back by xdist's workers, or regated from
Phoenix), where they went, the gates' decisions, and the summary built from them.

pytest-free: the modes' runs that run no tests (regating an experiment or a window) decide and
print through the same object as a pytest session does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._core.calibration import Calibration
    from .._core.gates import GateResult
    from .._core.measures import RunCost
    from .._core.types import Case, CaseResult, Group
    from .._report.summary import Summary
    from .._run.runner import Runner
    from .._run.sinks.base import UploadReport
    from .._settings import Settings


class Outcome:
    """Results, uploads, gates and the lines of the summary of one run."""

    def __init__(self, settings: Settings, notices: list[str]) -> None:
        self.settings = settings
        self.notices = notices  # the context's: one list for the whole run
        self.runner: Runner | None = None
        self.upload_report: UploadReport | None = None
        self.gate_results: list[GateResult] | None = None
        #: Lines after the tables: baselines, a benchmark's agreement, promotions, pushes.
        self.baseline_lines: list[str] = []
        #: --phoenix-results rows, kept only when that file was asked for.
        self.rows: list[dict[str, Any]] = []
        self.written: list[str] = []  # files the run wrote (results, markdown)
        #: A prompt version could not be pushed or promoted: the exit status says so.
        self.promotion_failed = False
        #: Each LLM judge annotation's measured error (--phoenix-judge-calibration).
        self.calibrations: dict[str, Calibration] = {}
        #: What the run was doing at its end when an interrupt (SIGTERM, Ctrl-C) stopped it.
        self.interrupted_while: str | None = None
        #: Why the run failed beside its cases and gates (a regression against the
        #: baseline), for the summary's exit status line.
        self.failed_by: list[str] = []
        #: What Phoenix computed for each run's trace, by trace id (read at the end when a
        #: gate or the summary needs it), or why it could not be read.
        self.costs: dict[str, RunCost] | None = None
        self.costs_problem: str | None = None
        #: Markdown sections the markdown summary adds after its tables (charts, matrices).
        self.markdown: list[str] = []
        #: Trace spans (of tasks and judges) that did not reach Phoenix at the end.
        self.lost_spans = 0
        self._others: list[CaseResult] = []
        self._worker_reports: list[UploadReport] = []
        self._worker_observer_errors: list[list[str]] = []

    @property
    def results(self) -> list[CaseResult]:
        """Every result of the run: run here, handed back by workers, or regated."""
        mine = self.runner.results if self.runner is not None else []
        return [*mine, *self._others]

    def take(self, results: Sequence[CaseResult], report: UploadReport | None = None) -> None:
        """Results made elsewhere (regated from Phoenix) and where they are."""
        self._others.extend(results)
        if report is not None:
            self.upload_report = report

    def keep_row(self, result: CaseResult, url: str | None) -> None:
        """--phoenix-results: the result's rows, when that file was asked for."""
        s = self.settings
        if s.results and not (s.only_failures and result.passed):
            from .._core.text import encodable
            from .._report.outputs import result_rows

            # Text UTF-8 cannot encode (a lone surrogate in a span's input) would fail the
            # whole file: written as its escape, as the journal and the uploads do.
            self.rows += encodable(result_rows(result, url))

    # --- pytest-xdist ---------------------------------------------------------------------

    def to_controller(self, extra: dict[str, Any]) -> dict[str, Any]:
        """On a worker: what the controller's summary needs (plain data)."""
        from dataclasses import asdict

        from .._run.handover import dump_result

        return {"results": [dump_result(r) for r in self.results],
                "report": self.upload_report.to_wire() if self.upload_report else None,
                "rows": self.rows, "notices": self.notices,
                "observer_errors": self.observer_errors(),
                "calibrations": [asdict(c) for c in self.calibrations.values()], **extra}

    def absorb(self, part: dict[str, Any]) -> None:
        """On xdist's controller: a worker's results, rows, notices and upload report."""
        from .._run.handover import load_result
        from .._run.sinks.base import UploadReport

        self._others.extend(load_result(r) for r in part["results"])
        self.rows.extend(part.get("rows") or ())
        if part.get("report"):
            self._worker_reports.append(UploadReport.from_wire(part["report"]))
        self.notices += [n for n in part.get("notices") or () if n not in self.notices]
        self._worker_observer_errors += list(part.get("observer_errors") or ())
        if part.get("calibrations"):
            from .._core.calibration import Calibration

            for found in part["calibrations"]:
                self.calibrations.setdefault(found["annotation"], Calibration(**found))

    def merge_worker_reports(self) -> None:
        if self._worker_reports:
            from .._run.sinks.base import UploadReport

            self.upload_report = self.upload_report or UploadReport()
            for part in self._worker_reports:
                self.upload_report.merge(part)

    # --- decisions ------------------------------------------------------------------------

    def apply_gates(self, expected: Sequence[Case],
                    gated: Callable[[Group], bool] = lambda group: True) -> bool | None:
        """Decide the --phoenix-fail-under gates on every selected case (``expected``, of the
        groups ``gated`` keeps) and what they did; None without gates."""
        if not self.settings.gates:
            return None
        from .._core.gates import evaluate_gates

        expected = [case for case in expected if gated(case.group)]
        self.gate_results = evaluate_gates(self.settings.gates, expected, self.results,
                                           self.calibrations, self.costs, self.costs_problem)
        return all(r.passed for r in self.gate_results)

    @property
    def gates_apply(self) -> bool:
        """Some gate had cases to judge (a run with none leaves the exit status to pytest and
        the mode: a gate over nothing is not applicable)."""
        return any(r.applicable for r in self.gate_results or ())

    def observer_errors(self) -> list[list[str]]:
        """(observer, case id, error) of each observer call that raised, here and in workers."""
        mine = [list(e) for e in self.runner.observer_errors] if self.runner else []
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
        if self.lost_spans:
            # A judge call whose trace is not in Phoenix cannot be audited or corrected there.
            reasons.append("trace spans are not all in Phoenix")
        return reasons

    def interrupted(self, stop: BaseException, what: str) -> None:
        """An interrupt stopped a step of the run's end: said in the summary, and the run
        exits as interrupted; what was not uploaded stays in the journal."""
        signal = str(stop) or "Ctrl-C"
        if self.interrupted_while is None:
            self.interrupted_while = what
            self.notices.append(f"interrupted ({signal}) while {what}: exit status 2 (as "
                                f"interrupted); what did not reach Phoenix is kept in the "
                                f"journal")

    def promotion_blockers(self, passed: bool | None) -> list[str]:
        """Why no prompt version may be pushed or promoted on this run's evidence (none when
        it may): the rule for a judged prompt and a prompt under test alike."""
        why = []
        if not self.settings.gates:
            why.append("no --phoenix-fail-under gate was set, so nothing vouches for it")
        elif not passed:
            why.append("a gate failed")
        elif not self.gates_apply:
            why.append("no case ran, so no gate had anything to judge")
        if self.at_risk():
            why.append("not every result is in Phoenix")
        if self.interrupted_while is not None:
            why.append(f"the run was interrupted while {self.interrupted_while}")
        return why

    # --- the summary ----------------------------------------------------------------------

    def summary_input(self) -> Summary:
        from .._core.commands import upload_pending_command
        from .._report.summary import Summary

        s = self.settings
        return Summary(results=self.results, report=self.upload_report,
                       no_upload=s.no_upload, notices=self.notices,
                       gate_results=self.gate_results, baseline_lines=self.baseline_lines,
                       written=self.written, repetitions=s.repetitions, pass_rule=s.pass_rule,
                       repetitions_auto=s.repetitions_auto,
                       observer_errors=self.observer_errors(), markdown=self.markdown,
                       # (an interrupted run exits 2, and its notice says so)
                       at_risk=[] if self.interrupted_while else
                       [*self.at_risk(), *self.failed_by],
                       upload_pending=upload_pending_command(s.url, s.url_source))

    def summary(self) -> list[str]:
        return self.summary_input().lines()

    def write_outputs(self, exitstatus: int) -> None:
        """The files asked for: --phoenix-results and the markdown summary."""
        from .._report.outputs import write_files

        self.written += write_files(self.settings.results, self.settings.summary_md, self.rows,
                                    self.summary_input(), exitstatus)
