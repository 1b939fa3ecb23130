"""What pytest collects and runs: a collector per group of the mode, an item per case, and what
the fixtures of the fixture style (``phoenix_example``, ``phoenix_evaluate``) do.

Imported once the plugin is used (the fixtures themselves are declared in ``plugin.py``, where
pytest finds them, and call in here). The items talk to the session through :class:`RunsCases`,
so this module does not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from ._core.repeat import Repeated
    from ._core.types import Case, CaseResult, Example, Group
    from ._evaluators.protocol import Evaluator
    from ._modes.base import CasePlan
    from ._run.runner import Job
    from ._settings import Settings

_STARTED = pytest.StashKey[datetime]()
_EVALUATED = pytest.StashKey[bool]()
_RESULT = pytest.StashKey["list[CaseResult]"]()
#: The start of the node id of every group's collector and so of each of its cases.
CASE_PREFIX = "phoenix:"


class QuietReports:
    """pytest's terminal reporter keeps every report to the end of the run, each case's passed
    setup and teardown among them (its ``""`` category), though it shows nothing of one that
    captured nothing: about 1.4 KB a case, which a run of thousands of spans keeps for as many
    cases. Such a report of a case is let go as soon as the reporter has taken it. Not used
    under ``--durations``, which reads every kept report's duration."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._kept: list[Any] | None = None

    @pytest.hookimpl(trylast=True)  # after the terminal reporter has added it
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or not report.passed or report.sections or \
                not report.nodeid.startswith(CASE_PREFIX):
            return
        if self._kept is None:
            reporter = self._config.pluginmanager.get_plugin("terminalreporter")
            if reporter is None:
                return
            self._kept = reporter.stats.setdefault("", [])
        if self._kept and self._kept[-1] is report:
            self._kept.pop()


class RunsCases(Protocol):
    """What the items and fixtures need of the session."""

    settings: Settings

    def plans(self, group: Group) -> list[CasePlan]: ...

    def run(self, job: Job) -> list[CaseResult]: ...

    def experiment_url(self, group: Group | None) -> str | None: ...

    def evaluators(self, group: Group, marker: Sequence[Any] = ()) -> list[Evaluator]: ...

    def evaluate_output(self, case: Case, output: Any, evaluators: Sequence[Evaluator],
                        start: datetime) -> CaseResult: ...

    def record_error(self, case: Case, error: str, start: datetime | None) -> None: ...


class CaseFailed(Exception):
    def __init__(self, result: CaseResult | Repeated) -> None:
        super().__init__(result.case_id if not hasattr(result, "case") else result.case.case_id)
        self.result = result


