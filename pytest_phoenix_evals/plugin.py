"""pytest hooks, fixtures and items; thin: each hook fetches the session and calls it.

Loaded by pytest in every run where the package is installed (entry point ``pytest11``), so this
module imports only pytest, the standard library and our own light modules. Phoenix, the engine
and the libraries behind them load only once a dataset is requested.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from ._options import Settings, add_options, resolve_settings
from ._core.repeat import Repeated
from ._session import PhoenixEvalsSession

if TYPE_CHECKING:
    from ._core.types import Case, CaseResult, Example

SESSION_KEY = pytest.StashKey[PhoenixEvalsSession]()
_SETTINGS = pytest.StashKey[Settings]()
_STARTED = pytest.StashKey[datetime]()
_EVALUATED = pytest.StashKey[bool]()
_RESULT = pytest.StashKey["list[CaseResult]"]()
MARKER = "phoenix_evals"
TASK_EXPERIMENT = "task"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(dataset=None, evaluators=()): run this test once per example of a Phoenix "
        "dataset (when no --phoenix-dataset is given) with extra code evaluators; the test "
        "requests the phoenix_example and phoenix_evaluate fixtures.",
    )
    # Resolved in pytest_cmdline_main already, except in an xdist worker (which has none).
    settings = config.stash.get(_SETTINGS, None) or resolve_settings(config)
    config.stash[SESSION_KEY] = PhoenixEvalsSession(config, settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        del config.stash[SESSION_KEY]


def _session(config: pytest.Config) -> PhoenixEvalsSession:
    return config.stash[SESSION_KEY]


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--phoenix-upload-pending: upload what earlier sessions kept, and run nothing else
    (this hook comes before pytest_configure: the session here is a short-lived one)."""
    settings = config.stash[_SETTINGS] = resolve_settings(config)
    if not settings.upload_pending and not settings.regate:
        return None
    from ._commands import regate, upload_pending

    state = PhoenixEvalsSession(config, settings)
    try:
        return upload_pending(state) if settings.upload_pending else regate(state)
    finally:
        state.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = _session(config).settings
    if not settings.datasets:
        return None
    upload = ("off (--phoenix-offline)" if settings.offline else
              "off (--phoenix-no-upload)" if settings.no_upload else "on")
    return (f"phoenix-evals: dataset(s) {', '.join(settings.datasets)}; "
            f"{_session(config).gateway.where()}; upload {upload}")


