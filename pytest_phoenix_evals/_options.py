"""Options: one definition each, resolved once into frozen :class:`Settings`.

Every option exists three ways: ``--phoenix-<name>`` on the command line, ``phoenix_evals_<name>``
in the ini file and ``PHOENIX_EVALS_<NAME>`` in the environment. The command line wins over the
ini file, the ini file over the environment. List options take several flags, one value per
line in the ini file, and comma-separated values in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from ._verdict import Threshold, parse_threshold

Kind = Literal["str", "list", "bool"]


@dataclass(frozen=True)
class Option:
    name: str
    kind: Kind
    help: str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--phoenix-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "phoenix_evals_" + self.name

    @property
    def env(self) -> str:
        return "PHOENIX_EVALS_" + self.name.upper()


OPTIONS = (
    Option("dataset", "list", "Run the examples of this Phoenix dataset as test cases "
           "(name or id; repeatable).", "NAME"),
    Option("task", "str", "The task under test, as module:function (sync or async). Without "
           "it, a pytest_phoenix_evals_task hook in conftest.py supplies the task.",
           "MODULE:FUNCTION"),
    Option("split", "list", "Only run examples in this dataset split (repeatable).", "SPLIT"),
    Option("dataset_version", "str", "Run this dataset version id (default: the latest).",
           "VERSION_ID"),
    Option("url", "str", "Phoenix base URL (default: arize-phoenix-client's environment "
           "variables: PHOENIX_ENDPOINT, PHOENIX_COLLECTOR_ENDPOINT, ...; then "
           "http://localhost:6006).", "URL"),
    Option("experiment_name", "str", "Name of the Phoenix experiment this run records "
           "(default: 'pytest <branch>@<commit>').", "NAME"),
    Option("threshold", "list", "Assert a score: NAME OP NUMBER with OP one of < <= > >= == "
           "!=, for example 'levenshtein_distance<=3' (repeatable).", "NAME<=X"),
    Option("no_upload", "bool", "Run everything locally; record no experiment in Phoenix."),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("phoenix-evals", "Phoenix dataset evaluation (pytest-phoenix-evals)")
    for option in OPTIONS:
        suffix = (f" Also ini '{option.dest}' and env {option.env}; the command line wins, "
                  f"then ini, then env.")
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", default=None, dest=option.dest,
                            help=option.help + suffix)
        else:
            group.addoption(option.flag, action="append" if option.kind == "list" else "store",
                            default=None, dest=option.dest, metavar=option.metavar,
                            help=option.help + suffix)
        parser.addini(option.dest, option.help, default=None,
                      type={"str": "string", "list": "linelist", "bool": "bool"}[option.kind])


@dataclass(frozen=True)
class Settings:
    """Every option, resolved; nothing else reads ``config.getoption`` for our options."""

    datasets: tuple[str, ...] = ()
    task: str | None = None
    splits: tuple[str, ...] = ()
    dataset_version: str | None = None
    url: str | None = None
    url_source: str | None = None
    experiment_name: str | None = None
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)
    no_upload: bool = False


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str | None]:
    """(value, where it came from) by precedence: command line, ini, environment."""
    value = config.getoption(option.dest)
    if value is not None:
        return value, option.flag
    value = config.getini(option.dest)
    if value not in (None, [], ""):
        return value, f"ini {option.dest}"
    raw = os.environ.get(option.env)
    if raw is None:
        return None, None
    source = f"env {option.env}"
    if option.kind == "list":
        return [part.strip() for part in raw.split(",") if part.strip()], source
    if option.kind == "bool":
        if raw.strip().lower() not in _TRUE | _FALSE:
            raise pytest.UsageError(f"{option.env}={raw!r} is not a boolean; use 1/0, "
                                    f"true/false, yes/no or on/off")
        return raw.strip().lower() in _TRUE, source
    return raw, source


def resolve_settings(config: pytest.Config) -> Settings:
    values: dict[str, Any] = {}
    sources: dict[str, str | None] = {}
    for option in OPTIONS:
        values[option.name], sources[option.name] = _resolve(config, option)
    thresholds: dict[str, Threshold] = {}
    for text in values["threshold"] or ():
        try:
            threshold = parse_threshold(text)
        except ValueError as exc:
            raise pytest.UsageError(f"{sources['threshold']}: {exc}") from None
        thresholds[threshold.name] = threshold
    task = values["task"]
    if task is not None and (task.count(":") != 1 or not all(task.split(":"))):
        raise pytest.UsageError(f"{sources['task']}: {task!r} is not of the form "
                                f"module:function, for example my_app.qa:answer")
    return Settings(
        datasets=tuple(values["dataset"] or ()),
        task=task,
        splits=tuple(values["split"] or ()),
        dataset_version=values["dataset_version"],
        url=values["url"],
        url_source=sources["url"],
        experiment_name=values["experiment_name"],
        thresholds=thresholds,
        no_upload=bool(values["no_upload"]),
    )
