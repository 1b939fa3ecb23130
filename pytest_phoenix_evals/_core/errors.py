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

    def __init__(self, message: str) -> None:
        # The message may quote a server's answer or an exception's text: filtered here, so
        # that every mode's usage error passes the secret filter on its way out.
        from .secrets import redact

        super().__init__(redact(message))


class RunError(Exception):
    """A task's failure whose message is the whole of the run's error, stored as it is (the
    engine prefixes other exceptions with their class name): the prompt task words its errors
    exactly as the Phoenix server stores those of a playground run."""
