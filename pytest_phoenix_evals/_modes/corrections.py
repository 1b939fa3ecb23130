"""Corrections become data (``--phoenix-corrections=PROJECT``): the judge traces a person
corrected in Phoenix become examples of the judge benchmark's golden set. A run that runs no
tests. pytest-free."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from .context import Context


def add_corrections(ctx: Context) -> int:
    """Judge traces a human corrected, as golden examples: each ``Evaluator: NAME`` span of
    the judges' project that carries a HUMAN annotation named NAME becomes an example of the
    golden set (input and output as the judge saw them, the human's record under
    ``metadata["annotations"][NAME]``, the judge's own label beside it), once, in split
    ``test`` or ``train`` by its trace id. The exit status."""
    import hashlib

    from .._phoenix.http import PhoenixError
    from .._phoenix.traces import quote_dsl

    s = ctx.settings
    assert s.corrections is not None and s.benchmark is not None
    golden = s.datasets[0]
    name = s.benchmark.rsplit("/", 1)[-1]
    traces = ctx.traces
    try:
        project = traces.project(s.corrections)
        spans = list(traces.spans(
            project, condition=f"name == {quote_dsl('Evaluator: ' + name)} and "
                               f"annotations[{quote_dsl(name)}]", start=None, end=None))
        humans: dict[str, list[dict[str, Any]]] = {}
        for found in traces.annotations(project, "span", [r.span_id for r in spans], [name]):
            if str(found.get("annotator_kind")).upper() == "HUMAN":
                humans.setdefault(str(found["span_id"]), []).append(found)
        present = traces.example_ids(golden) or set()
        examples, already, disagreed = [], 0, 0
        for record in spans:
            rows = humans.get(record.span_id)
            if not rows:
                continue  # annotated, but by no human: not a correction
            answers = {((r.get("result") or {}).get("label"),
                        (r.get("result") or {}).get("score")) for r in rows}
            if len(answers) > 1:
                disagreed += 1  # people disagree: no truth to learn from, left out
                continue
            row = rows[0]
            example_id = f"correction-{record.span_id}"
            if example_id in present:
                already += 1
                continue
            context = _loaded((record.attributes.get("input") or {}).get("value"))
            said = _loaded((record.attributes.get("output") or {}).get("value"))
            judged: dict[str, Any] = next(iter(said.get("results") or []), {}) \
                if isinstance(said, dict) else {}
            result = row.get("result") or {}
            share = int(hashlib.sha256(record.trace_id.encode()).hexdigest()[:8], 16) / 16 ** 8
            examples.append({
                "input": _as_object(context.get("input"), "input"),
                "output": _as_object(context.get("output"), "output"),
                "metadata": {"annotations": {name: [{
                    "label": result.get("label"), "score": result.get("score"),
                    "explanation": result.get("explanation"), "metadata": row.get("metadata"),
                    "annotator_kind": "HUMAN"}]},
                    "judge_label": judged.get("label"), "judge_trace_id": record.trace_id,
                    # the reference the judge read: --phoenix-reference=$.metadata.reference
                    **({"reference": context["reference"]} if isinstance(context, dict)
                       and context.get("reference") not in (None, "") else {})},
                "span_id": None, "example_id": example_id,
                "split": "test" if share < s.test_share else "train"})
        answer = traces.append_examples(
            golden, examples, None,
            description=f"Golden examples for judge {name!r}, from human corrections "
                        f"(pytest-phoenix-evals)") if examples else {}
    except PhoenixError as exc:
        raise UsageProblem(f"--phoenix-corrections {s.corrections!r}: {exc}") from None
    corrections = len(examples) + already + disagreed
    test = sum(e["split"] == "test" for e in examples)
    ctx.say(f"phoenix-evals: {corrections} human correction(s) of judge {name!r} in project "
            f"{project.name!r}; {len(examples)} added to dataset {golden!r} (train "
            f"{len(examples) - test}, test {test})"
            + (f", version {answer.get('version_id')}" if examples else "")
            + (f"; {already} were in it already" if already else "")
            + (f"; {disagreed} left out: the people who annotated them disagree"
               if disagreed else ""))
    if examples:
        from .._core.commands import pytest_command, server_options

        # The reference the judge read, where the examples keep it (as the judge needs it).
        reference = ["--phoenix-reference=$.metadata.reference"] \
            if any(isinstance(e["metadata"], dict) and "reference" in e["metadata"]
                   for e in examples) else []
        ctx.say("phoenix-evals: benchmark the judge on them with " + pytest_command(
            f"--phoenix-dataset={golden}", f"--phoenix-benchmark={s.benchmark}", *reference,
            *server_options(s.url, s.url_source)))
    return 0


def _loaded(value: Any) -> Any:
    import json

    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value if value is not None else {}


def _as_object(value: Any, key: str) -> dict[str, Any]:
    """A dataset example's input and output are objects."""
    return dict(value) if isinstance(value, dict) else {key: value}
