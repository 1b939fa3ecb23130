"""A judge benchmark's golden set, checked before any judge call: every example gives the
judge what it reads, an empty golden set says why, and human labels that are none of the
judge's are said. Pure: each returns the problem or the notice, the mode raises or says it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._core.types import Case, Group
    from .._evaluators.benchmark import JudgeUnderTest


def input_problem(spec: str, group: Group, judge: JudgeUnderTest, cases: Sequence[Case],
                  reference: str | None) -> str | None:
    """Before any call: every golden example gives the judge what it reads. The reference
    --phoenix-reference names is there; a judge that reads a reference is not handed the
    response it judges as its own reference; a judge prompt's variables all fill. The
    problem, or None."""
    from .._evaluators.mapping import MappingError

    inner = judge.judge
    unreachable: list[str] = []
    itself: list[str] = []
    unfilled: list[str] = []
    for case in cases:
        try:
            context = judge.context(case.example)
        except MappingError as exc:
            unreachable.append(f"{case.case_id}: {exc}" + (f" ({exc.hint})" if exc.hint
                                                            else ""))
            continue
        missing = inner.unfilled(context) if hasattr(inner, "unfilled") else []
        if missing:
            from .._evaluators.templates import where_missing

            unfilled.append(f"{case.case_id}: {', '.join(missing)} ("
                            f"{'; '.join(where_missing(m, context) for m in missing)})")
        elif context["reference"] == context["output"] and judge.reads_reference(context):
            itself.append(case.case_id)
    head = f"--phoenix-benchmark {spec!r} on {group.label}"
    if unreachable:
        return (f"{head}: --phoenix-reference finds nothing in "
                f"{len(unreachable)} golden example(s): "
                f"{'; '.join(unreachable[:5])}. The path is read in the golden "
                f"example's {{input, output, metadata}}")
    if unfilled:
        return (f"{head}: the judge prompt's template variable(s) cannot be "
                f"filled for {len(unfilled)} golden example(s): "
                f"{'; '.join(unfilled[:5])}. Its variables are filled from the "
                f"context {{input, output, reference, metadata}}, dotted names "
                f"reaching into objects ({{{{input.question}}}})")
    if itself:
        shown = ", ".join(itself[:5]) + (f" and {len(itself) - 5} more"
                                         if len(itself) > 5 else "")
        where = f"--phoenix-reference {reference!r} resolves to" \
            if reference else "without --phoenix-reference, it is"
        return (
            f"{head}: judge {judge.name!r} reads a reference, and {where} the response "
            f"under judgement itself (the golden example's output) on {len(itself)} "
            f"example(s) ({shown}): the judge would compare the answer with itself. Put "
            f"the reference in the golden set and name it with "
            f"--phoenix-reference=JSONPATH into the example's {{input, output, metadata}}, "
            f"for example $.metadata.reference, or $.input.context for an LLM span whose "
            f"prompt template variables Phoenix copied into the input")
    return None


def empty_reason(spec: str, group: Group, judge: JudgeUnderTest, labelled: int,
                 unlabelled: int, disagreed: int) -> str:
    """Why a golden set gives no case: what it holds, and where a human label goes."""
    head = f"--phoenix-benchmark {spec!r}: no golden case to run on {group.label}"
    if labelled:
        return (f"{head}: none of the {labelled} examples with a human label is among those "
                f"--phoenix-examples / --phoenix-limit chose")
    total = unlabelled + disagreed
    held = f"{unlabelled} of its {total} examples have no human label" if total else \
        "it has no examples"
    if disagreed:
        held += f", {disagreed} have human labels that disagree"
    return (f"{head}: {held}. A golden example holds a record with \"annotator_kind\": "
            f"\"HUMAN\" and a label (or score) under metadata[\"annotations\"][NAME] (as "
            f"Phoenix writes annotated spans added to a dataset; NAME one of "
            f"{', '.join(map(repr, judge.names))}), or a plain metadata[\"label\"]")


def label_notice(spec: str, group: Group, judge: JudgeUnderTest, cases: Sequence[Case]
                 ) -> str | None:
    """A notice when human labels are none of the judge's labels (``Factual`` against
    ``factual``): those cases can never agree."""
    from collections import Counter

    from .._evaluators.benchmark import human_answer

    configs = list(judge.output_configs)
    labels = [str(label) for label, _ in configs[0].values] if configs and \
        configs[0].kind == "CATEGORICAL" else []
    if not labels:
        return None
    outside = Counter(label for case in cases
                      if (label := human_answer(case.example.metadata, judge.names)[0])
                      is not None and label not in labels)
    if not outside:
        return None
    folded = {label.casefold(): label for label in labels}
    shown = ", ".join(f"{label!r} ({count})" + (
        f", meant {folded[label.casefold()]!r}?" if label.casefold() in folded else "")
        for label, count in outside.most_common(5))
    return (f"judge {spec!r} on {group.label}: {sum(outside.values())} golden example(s) "
            f"have a human label that is none of the judge's labels "
            f"({', '.join(map(repr, labels))}): {shown}; those cases can never agree: fix the "
            f"golden set's labels")
