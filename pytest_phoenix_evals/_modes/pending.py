"""--phoenix-upload-pending: what the journal kept because Phoenix could not take it, posted
now, each record into the experiment (or project) it was meant for; running it twice adds
nothing twice. A run that runs no tests. pytest-free."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from pathlib import Path

    from .context import Context


def upload_pending(ctx: Context) -> int:
    """--phoenix-upload-pending: post what the journal kept; the exit status (0 when
    nothing is left)."""
    from .._run.sinks.journal import journal_dir

    directory = journal_dir(ctx.host.rootpath)
    found = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if not found:
        ctx.say(f"phoenix-evals: nothing pending in {directory}")
        return 0
    # annotations-*: a project's span (trace) annotations; failures-*: failing spans meant
    # for a dataset; the rest: experiments. A file holding another kind's records (renamed,
    # or copied in by hand) is named and skipped.
    misplaced = [odd for f in found if (odd := _misplaced(f)) is not None]
    skipped = {path for path, _ in misplaced}
    files = [f for f in found if _kind(f) == "case" and f not in skipped]
    annotation_files = [f for f in found if _kind(f) == "annotations" and f not in skipped]
    from .._phoenix.http import PhoenixError

    try:
        ctx.gateway.dataset_names()  # reachable, and the key works
    except PhoenixError as exc:
        raise UsageProblem(str(exc)) from None
    from .._run.sinks.experiment import replay
    from .._run.sinks.pace import Pace

    pace = Pace()
    done = ctx.engine.run(replay(ctx.gateway, files, pace))
    uploaded, problems, experiments = done.uploaded, done.problems, done.experiments
    problems = [why for _, why in misplaced] + problems
    if (notice := pace.overload_notice()) is not None:
        ctx.say(f"phoenix-evals: {notice}")
    if annotation_files:
        from .._run.sinks.span_annotations import replay as replay_annotations

        written, more = ctx.engine.run(replay_annotations(ctx.traces, annotation_files))
        uploaded += written
        problems += more
        if written:
            ctx.say(f"phoenix-evals: span and trace annotations of {written} case(s) written "
                    f"to {ctx.gateway.where()}")
    # failures-*: failing spans meant for a dataset (--phoenix-add-failures-to).
    failure_files = [f for f in found if _kind(f) == "failure" and f not in skipped]
    if failure_files:
        from .._core.commands import upload_pending_command
        from .failures import replay as replay_failures

        added, more = replay_failures(ctx.traces, failure_files, upload_pending_command(
            ctx.settings.url, ctx.settings.url_source))
        uploaded += added.added
        problems += more
        for line in added.lines:
            ctx.say(f"phoenix-evals: {line}")
    for url in sorted(experiments):
        ctx.say(f"phoenix-evals: uploaded into {url}")
    ctx.say(f"phoenix-evals: {uploaded} pending case(s) uploaded"
           + (f"; {len(problems)} problem(s):" if problems else ""))
    for problem in problems[:20]:
        ctx.say(f"  {problem}")
    left = sorted(str(f) for f in found if f.exists())
    if left:
        ctx.say(f"phoenix-evals: still pending in {', '.join(left)}")
    return 1 if left else 0


#: What a journal file's records are, by the start of its name (else experiment results).
_KINDS = {"annotations-": ("annotations", "span or trace annotations"),
          "failures-": ("failure", "failing spans for a dataset")}


def _kind(path: Path) -> str:
    return next((kind for prefix, (kind, _) in _KINDS.items()
                 if path.name.startswith(prefix)), "case")


def _misplaced(path: Path) -> tuple[Path, str] | None:
    """A journal file whose records are not of the kind its name says: (the file, why it is
    skipped); None when it is what it says (or cannot be read: its replay says so)."""
    from .._run.sinks.journal import read_journal

    try:
        records, _ = read_journal(path)
    except OSError:
        return None
    wanted = _kind(path)
    odd = [record["type"] for record in records if record["type"] != wanted]
    if not odd:
        return None
    said = {kind: what for kind, what in _KINDS.values()} | {"case": "experiment results"}
    held = ", ".join(dict.fromkeys(said.get(kind, str(kind)) for kind in odd))
    return path, (f"{path}: holds {len(odd)} record(s) of {held}, but its name says "
                  f"{said[wanted]}: skipped and kept (a file of annotations is named "
                  f"annotations-<span|trace>-<project id>...jsonl, one of failing spans "
                  f"failures-<dataset>...jsonl)")
