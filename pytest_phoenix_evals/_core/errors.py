"""The one error of the pytest-free layers for "the user must fix this".

Feature code (the modes, sources, sinks, evaluators) raises :class:`UsageProblem` with a message
that names the option, file or thing to fix. Only the pytest layer turns it into
``pytest.UsageError`` (or a collection error), at the boundary: no module below it imports
pytest.
"""

from __future__ import annotations


class UsageProblem(Exception):
    """A problem with what the user asked for (an option, a file, a dataset, a prompt), not
    with the plugin: the message says what to fix."""
