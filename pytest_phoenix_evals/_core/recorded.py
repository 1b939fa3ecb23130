"""Examples that carry the output they were judged on: the failing spans (traces, sessions)
that ``--phoenix-add-failures-to`` copies into a regression dataset keep, in their metadata
under :data:`JUDGED`, the context the judges saw. A dataset run with no task judges that
output again, in that context, so the command the production run prints for the dataset runs
as printed (``--phoenix-task`` runs the app on the examples instead).

Pure: no pytest, no Phoenix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .types import Case

#: The example metadata key holding the judged context: ``input``, ``output``, ``reference``
#: and ``metadata`` (the span's, without its raw attributes), as the judges saw them.
JUDGED = "judged_context"


def judged_context(input: Any, output: Any, reference: Any, metadata: Mapping[str, Any]
                   ) -> dict[str, Any]:
    """What a judged example keeps under :data:`JUDGED` (the span's raw attributes, which the
    example's own input and output already copy, left out)."""
    return {"input": input, "output": output, "reference": reference,
            "metadata": {k: v for k, v in metadata.items() if k != "attributes"}}


def recorded_case(case: Case) -> tuple[Case, Any] | None:
    """The case in its judged context, and the output to judge; None when its example carries
    no judged output."""
    judged = case.example.metadata.get(JUDGED)
    if not isinstance(judged, dict) or "output" not in judged:
        return None
    metadata = {k: v for k, v in case.example.metadata.items() if k != JUDGED}
    if isinstance(judged.get("metadata"), dict):
        metadata.update(judged["metadata"])
    example = replace(case.example, input=judged.get("input"),
                      reference=judged.get("reference", ""), metadata=metadata)
    return replace(case, example=example), judged["output"]
