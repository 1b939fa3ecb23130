"""pytest hooks; thin: each hook fetches the session and calls it.

Loaded by pytest in every run where the package is installed (entry point ``pytest11``), so this
module imports only pytest, the standard library and our own light modules. Phoenix, the engine
and the libraries behind them load only once a dataset is requested.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from ._options import Settings, add_options, resolve_settings

if TYPE_CHECKING:
    from ._core.types import CaseResult, Example
    from ._session import PhoenixEvalsSession

SESSION_KEY = pytest.StashKey["PhoenixEvalsSession"]()
MARKER = "phoenix_evals"
_SETTINGS = pytest.StashKey[Settings]()
_SESSION_PLUGIN = "phoenix-evals-session"
_XDIST_PLUGIN = "phoenix-evals-xdist"
_QUIET_PLUGIN = "phoenix-evals-quiet-reports"


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
    config.stash[_SETTINGS] = settings
    if settings.datasets or settings.project:
        activate(config)
    if _distributes(config):
        from ._xdist import XDistPlugin

        config.pluginmanager.register(XDistPlugin(config, settings, activate, _active),
                                      _XDIST_PLUGIN)


@contextmanager
def _usage() -> Iterator[None]:
    """The boundary: a problem the user must fix, said by the layers below as
    ``UsageProblem``, is pytest's usage error here."""
    from ._core.errors import UsageProblem

    try:
        yield
    except UsageProblem as exc:
        raise pytest.UsageError(str(exc)) from None


def _distributes(config: pytest.Config) -> bool:
    """pytest-xdist's controller of a distributed run (-n, --dist)."""
    return (config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput")
            and getattr(config.option, "dist", "no") != "no")


def activate(config: pytest.Config) -> PhoenixEvalsSession:
    """The session, built and registered the first time a dataset is asked for (an option,
    or a test requesting ``phoenix_example``); until then the plugin costs nothing."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        from ._run.runner import import_ahead
        from ._session import PhoenixEvalsSession

        import_ahead()  # before any thread of the run starts (see import_ahead)
        session = config.stash[SESSION_KEY] = PhoenixEvalsSession(config, config.stash[_SETTINGS])
        config.pluginmanager.register(session, _SESSION_PLUGIN)
        if getattr(config.option, "durations", None) is None:
            from ._items import QuietReports

            config.pluginmanager.register(QuietReports(config), _QUIET_PLUGIN)
        _sigterm_as_interrupt(config)
    return session


def _sigterm_as_interrupt(config: pytest.Config) -> None:
    """SIGTERM (what a CI job's timeout sends) stops the run as Ctrl-C does: what finished is
    recorded, the uploads are waited for (bounded) and the summary says what is pending.
    Only where nobody else handles SIGTERM, and only in the main thread; undone at the end."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(restore)


def settings_of(config: pytest.Config) -> Settings:
    return config.stash[_SETTINGS]


def _active(config: pytest.Config) -> PhoenixEvalsSession | None:
    return config.stash.get(SESSION_KEY, None)


def _session(config: pytest.Config) -> PhoenixEvalsSession:
    return config.stash[SESSION_KEY]


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        del config.stash[SESSION_KEY]
    for name in (_SESSION_PLUGIN, _XDIST_PLUGIN, _QUIET_PLUGIN):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin, name)


@pytest.fixture
def phoenix_example(request: pytest.FixtureRequest) -> Example:
    """The dataset example this test case runs on (``.input``, ``.reference``, ``.metadata``)."""
    from ._items import example_for

    return example_for(request)