class GroupCollector(pytest.Collector):
    """One group of the mode (a dataset given with --phoenix-dataset, a golden set, a
    project's spans): an item per planned case."""

    def __init__(self, *, group: Group, state: RunsCases, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group = group
        self.state = state

    def collect(self) -> list[pytest.Item]:
        from ._core.errors import UsageProblem

        try:
            plans = self.state.plans(self.group)
        except UsageProblem as exc:
            raise self.CollectError(str(exc)) from None
        return [CaseItem.from_parent(self, name=plan.case.case_id, case=plan.case,
                                     task=plan.task, evaluators=plan.evaluators,
                                     output=plan.output, prepare=plan.prepare,
                                     state=self.state)
                for plan in plans]


class CaseItem(pytest.Item):
    """One dataset example run through the task and every evaluator (or one span, whose
    output is already there, through the evaluators it still needs)."""

    def __init__(self, *, case: Case, task: Callable[..., Any] | None,
                 evaluators: list[Evaluator], state: RunsCases, output: Any = None,
                 prepare: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.case = case
        self.task = task
        self.evaluators = evaluators
        self.output = output
        self.prepare = prepare

    @property
    def job(self) -> Job:
        from ._run.runner import Job

        return Job(self.nodeid, self.case, self.task, self.evaluators, output=self.output,
                   prepare=self.prepare)

    def runtest(self) -> None:
        state = self.state
        results = state.run(self.job)
        self.stash[_RESULT] = results
        if state.settings.repetitions > 1:
            from ._core.repeat import Repeated

            settings = state.settings
            repeated = Repeated(results, settings.pass_rule,
                                settings.repetitions if settings.repetitions_auto else None)
            if writes_junit(self):
                self.user_properties += [
                    ("phoenix.stability", repeated.stability),
                    ("phoenix.runs_passed", f"{repeated.passes}/{len(results)}")]
            for result in results:
                record_properties(self, result, state)
            if not repeated.passed:
                raise CaseFailed(repeated)
            return
        [result] = results
        record_properties(self, result, state)
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if not isinstance(excinfo.value, CaseFailed):
            return super().repr_failure(excinfo, style)
        from ._core.repeat import Repeated
        from ._core.secrets import redact
        from ._report.case import failure_lines, repeated_failure_lines

        result = excinfo.value.result
        if isinstance(result, Repeated):
            return redact("\n".join(repeated_failure_lines(result)))
        lines = "\n".join(failure_lines(result))
        if result.exception is None:
            return lines
        task_traceback = super().repr_failure(
            pytest.ExceptionInfo.from_exception(result.exception), style)
        # Plain text, so that a key in the task's exception (or its locals) can be hidden.
        return f"{lines}\n\n{redact(str(task_traceback))}"

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.case.group.label}[{self.case.case_id}]"


def case_of(item: pytest.Item) -> Case | None:
    """The case a test function of the fixture style runs on (None for other items)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("phoenix_example") if callspec is not None else None


def record_properties(item: pytest.Item, result: CaseResult, state: RunsCases) -> None:
    """Labels, scores, verdicts and links as the item's user properties (JUnit XML)."""
    if not writes_junit(item):
        return
    from ._report.outputs import junit_properties

    url = state.experiment_url(result.case.group)
    item.user_properties.extend(junit_properties(result, url))


def writes_junit(item: pytest.Item) -> bool:
    """Whether the run writes JUnit XML (``--junitxml``, given to xdist's workers too), the
    only reader of the properties. Without it none are kept: pytest holds every item's
    properties in its reports to the end, about 1 KB a case with two judges (issue 28)."""
    return bool(getattr(item.config.option, "xmlpath", None))


def example_for(request: pytest.FixtureRequest) -> Example:
    """``phoenix_example``: the example of this test's case."""
    case: Case = request.param
    request.node.stash[_STARTED] = datetime.now(UTC)
    return case.example


def evaluate_for(request: pytest.FixtureRequest, state: RunsCases,
                 marker: Sequence[Any]) -> Callable[[Any], CaseResult]:
    """``phoenix_evaluate``: evaluate, record and judge this test's own output (with the
    ``marker``'s evaluators)."""
    from ._core.errors import UsageProblem

    node = request.node
    case: Case = node.callspec.params["phoenix_example"]
    try:
        evaluators = state.evaluators(case.group, marker)
    except UsageProblem as exc:
        raise pytest.UsageError(str(exc)) from None

    def evaluate(output: Any) -> CaseResult:
        __tracebackhide__ = True
        from ._report.case import failure_lines

        node.stash[_EVALUATED] = True
        result = state.evaluate_output(case, output, evaluators, node.stash[_STARTED])
        record_properties(node, result, state)
        if not result.passed:
            pytest.fail("\n".join(failure_lines(result)), pytrace=False)
        return result

    return evaluate


def after_report(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport,
                 state: RunsCases) -> None:
    """Once pytest reported a case: its output may go; a test of the fixture style that
    failed before it handed its output over is recorded with the error."""
    case = case_of(item)
    if call.when == "call" and (case is not None or isinstance(item, CaseItem)):
        # (travels with xdist; only the call's report is read, pytest keeps all three)
        report.phoenix_case = True  # type: ignore[attr-defined]
    if call.when == "call" and _RESULT in item.stash:  # the failure text is written by now
        for result in item.stash[_RESULT]:
            result.mark(reported=True)
        del item.stash[_RESULT]
    if (case is not None and call.when == "call" and report.failed
            and not item.stash.get(_EVALUATED, False) and call.excinfo is not None):
        # The test failed before it handed its output to phoenix_evaluate: record the run
        # with the error so that the experiment still has one run per case.
        error = f"{call.excinfo.type.__name__}: {call.excinfo.value}"
        state.record_error(case, error, item.stash.get(_STARTED, None))
