"""The commands the plugin prints for the user to run next, built so that each runs as printed:
arguments quoted for a POSIX shell, and the options of the command line that ran carried over
when the next command needs them too (the server, the judges).

Pure: no pytest, no Phoenix.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence

#: The plugin's options that take no value (``tests/test_docs.py`` checks them against the
#: option table): with ``--phoenix-NAME VALUE`` written apart, the others take the next
#: argument as their value.
FLAGS = frozenset({"set-baseline", "only-failures", "rejudge", "allow-code-evaluators", "cache",
                   "no-upload", "offline", "upload-pending"})

#: Options of production judging that a run of the regression dataset does without: which
#: spans to judge and where the failures go (the dataset holds them), and the files the
#: production run wrote (the next run must not overwrite them).
SPAN_ONLY = frozenset({"project", "spans", "since", "until", "sample", "max-spans", "target",
                       "rejudge", "reference", "add-failures-to", "shard", "claim-ttl",
                       "settle", "results", "summary-md"})


def pytest_command(*args: str) -> str:
    """``pytest ARGS``, each argument quoted for the shell when it needs it."""
    return " ".join(["pytest", *(shlex.quote(arg) for arg in args)])


def carried_options(command_line: Sequence[str], drop: Collection[str]) -> list[str]:
    """The ``--phoenix-*`` options of ``command_line`` (pytest's arguments), each with its
    value, except those named in ``drop`` (``since`` for ``--phoenix-since``). Anything else
    (pytest's own options, test paths, ``-k``) is left out: it belongs to the run that ran."""
    kept: list[str] = []
    args = list(command_line)
    at = 0
    while at < len(args):
        arg = args[at]
        at += 1
        if not arg.startswith("--phoenix-"):
            continue
        name, has_value, _ = arg.removeprefix("--phoenix-").partition("=")
        taken = [arg]
        if not has_value and name not in FLAGS and at < len(args):
            taken.append(args[at])  # --phoenix-NAME VALUE
            at += 1
        if name not in drop:
            kept += taken
    return kept


def server_options(url: str | None, url_source: str | None) -> list[str]:
    """``--phoenix-url=URL`` when the command line that ran named the server (the next
    command would otherwise go where the ini file or the environment point); nothing else."""
    return [f"--phoenix-url={url}"] if url and url_source == "--phoenix-url" else []


def upload_pending_command(url: str | None = None, url_source: str | None = None) -> str:
    """``pytest --phoenix-upload-pending``, to the server the run used."""
    return pytest_command("--phoenix-upload-pending", *server_options(url, url_source))