@pytest.fixture
def phoenix_evaluate(request: pytest.FixtureRequest,
                     phoenix_example: Example) -> Callable[[Any], CaseResult]:
    """Evaluate the output of this test's own call of the task, record it, fail if it fails.

    ``phoenix_evaluate(output)`` runs the dataset's evaluators (and the marker's), uploads the
    run, and fails the test with the same report as a dataset case; it returns the result.
    """
    from ._items import evaluate_for

    marker = request.node.get_closest_marker(MARKER)
    return evaluate_for(request, _session(request.config),
                        marker.kwargs.get("evaluators", ()) if marker else ())


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--phoenix-upload-pending, --phoenix-regate and --phoenix-corrections: runs that run no
    tests (this hook comes before pytest_configure: the session here is a short-lived one)."""
    settings = config.stash[_SETTINGS] = resolve_settings(config)
    if not settings.upload_pending and not settings.regate and not settings.corrections:
        return None
    from ._run.runner import import_ahead
    from ._session import PhoenixEvalsSession

    import_ahead()
    state = PhoenixEvalsSession(config, settings, command=True)
    try:
        with _usage():
            return state.command()
    finally:
        state.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    state = _active(config)
    if state is None and _client_dataset_key(config):
        # The ini key of arize-phoenix-client's own plugin, listed beside ours in --help:
        # set alone it runs nothing of this plugin, and pytest says only "collected 0 items".
        return ("phoenix-evals: the ini file sets phoenix_dataset, which is arize-phoenix-"
                "client's plugin's key (it uploads tests as a dataset); to run a dataset's "
                "examples as tests with pytest-phoenix-evals, set phoenix_evals_dataset")
    if state is None or not (state.settings.datasets or state.settings.project):
        return None
    with _usage():
        return state.header()


def _client_dataset_key(config: pytest.Config) -> bool:
    """The ini file sets ``phoenix_dataset`` (registered by arize-phoenix-client's plugin)."""
    try:
        return bool(config.getini("phoenix_dataset"))
    except (ValueError, KeyError):  # the client's plugin is not loaded: the key is unknown
        return False


def pytest_collection(session: pytest.Session) -> None:
    state = _active(session.config)
    if state is not None:
        with _usage():
            state.mode.prepare()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "phoenix_example" not in metafunc.fixturenames:
        return
    state = activate(metafunc.config)
    marker = metafunc.definition.get_closest_marker(MARKER)
    specs = list(dict.fromkeys(state.settings.datasets))
    if not specs and marker is not None and marker.kwargs.get("dataset"):
        specs = [marker.kwargs["dataset"]]
    if not specs:
        raise pytest.Collector.CollectError(
            f"{metafunc.definition.name} requests phoenix_example but names no dataset: add "
            f"@pytest.mark.{MARKER}(dataset='NAME') or run with --phoenix-dataset=NAME")
    from ._core.errors import UsageProblem
    from ._phoenix.http import PhoenixError

    cases, ids = [], []
    for spec in specs:
        try:
            group = state.test_group(spec, metafunc.definition.nodeid)
        except (PhoenixError, UsageProblem) as exc:
            raise pytest.Collector.CollectError(str(exc)) from None
        for case in state.cases(group):
            cases.append(case)
            ids.append(case.case_id if len(specs) == 1 else f"{spec}/{case.case_id}")
    metafunc.parametrize("phoenix_example", cases, ids=ids, indirect=True)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    state = _active(collector.config)
    if state is not None and isinstance(collector, pytest.Session) and report.passed:
        from ._items import CASE_PREFIX, GroupCollector

        with _usage():
            groups = state.groups()
        for group in groups:
            name = f"{CASE_PREFIX}{group.label}"
            report.result.append(GroupCollector.from_parent(
                collector, name=name, nodeid=name, group=group, state=state))
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    """--collect-only of a project's spans: how many judge calls a run would make."""
    state = _active(session.config)
    if state is not None and session.config.option.collectonly:
        line = state.mode.collect_only_line()
        if line:
            state.say(line)


# tryfirst: see every collected item before -k, -m or --lf deselect any of them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    state = _active(config)
    if state is None:
        return
    from ._items import case_of

    tested = {case.group.parent for item in items
              if (case := case_of(item)) is not None and case.group.parent}
    with _usage():
        state.mode.untested(tested)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Start the dataset cases ahead of pytest (--phoenix-concurrency), then stop what is left
    when pytest stops early. Under pytest-xdist each worker runs its share ahead when it was
    dealt it whole (ShareScheduling), else the cases it is given, one by one."""
    state = _active(session.config)
    if state is None:
        return (yield)
    items = _items_run_ahead(session)
    if items:
        from ._items import CaseItem

        # A worker runs its share; the selection (for a partial run's note) is every item.
        state.start([item.job for item in items if isinstance(item, CaseItem)],
                    selected=[item.job for item in session.items if isinstance(item, CaseItem)])
    try:
        return (yield)
    finally:
        state.stop()


def _items_run_ahead(session: pytest.Session) -> list[pytest.Item]:
    """The items this process runs, when it knows them all before running any."""
    config = session.config
    if config.option.collectonly:
        return []
    if _runs_items_itself(config):
        return list(session.items)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("phoenix_evals_shares"):
        from ._xdist import my_share

        return my_share(workerinput, session.items)
    return []


def _runs_items_itself(config: pytest.Config) -> bool:
    """False on pytest-xdist's controller (workers run the items) and on its workers (each is
    handed items one at a time, so it cannot start them ahead)."""
    if hasattr(config, "workerinput"):
        return False
    option = config.option
    return getattr(option, "dist", "no") == "no" and not getattr(option, "numprocesses", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    state = _active(item.config)
    if state is not None:
        from ._items import after_report

        after_report(item, call, report, state)
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, str] | None:
    """--phoenix-only-failures: a passing case prints nothing (not even its dot)."""
    if report.when == "call" and report.passed and getattr(report, "phoenix_case", False) and \
            config.stash[_SETTINGS].only_failures:
        return "passed", "", ""
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _active(session.config)
    if state is None:
        return
    state.close()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: results to the controller
        if state.outcome.results:
            from ._run.handover import RESULTS

            workeroutput[RESULTS] = state.for_controller()
        return
    from ._items import CaseItem, case_of

    expected = [run for item in session.items if isinstance(item, CaseItem)
                for run in state.runs_of(item.case)]
    expected += [case for item in session.items if (case := case_of(item)) is not None]
    # pytest returns session.exitstatus as it is after this hook.
    with _usage():
        session.exitstatus = state.finish(expected, session.exitstatus)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    state = _active(terminalreporter.config)
    if state is None:
        return
    lines = state.summary()
    if lines and terminalreporter.config.get_verbosity() > -2:
        terminalreporter.write_sep("=", "phoenix evals")
        for line in lines:
            terminalreporter.write_line(line)