def pytest_collection(session: pytest.Session) -> None:
    _session(session.config).preload()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "phoenix_example" not in metafunc.fixturenames:
        return
    state = _session(metafunc.config)
    marker = metafunc.definition.get_closest_marker(MARKER)
    names = list(state.settings.datasets)
    if not names and marker is not None and marker.kwargs.get("dataset"):
        names = [marker.kwargs["dataset"]]
    if not names:
        raise pytest.Collector.CollectError(
            f"{metafunc.definition.name} requests phoenix_example but names no dataset: add "
            f"@pytest.mark.{MARKER}(dataset='NAME') or run with --phoenix-dataset=NAME")
    from ._phoenix.gateway import PhoenixError

    cases: list[Case] = []
    ids: list[str] = []
    for name in names:
        try:
            dataset = state.dataset(name)
        except PhoenixError as exc:
            raise pytest.Collector.CollectError(str(exc)) from None
        for case in state.cases(dataset):
            cases.append(case)
            ids.append(case.case_id if len(names) == 1 else f"{dataset.name}/{case.case_id}")
    metafunc.parametrize("phoenix_example", cases, ids=ids, indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if isinstance(collector, pytest.Session) and report.passed:
        state = _session(collector.config)
        for name in state.settings.datasets:
            dataset = state.dataset(name)
            report.result.append(DatasetCollector.from_parent(
                collector, name=f"phoenix:{dataset.name}", nodeid=f"phoenix:{dataset.name}",
                dataset_name=name))
    return report


# tryfirst: see every collected item before -k, -m or --lf deselect any of them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    state = _session(config)
    tested = {case.example.dataset_id for item in items if (case := _case_of(item)) is not None}
    for name in state.settings.datasets:
        dataset = state.dataset(name)
        if dataset.id not in tested and state.task(dataset.name) is None:
            raise pytest.UsageError(
                f"--phoenix-dataset {name!r} needs a task to run: pass "
                f"--phoenix-task=module:function, implement pytest_phoenix_evals_task in "
                f"conftest.py, or write a test that requests the phoenix_example fixture")


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Start the dataset cases ahead of pytest (--phoenix-concurrency), then stop what is left
    when pytest stops early. Under pytest-xdist each worker runs the cases it is given."""
    state = _session(session.config)
    if _runs_items_itself(session.config) and not session.config.option.collectonly:
        state.run_ahead([(item.nodeid, item.case, item.task, item.evaluators)
                         for item in session.items if isinstance(item, CaseItem)],
                        TASK_EXPERIMENT)
    try:
        return (yield)
    finally:
        state.stop_ahead()


def _runs_items_itself(config: pytest.Config) -> bool:
    """False on pytest-xdist's controller (workers run the items) and on its workers (each is
    handed items one at a time, so it cannot start them ahead)."""
    if hasattr(config, "workerinput"):
        return False
    option = config.option
    return getattr(option, "dist", "no") == "no" and not getattr(option, "numprocesses", None)


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("phoenix_example") if callspec is not None else None


class CaseFailed(Exception):
    def __init__(self, result: CaseResult | Repeated) -> None:
        super().__init__(result.case_id if isinstance(result, Repeated) else
                         result.case.case_id)
        self.result = result


class DatasetCollector(pytest.Collector):
    """One dataset given with --phoenix-dataset: a case per example, when there is a task."""

    def __init__(self, *, dataset_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset_name = dataset_name

    def collect(self) -> list[pytest.Item]:
        state = _session(self.config)
        dataset = state.dataset(self.dataset_name)
        try:
            task = state.task(dataset.name)
            if task is None:  # tests requesting phoenix_example may run it; checked later
                return []
            evaluators = state.evaluators(dataset)
        except pytest.UsageError as exc:
            raise self.CollectError(str(exc)) from None
        return [CaseItem.from_parent(self, name=case.case_id, case=case, task=task,
                                     evaluators=evaluators)
                for case in state.cases(dataset)]


class CaseItem(pytest.Item):
    """One dataset example run through the task and every evaluator."""

    def __init__(self, *, case: Case, task: Callable[..., Any], evaluators: list[Any],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.task = task
        self.evaluators = evaluators

    def runtest(self) -> None:
        state = _session(self.config)
        results = state.run_repeated(self.case, self.task, self.evaluators, TASK_EXPERIMENT,
                                     self.nodeid)
        self.stash[_RESULT] = results
        if state.settings.repetitions > 1:
            repeated = Repeated(results, state.settings.pass_rule)
            self.user_properties += [("phoenix.stability", repeated.stability),
                                     ("phoenix.runs_passed", f"{repeated.passes}/{len(results)}")]
            for result in results:
                _record_properties(self, result, TASK_EXPERIMENT)
            if not repeated.passed:
                raise CaseFailed(repeated)
            return
        [result] = results
        _record_properties(self, result, TASK_EXPERIMENT)
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if not isinstance(excinfo.value, CaseFailed):
            return super().repr_failure(excinfo, style)
        from ._report.summary import failure_lines

        result = excinfo.value.result
        if isinstance(result, Repeated):
            from ._core.repeat import repeated_failure_lines
            from ._core.secrets import redact

            return redact("\n".join(repeated_failure_lines(result)))
        lines = "\n".join(failure_lines(result))
        if result.exception is None:
            return lines
        from ._core.secrets import redact

        task_traceback = super().repr_failure(
            pytest.ExceptionInfo.from_exception(result.exception), style)
        # Plain text, so that a key in the task's exception (or its locals) can be hidden.
        return f"{lines}\n\n{redact(str(task_traceback))}"

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.case.example.dataset_name}[{self.case.case_id}]"


@pytest.fixture
def phoenix_example(request: pytest.FixtureRequest) -> Example:
    """The dataset example this test case runs on (``.input``, ``.reference``, ``.metadata``)."""
    case: Case = request.param
    request.node.stash[_STARTED] = datetime.now(timezone.utc)
    return case.example


@pytest.fixture
def phoenix_evaluate(request: pytest.FixtureRequest,
                     phoenix_example: Example) -> Callable[[Any], CaseResult]:
    """Evaluate the output of this test's own call of the task, record it, fail if it fails.

    ``phoenix_evaluate(output)`` runs the dataset's evaluators (and the marker's), uploads the
    run, and fails the test with the same report as a dataset case; it returns the result.
    """
    state = _session(request.config)
    node = request.node
    case: Case = node.callspec.params["phoenix_example"]
    marker = node.get_closest_marker(MARKER)
    dataset = state.loaded(case.example.dataset_id)
    evaluators = state.evaluators(dataset, marker.kwargs.get("evaluators", ()) if marker else ())

    def evaluate(output: Any) -> CaseResult:
        __tracebackhide__ = True
        from ._report.summary import failure_lines

        node.stash[_EVALUATED] = True
        result = state.evaluate_output(case, output, evaluators, _experiment_key(node),
                                       node.stash[_STARTED])
        _record_properties(node, result, _experiment_key(node))
        if not result.passed:
            pytest.fail("\n".join(failure_lines(result)), pytrace=False)
        return result

    return evaluate


def _record_properties(item: pytest.Item, result: CaseResult, experiment_key: str) -> None:
    """Labels, scores, verdicts and links as the item's user properties (JUnit XML)."""
    from ._report.outputs import junit_properties

    url = _session(item.config).experiment_url(result, experiment_key)
    item.user_properties.extend(junit_properties(result, url))


