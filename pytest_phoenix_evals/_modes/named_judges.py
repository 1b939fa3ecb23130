"""Evaluators named on the command line (``--phoenix-evaluators``): this plugin's judges, a
judge template of the Phoenix server, ``tool_calls``, ``dataset:NAME`` (the evaluators attached
to a dataset) and ``prompt:NAME[@TAG]`` (a judge prompt of prompt management).

One builder for the two runs that take them: production judging, where they are the judges,
and a dataset run, where they judge beside the dataset's attached evaluators (a regression
dataset of failing spans is judged again by the judges that failed them). pytest-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from .._evaluators.protocol import Evaluator
    from .context import Context

#: This plugin's own judges, by name.
CATALOG = ("qa_correctness", "hallucination", "conversation_resolution")


def named_evaluators(ctx: Context, name: str, *, subject: str) -> list[Evaluator]:
    """The evaluators ``name`` stands for; UsageProblem naming what to fix. ``subject``: what
    a case judges (span, trace, session, dataset example), for the messages."""
    from .._evaluators.llm import catalog
    from .._phoenix.http import PhoenixError

    if name == "qa_correctness":
        return [catalog.qa_correctness()]
    if name == "hallucination":
        return [catalog.hallucination()]
    if name == "conversation_resolution":
        return [catalog.conversation_resolution()]
    if name.startswith("prompt:"):
        return [_prompt_judge(ctx, name.removeprefix("prompt:"), subject)]
    if name == "tool_calls" or name.startswith("tool_calls:"):
        from .._evaluators.tools import from_spec

        try:
            return [from_spec(name)]
        except ValueError as exc:
            raise UsageProblem(f"--phoenix-evaluators {name!r}: {exc}") from None
    if name.startswith("dataset:"):
        from .context import dataset_source

        dataset = name.removeprefix("dataset:")
        try:
            source = dataset_source(ctx, [])
            return source.attached_to(source.group(dataset))
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-evaluators {name!r}: {exc}") from None
    try:
        templates = [t.name for t in ctx.gateway.classification_evaluator_configs()]
    except PhoenixError as exc:
        raise UsageProblem(f"--phoenix-evaluators {name!r}: {exc}") from None
    if name not in templates:
        raise UsageProblem(
            f"--phoenix-evaluators: {name!r} is none of this plugin's judges "
            f"({', '.join(CATALOG)}), nor tool_calls, nor a judge template of the Phoenix "
            f"server ({', '.join(sorted(templates)) or 'none'}); for the evaluators "
            f"attached to a dataset, write dataset:NAME; for a judge prompt of Phoenix prompt "
            f"management, prompt:NAME or prompt:NAME@TAG")
    return [catalog.phoenix_judge(name)]


def _prompt_judge(ctx: Context, reference: str, subject: str) -> Evaluator:
    """``prompt:NAME[@TAG]``: the judge prompt the tag names now (a benchmarked prompt
    promoted by ``--phoenix-promote-tag`` is picked up by the next run), built as the
    benchmark builds it; its variables must name the context."""
    from .judge_prompts import CONTEXT_KEYS, judge_from_prompt, unfillable

    judge = judge_from_prompt(ctx, reference, default_tag=ctx.settings.prompt_tag,
                              option="--phoenix-evaluators")
    if missing := unfillable(judge):
        raise UsageProblem(
            f"--phoenix-evaluators prompt:{reference}: the judge prompt's template "
            f"variable(s) {', '.join(missing)} name nothing a {subject} "
            f"gives: its variables are filled from the context "
            f"{{{', '.join(CONTEXT_KEYS)}}}, dotted names reaching into them "
            f"({{{{input}}}}, {{{{output}}}}, {{{{metadata.documents}}}})")
    return judge
