"""The two runs that run no tests: --phoenix-upload-pending (the journal's leftovers into
their experiments) and --phoenix-regate (an experiment already in Phoenix, decided anew).
Both start from pytest_cmdline_main, before pytest_configure, with a session of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._session import PhoenixEvalsSession


def _write(line: str) -> None:
    print(line, flush=True)  # before pytest_configure: there is no terminal reporter yet


def upload_pending(session: PhoenixEvalsSession) -> int:
    """--phoenix-upload-pending: post what the journal kept; the exit status (0 when
    nothing is left)."""
    from ._run.sinks.journal import journal_dir

    directory = journal_dir(session.rootpath)
    found = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    # annotations-*: a project's span (trace) annotations; the rest: experiments.
    files = [f for f in found if not f.name.startswith("annotations-")]
    annotation_files = [f for f in found if f.name.startswith("annotations-")]
    if not found:
        _write(f"phoenix-evals: nothing pending in {directory}")
        return 0
    from ._phoenix.http import PhoenixError

    try:
        session.gateway.dataset_names()  # reachable, and the key works
    except PhoenixError as exc:
        raise pytest.UsageError(str(exc)) from None
    from ._run.sinks.experiment import replay
    from ._run.sinks.pace import Pace

    pace = Pace()
    done = session.engine.run(replay(session.gateway, files, pace))
    uploaded, problems, experiments = done.uploaded, done.problems, done.experiments
    if (notice := pace.overload_notice()) is not None:
        _write(f"phoenix-evals: {notice}")
    if annotation_files:
        from ._run.sinks.span_annotations import replay as replay_annotations

        written, more = session.engine.run(replay_annotations(session.traces, annotation_files))
        uploaded += written
        problems += more
        if written:
            _write(f"phoenix-evals: span and trace annotations of {written} case(s) written "
                   f"to {session.gateway.where()}")
    for url in sorted(experiments):
        _write(f"phoenix-evals: uploaded into {url}")
    _write(f"phoenix-evals: {uploaded} pending case(s) uploaded"
           + (f"; {len(problems)} problem(s):" if problems else ""))
    for problem in problems[:20]:
        _write(f"  {problem}")
    left = sorted(str(f) for f in found if f.exists())
    if left:
        _write(f"phoenix-evals: still pending in {', '.join(left)}")
    return 1 if left else 0


def _run_experiment(session: PhoenixEvalsSession) -> str:
    """--phoenix-regate=run: the experiment every shard of --phoenix-run-id recorded into."""
    from ._phoenix.http import PhoenixError

    if len(session.settings.datasets) != 1:
        raise PhoenixError("--phoenix-regate=run needs the run's dataset: one "
                           "--phoenix-dataset=NAME")
    from ._run.sinks.experiment import run_token

    assert session.settings.run_id is not None
    group = session.source.group(session.settings.datasets[0])
    token = run_token(session.settings.run_id, group)
    found = session.engine.run(session.gateway.aoldest_with_token(group.dataset_id, token))
    if found is None:
        raise PhoenixError(f"no experiment of run {session.settings.run_id!r} on dataset "
                           f"{group.dataset_name!r} in {session.gateway.where()}")
    return str(found["id"])


def regate(session: PhoenixEvalsSession) -> int:
    """--phoenix-regate: judge an experiment already in Phoenix by this command line's
    gates, verdict rules and baseline; print the summary; the exit status."""
    from ._core.baseline import results_of, rules_of
    from ._core.naming import case_id
    from ._core.types import Case
    from ._phoenix.http import PhoenixError
    from ._run.sinks.base import Destination, UploadReport

    if session.settings.project:
        from ._spans import regate_window

        return regate_window(session)
    spec = session.settings.regate
    assert spec is not None
    source = session.source
    try:
        if spec == "run" and session.settings.run_id:
            spec = _run_experiment(session)
        experiment = session.gateway.experiment(spec)
        if experiment is None:
            if not session.settings.datasets:
                raise PhoenixError(f"no experiment with id {spec!r} in "
                                   f"{session.gateway.where()}; to find one by name, add "
                                   f"--phoenix-dataset=NAME")
            first = source.group(session.settings.datasets[0])
            found = session.gateway.find_experiment(spec, first.dataset_id, first.dataset_name)
            experiment = session.gateway.experiment(found["id"])
            source.forget()  # loaded again below, at the experiment's own version
        if experiment is None:
            raise PhoenixError(f"experiment {spec!r} vanished while being read")
        names = {i: n for n, i in session.gateway.dataset_names().items()}
        group = source.load_at(names[experiment["dataset_id"]],
                               experiment["dataset_version_id"],
                               (experiment.get("metadata") or {}).get("splits") or ())
        runs = session.gateway.experiment_runs(experiment["id"])
    except PhoenixError as exc:
        raise pytest.UsageError(f"--phoenix-regate: {exc}") from None
    dataset = source.dataset(group)
    if session.settings.baseline:
        session.load_baseline(group, exclude=[experiment["id"]])
    rules = rules_of(session.evaluators(group))
    results = results_of(runs, dataset.examples, rules, session.settings.thresholds, group)
    expected = [Case(e, case_id(e, r), group, r) for e in dataset.examples
                for r in range(1, int(experiment.get("repetitions") or 1) + 1)]
    report = UploadReport(destinations=[Destination(
        group=group, id=experiment["id"],
        url=session.gateway.experiment_url(dataset.id, experiment["id"]))])
    session.take_results(results, report)
    passed = session.apply_gates(expected)
    steady = session.compare_with_baselines()
    _write(f"phoenix-evals: regating experiment {experiment.get('name')!r} "
           f"({experiment['id']}) with {len(results)} runs; no task or judge called")
    missing = len(expected) - len(results)
    for line in session.summary():
        _write(line)
    if missing > 0 and passed is None:
        _write(f"{missing} case(s) of the dataset version have no run in this experiment")
    ok = (passed if passed is not None else
          (missing <= 0 and all(r.passed for r in results)))
    return 0 if ok and steady is not False else 1