def _experiment_key(item: pytest.Item) -> str:
    return item.nodeid.split("[", 1)[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    case = _case_of(item)
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
        _session(item.config).record_error(case, error, _experiment_key(item),
                                           item.stash.get(_STARTED, None))
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, str] | None:
    """--phoenix-only-failures: a passing case prints nothing (not even its dot)."""
    if report.when == "call" and report.passed and getattr(report, "phoenix_case", False) and \
            _session(config).settings.only_failures:
        return "passed", "", ""
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _session(session.config)
    state.close()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: results to the controller
        if state.results:
            from ._session import XDIST_RESULTS

            workeroutput[XDIST_RESULTS] = state.results_for_controller()
        return
    expected = [run for item in session.items if isinstance(item, CaseItem)
                for run in state.repetitions_of(item.case)]
    expected += [case for item in session.items if (case := _case_of(item)) is not None]
    passed = state.apply_gates(expected)
    steady = state.compare_with_baselines()
    # With gates the exit status follows them (pytest returns session.exitstatus as it is
    # after this hook); an interrupt, an internal or usage error keeps its own. A regression
    # beyond --phoenix-max-regression fails the session either way.
    decided = session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                                     pytest.ExitCode.NO_TESTS_COLLECTED)
    if passed is not None and decided:
        session.exitstatus = pytest.ExitCode.OK if passed else pytest.ExitCode.TESTS_FAILED
    if steady is False and decided:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    state.write_outputs(int(session.exitstatus))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist's controller, before a worker starts: share one experiment per dataset."""
    from ._session import XDIST_EXPERIMENTS

    experiments = _session(node.config).experiments_for_workers()
    if experiments:
        node.workerinput[XDIST_EXPERIMENTS] = experiments


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller, when a worker ends: take its results for the summary."""
    from ._session import XDIST_RESULTS

    parts = getattr(node, "workeroutput", {}).get(XDIST_RESULTS)
    if parts:
        _session(node.config).absorb(parts)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = _session(terminalreporter.config).summary()
    if lines:
        terminalreporter.write_sep("=", "phoenix evals")
        for line in lines:
            terminalreporter.write_line(line)
