"""A helper for tests of bad input: each command line is a usage error saying what to fix."""

from __future__ import annotations

from collections.abc import Sequence

import pytest


def assert_usage_errors(pytester: pytest.Pytester,
                        cases: Sequence[tuple[Sequence[str], str]]) -> None:
    """Each (arguments, message): pytest stops with a usage error (or, when the error comes
    from collection, an interrupted session) whose text holds ``message``, and no traceback."""
    for args, message in cases:
        result = pytester.runpytest(*args, "-p", "no:cacheprovider")
        out = result.stdout.str() + result.stderr.str()
        assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED), \
            (args, out)
        assert message in out, (args, out)
        assert "Traceback" not in out, args
