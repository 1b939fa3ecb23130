"""The two runs that run no tests: --phoenix-upload-pending (the journal's leftovers into
their experiments) and --phoenix-regate (an experiment already in Phoenix, decided anew).
Both start from pytest_cmdline_main, before pytest_configure, with a session of their own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._session import case_id

if TYPE_CHECKING:
    from ._session import PhoenixEvalsSession


def _write(line: str) -> None:
    print(line, flush=True)  # before pytest_configure: there is no terminal reporter yet


def upload_pending(session: PhoenixEvalsSession) -> int:
    """--phoenix-upload-pending: post what the journal kept; the exit status (0 when
    nothing is left)."""
    from ._run.sinks.journal import journal_dir

    directory = journal_dir(session.config.rootpath)
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if not files:
        _write(f"phoenix-evals: nothing pending in {directory}")
        return 0
    from ._phoenix.gateway import PhoenixError

    try:
        session.gateway.dataset_names()  # reachable, and the key works
    except PhoenixError as exc:
        raise pytest.UsageError(str(exc)) from None
    uploaded, problems, experiments = session.engine.run(_upload_files(session, files))
    for url in sorted(experiments):
        _write(f"phoenix-evals: uploaded into {url}")
    _write(f"phoenix-evals: {uploaded} pending case(s) uploaded"
           + (f"; {len(problems)} problem(s):" if problems else ""))
    for problem in problems[:20]:
        _write(f"  {problem}")
    left = sorted(str(f) for f in files if f.exists())
    if left:
        _write(f"phoenix-evals: still pending in {', '.join(left)}")
    return 1 if left else 0


async def _upload_files(session: PhoenixEvalsSession, files: Sequence[Path]
                        ) -> tuple[int, list[str], set[str]]:
    import asyncio

    from ._phoenix.gateway import PhoenixError
    from ._run.sinks.journal import Journal, pending_cases, post_case

    uploaded, problems, experiments = 0, [], set()
    slots = asyncio.Semaphore(8)
    async with session.gateway.async_http() as http:
        for path in files:
            records = list(pending_cases(path))
            journal = Journal(path)
            journal.cases = len(records)

            async def one(record: dict[str, Any]) -> None:
                nonlocal uploaded
                async with slots:
                    try:
                        _, trouble = await session.gateway.acall(
                            f"uploading case {record['key']}",
                            lambda: post_case(http, record))
                    except PhoenixError as exc:
                        problems.append(str(exc))
                        return
                if trouble:
                    problems.extend(f"{record['key']}: {t}" for t in trouble)
                    return
                journal.mark_done(record["key"])
                experiments.add(record["experiment"]["url"])
                uploaded += 1

            await asyncio.gather(*(one(r) for r in records))
            journal.close()  # deleted once every case in it is done
    return uploaded, problems, experiments


def regate(session: PhoenixEvalsSession) -> int:
    """--phoenix-regate: judge an experiment already in Phoenix by this command line's
    gates, verdict rules and baseline; print the summary; the exit status."""
    from ._core.baseline import experiment_runs, resolve, results_of, rules_of
    from ._phoenix.gateway import PhoenixError
    from ._core.types import Case

    spec = session.settings.regate
    assert spec is not None
    try:
        experiment = session.gateway.experiment(spec)
        if experiment is None:
            if not session.settings.datasets:
                raise PhoenixError(f"no experiment with id {spec!r} in "
                                   f"{session.gateway.where()}; to find one by name, add "
                                   f"--phoenix-dataset=NAME")
            found = resolve(session.gateway, spec, session.dataset(session.settings.datasets[0]))
            experiment = session.gateway.experiment(found["id"])
            session.forget_datasets()  # loaded again below, at the experiment's own version
        if experiment is None:
            raise PhoenixError(f"experiment {spec!r} vanished while being read")
        names = {i: n for n, i in session.gateway.dataset_names().items()}
        dataset = session.dataset(names[experiment["dataset_id"]],
                                  experiment["dataset_version_id"],
                                  (experiment.get("metadata") or {}).get("splits") or ())
        runs = experiment_runs(session.gateway, experiment["id"])
    except PhoenixError as exc:
        raise pytest.UsageError(f"--phoenix-regate: {exc}") from None
    if session.settings.baseline:
        session.load_baseline(dataset, exclude=[experiment["id"]])
    rules = rules_of(session.evaluators(dataset))
    session.results = results_of(runs, dataset, rules, session.settings.thresholds)
    expected = [Case(e, case_id(e, r), r) for e in dataset.examples
                for r in range(1, int(experiment.get("repetitions") or 1) + 1)]
    passed = session.apply_gates(expected)
    from ._run.sinks.experiment import Experiment, UploadReport

    session.upload_report = UploadReport(experiments=[Experiment(
        id=experiment["id"], dataset=dataset,
        url=session.gateway.experiment_url(dataset.id, experiment["id"]))])
    steady = session.compare_with_baselines()
    _write(f"phoenix-evals: regating experiment {experiment.get('name')!r} "
           f"({experiment['id']}) with {len(session.results)} runs; no task or judge called")
    missing = len(expected) - len(session.results)
    for line in session.summary():
        _write(line)
    if missing > 0 and passed is None:
        _write(f"{missing} case(s) of the dataset version have no run in this experiment")
    ok = (passed if passed is not None else
          (missing <= 0 and all(r.passed for r in session.results)))
    return 0 if ok and steady is not False else 1
