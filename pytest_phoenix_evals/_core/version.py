"""The plugin's own version, as installed (recorded in every experiment and annotation)."""

from __future__ import annotations


def plugin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-phoenix-evals")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"
