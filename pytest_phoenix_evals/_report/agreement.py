"""A judge benchmark's figures: each agreement metric with its 95 % interval, per label, and
the confusion matrix, computed once from the (judge, human) pairs and shown two ways: the
report's lines, and plain data for the benchmark experiment's metadata. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._core import agreement
from .._core.agreement import Estimate

Pairs = Sequence[tuple[Any, Any]]


def _estimates(pairs: Pairs, continuous: bool) -> dict[str, Any]:
    if continuous:
        return {"spearman": agreement.spearman(pairs)}
    return {"agreement": agreement.agreement(pairs), "kappa": agreement.kappa(pairs),
            "labels": {label: {"precision": agreement.precision(pairs, label),
                               "recall": agreement.recall(pairs, label),
                               "f1": agreement.f1(pairs, label)}
                       for label in sorted({h for _, h in pairs})},
            "confusion": agreement.confusion(pairs)}


def _plain(estimate: Estimate) -> dict[str, Any]:
    return {"value": estimate.value, "low": estimate.low, "high": estimate.high}


def figures(annotation: str, pairs: Pairs, unanswered: int, continuous: bool
            ) -> dict[str, Any]:
    """As plain data: n, each metric as {value, low, high}, per label, the confusion matrix
    (rows: the human label, columns: the judge's) and the interval methods."""
    found: dict[str, Any] = {"annotation": annotation}
    for name, value in _estimates(pairs, continuous).items():
        if name == "labels":
            found[name] = {label: {metric: _plain(e) for metric, e in metrics.items()}
                           for label, metrics in value.items()}
        elif name == "confusion":
            order, matrix = value
            found[name] = {"labels": order, "rows": "human label", "columns": "judge label",
                           "counts": matrix}
        else:
            found[name] = _plain(value)
    found["n"] = len(pairs)
    found["unanswered"] = unanswered
    found["intervals"] = agreement.METHODS
    return found


def metric_lines(head: str, pairs: Pairs, continuous: bool) -> list[str]:
    """The report's lines: n, each metric with its interval, and the confusion matrix."""
    from tabulate import tabulate

    found = _estimates(pairs, continuous)
    if continuous:
        return [f"{head}: n={len(pairs)}", f"  spearman: {found['spearman'].shown()}"]
    lines = [f"{head}: n={len(pairs)} (95% confidence intervals)",
             f"  agreement: {found['agreement'].shown()}",
             f"  kappa:     {found['kappa'].shown()}"]
    for name, metrics in found["labels"].items():
        lines.append(f"  {name}: precision {metrics['precision'].shown()}"
                     f", recall {metrics['recall'].shown()}, f1 {metrics['f1'].shown()}")
    order, matrix = found["confusion"]
    lines.append("  confusion (rows: human label, columns: judge label):")
    lines += ["    " + row for row in tabulate(
        [[human, *counts] for human, counts in zip(order, matrix, strict=True)],
        headers=["human \\ judge", *order], tablefmt="simple").splitlines()]
    return lines


def _md(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def metric_markdown(head: str, pairs: Pairs, unanswered: int, continuous: bool) -> str:
    """The markdown summary's tables of the same figures: each metric with its 95 % interval,
    precision, recall and F1 per label, and the confusion matrix (rows: the human label,
    columns: the judge's)."""
    found = _estimates(pairs, continuous)
    lines = [f"### {_md(head)}", "", f"n={len(pairs)}"
             + (f"; {unanswered} case(s) the judge did not answer" if unanswered else ""), "",
             "| metric | value [95% CI] | interval |", "| --- | --- | --- |"]
    for name in ("spearman",) if continuous else ("agreement", "kappa"):
        lines.append(f"| {name} | {found[name].shown()} | {_md(agreement.METHODS[name])} |")
    if continuous:
        return "\n".join(lines) + "\n"
    lines += ["", "| label | precision | recall | f1 |", "| --- | --- | --- | --- |"]
    for label, metrics in found["labels"].items():
        lines.append(f"| {_md(label)} | {metrics['precision'].shown()} | "
                     f"{metrics['recall'].shown()} | {metrics['f1'].shown()} |")
    order, matrix = found["confusion"]
    lines += ["", "Confusion matrix (rows: human label, columns: judge label):", "",
              "| human \\ judge | " + " | ".join(_md(label) for label in order) + " |",
              "| --- |" + " ---: |" * len(order)]
    lines += [f"| **{_md(human)}** | " + " | ".join(str(c) for c in counts) + " |"
              for human, counts in zip(order, matrix, strict=True)]
    return "\n".join(lines) + "\n"


def versions_lines(candidate: str, tag: str, label: str, mine: dict[str, bool],
                   theirs: dict[str, bool], names: dict[str, str]) -> list[str]:
    """Two versions of a judge on one golden set, example by example: what each got right
    that the other did not (``mine``/``theirs``: example id -> right)."""
    shared = sorted(set(mine) & set(theirs))
    only_mine = [e for e in shared if mine[e] and not theirs[e]]
    only_theirs = [e for e in shared if theirs[e] and not mine[e]]
    lines = [f"{candidate} against {tag} on {label}, example by example: both right "
             f"{sum(mine[e] and theirs[e] for e in shared)}, both wrong "
             f"{sum(not mine[e] and not theirs[e] for e in shared)}"]
    for who, found in ((candidate, only_mine), (tag, only_theirs)):
        shown = ", ".join(names[e] for e in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        lines.append(f"  only {who} right: {len(found)}" + (f" ({shown}{more})" if found else ""))
    return lines
