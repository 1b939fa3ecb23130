"""What pytest collects and runs: a collector per command-line dataset, an item per case, and
what the fixtures of the fixture style (``phoenix_example``, ``phoenix_evaluate``) do.

Imported once a dataset is asked for (the fixtures themselves are declared in ``plugin.py``,
where pytest finds them, and call in here).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._core.repeat import Repeated
    from ._core.types import Case, CaseResult, Example, Group
    from ._evaluators.protocol import Evaluator
    from ._run.runner import Job
    from ._session import PhoenixEvalsSession

from .plugin import MARKER, SESSION_KEY

_STARTED = pytest.StashKey[datetime]()
_EVALUATED = pytest.StashKey[bool]()
_RESULT = pytest.StashKey["list[CaseResult]"]()


def session_of(config: pytest.Config) -> PhoenixEvalsSession:
    return config.stash[SESSION_KEY]


class CaseFailed(Exception):
    def __init__(self, result: CaseResult | Repeated) -> None:
        super().__init__(result.case_id if not hasattr(result, "case") else result.case.case_id)
        self.result = result


class DatasetCollector(pytest.Collector):
    """One dataset given with --phoenix-dataset: a case per example, when there is a task."""

    def __init__(self, *, group: Group, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group = group

    def collect(self) -> list[pytest.Item]:
        state = session_of(self.config)
        try:
            if state.benchmark is not None:  # no task: the judge judges the example's output
                judge = state.evaluators(self.group)
                return [CaseItem.from_parent(self, name=case.case_id, case=case, task=None,
                                             evaluators=judge, output=case.example.reference)
                        for case in state.benchmark.cases(self.group)]
            task = state.task(self.group)
            if task is None:  # tests requesting phoenix_example may run it; checked later
                return []
            evaluators = state.evaluators(self.group)
        except pytest.UsageError as exc:
            raise self.CollectError(str(exc)) from None
        return [CaseItem.from_parent(self, name=case.case_id, case=case, task=task,
                                     evaluators=evaluators)
                for case in state.cases(self.group)]


class SpanCollector(pytest.Collector):
    """--phoenix-project: a case per listed span (or trace), judged by the evaluators whose
    annotation it lacks."""

    def __init__(self, *, group: Group, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group = group

    def collect(self) -> list[pytest.Item]:
        state = session_of(self.config)
        source = state.spans
        try:
            state.evaluators(self.group)
        except pytest.UsageError as exc:
            raise self.CollectError(str(exc)) from None
        return [CaseItem.from_parent(self, name=case.case_id, case=case, task=None,
                                     evaluators=source.needed(case), output=source.output(case))
                for case in source.cases(self.group)]


class CaseItem(pytest.Item):
    """One dataset example run through the task and every evaluator (or one span, whose
    output is already there, through the evaluators it still needs)."""

    def __init__(self, *, case: Case, task: Callable[..., Any] | None,
                 evaluators: list[Evaluator], output: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.task = task
        self.evaluators = evaluators
        self.output = output

    @property
    def job(self) -> Job:
        from ._run.runner import Job

        return Job(self.nodeid, self.case, self.task, self.evaluators, output=self.output)

    def runtest(self) -> None:
        state = session_of(self.config)
        results = state.run(self.job)
        self.stash[_RESULT] = results
        if state.settings.repetitions > 1:
            from ._core.repeat import Repeated

            repeated = Repeated(results, state.settings.pass_rule)
            self.user_properties += [("phoenix.stability", repeated.stability),
                                     ("phoenix.runs_passed", f"{repeated.passes}/{len(results)}")]
            for result in results:
                record_properties(self, result)
            if not repeated.passed:
                raise CaseFailed(repeated)
            return
        [result] = results
        record_properties(self, result)
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


def record_properties(item: pytest.Item, result: CaseResult) -> None:
    """Labels, scores, verdicts and links as the item's user properties (JUnit XML)."""
    from ._report.outputs import junit_properties

    url = session_of(item.config).experiment_url(result.case.group)
    item.user_properties.extend(junit_properties(result, url))


def example_for(request: pytest.FixtureRequest) -> Example:
    """``phoenix_example``: the example of this test's case."""
    case: Case = request.param
    request.node.stash[_STARTED] = datetime.now(UTC)
    return case.example


def evaluate_for(request: pytest.FixtureRequest) -> Callable[[Any], CaseResult]:
    """``phoenix_evaluate``: evaluate, record and judge this test's own output."""
    state = session_of(request.config)
    node = request.node
    case: Case = node.callspec.params["phoenix_example"]
    marker = node.get_closest_marker(MARKER)
    evaluators = state.evaluators(case.group, marker.kwargs.get("evaluators", ()) if marker
                                  else ())

    def evaluate(output: Any) -> CaseResult:
        __tracebackhide__ = True
        from ._report.case import failure_lines

        node.stash[_EVALUATED] = True
        result = state.evaluate_output(case, output, evaluators, node.stash[_STARTED])
        record_properties(node, result)
        if not result.passed:
            pytest.fail("\n".join(failure_lines(result)), pytrace=False)
        return result

    return evaluate


def after_report(item: pytest.Item, call: pytest.CallInfo[None],
                 report: pytest.TestReport) -> None:
    """Once pytest reported a case: its output may go; a test of the fixture style that
    failed before it handed its output over is recorded with the error."""
    case = case_of(item)
    if case is not None or isinstance(item, CaseItem):
        report.phoenix_case = True  # type: ignore[attr-defined]  # (travels with xdist)
    if call.when == "call" and _RESULT in item.stash:  # the failure text is written by now
        for result in item.stash[_RESULT]:
            result.mark(reported=True)
        del item.stash[_RESULT]
    if (case is not None and call.when == "call" and report.failed
            and not item.stash.get(_EVALUATED, False) and call.excinfo is not None):
        # The test failed before it handed its output to phoenix_evaluate: record the run
        # with the error so that the experiment still has one run per case.
        error = f"{call.excinfo.type.__name__}: {call.excinfo.value}"
        session_of(item.config).record_error(case, error, item.stash.get(_STARTED, None))
