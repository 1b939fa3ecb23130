"""A judge prompt of Phoenix prompt management, built into a judge: ``prompt:NAME[@TAG]``.

One builder for the two places that name such a prompt: the judge benchmark
(``--phoenix-benchmark=prompt:...``) and production judging (``--phoenix-evaluators=prompt:...``),
so a prompt benchmarked and promoted by a tag is the very judge the next production run picks
up by that tag. pytest-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.errors import UsageProblem

if TYPE_CHECKING:
    from .._evaluators.llm.judge import LLMJudge
    from .context import Context

#: What a judge prompt's variables may name: the evaluation context's keys.
CONTEXT_KEYS = ("input", "output", "reference", "metadata")


def judge_from_prompt(ctx: Context, reference: str, *, default_tag: str | None,
                      option: str) -> LLMJudge:
    """``NAME[@TAG|@VERSION_ID]``: the version that tag (else ``default_tag``, else the latest)
    names, as a judge. Its one function tool with a ``label`` enum gives the labels; the
    annotation is named after the prompt; the template's variables are filled from the context
    by name (input, output, reference, metadata). The version and the tag followed go on each
    annotation's metadata. UsageProblem, beginning with ``option prompt:REFERENCE``, naming
    what to fix."""
    from .._core.types import OutputConfig
    from .._evaluators.llm.judge import LLMJudge, PromptSpec
    from .._phoenix.http import PhoenixError

    head = f"{option} prompt:{reference}"
    name, _, ref = reference.partition("@")
    if not name:
        raise UsageProblem(f"{head}: write prompt:NAME or prompt:NAME@TAG (a prompt of Phoenix "
                           f"prompt management)")
    wanted = ref or default_tag
    try:
        data = ctx.gateway.find_prompt_version(name, wanted)
        prompt = PromptSpec.from_phoenix(name, data)
    except (PhoenixError, ValueError) as exc:
        raise UsageProblem(f"{head}: {exc}") from None
    # A reference that is not the version's own id named it by a tag.
    prompt.version_tag = wanted if wanted and wanted != prompt.version_id else None
    tools = [t.get("function") or {} for t in (prompt.tools or {}).get("tools") or ()
             if t.get("type") == "function"]
    labelled = [(t.get("name"), ((t.get("parameters") or {}).get("properties") or {})
                 .get("label", {}).get("enum")) for t in tools]
    labelled = [(tool, labels) for tool, labels in labelled if tool and labels]
    if len(labelled) != 1:
        raise UsageProblem(f"{head}: a judge prompt needs exactly one function tool with a "
                           f"'label' enum (this version has {len(labelled)})")
    tool, labels = labelled[0]
    config = OutputConfig(kind="CATEGORICAL", name=name,
                          values=tuple((str(label), None) for label in labels))
    return LLMJudge(name=name, prompt=prompt, output_configs=[config],
                    tool_configs={str(tool): name}, whole_context=True)


def unfillable(judge: LLMJudge) -> list[str]:
    """The template variables of a whole-context judge that no context can fill (their root is
    none of :data:`CONTEXT_KEYS`)."""
    from .._evaluators.templates import TemplateError, roots

    if judge.prompt is None:
        return []
    found: list[str] = []
    for text in judge.prompt.texts():
        try:
            names = roots(text, judge.prompt.template_format)
        except TemplateError:
            continue  # said per case, with the template's own error
        found += [n for n in sorted(names) if n not in CONTEXT_KEYS and n not in found]
    return found
