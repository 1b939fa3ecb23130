"""Judges to use from code, with nothing set up in Phoenix.

``qa_correctness``, ``hallucination`` and ``conversation_resolution`` (a session judge: did the
conversation reach a resolution?) carry prompts of our own and answer through a
``record_response(explanation, label)`` function call, the way Phoenix Evals' judges answer.
``phoenix_judge(name)`` builds a judge from one of the server's built-in classification
templates, fetched from the server when the session starts (their text is Phoenix's and is
never part of this package).

Inputs: every judge reads ``question``, ``answer`` and ``reference``. By default they are the
example's input, the task's output and the example's reference output; a dict holding a single
value stands for that value, and other non-strings are shown as JSON. Pass a JSONPath into the
evaluation context (``{"input", "output", "reference", "metadata"}``) to choose another field,
for example ``qa_correctness(question="$.input.query", reference="$.reference.answer")``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..._core.types import OutputConfig
from ..mapping import MappingError, map_inputs, mapping_problems
from .judge import LLMJudge, PromptSpec, label_tool

TOOL = "record_response"

_QA_SYSTEM = (
    "You check answers against a reference. Read the question, the answer under test and the "
    "reference answer. The answer is correct when it states the same facts the reference gives "
    "for what the question asks, in any wording; extra detail is fine as long as it does not "
    "contradict the reference. It is incorrect when it contradicts the reference, leaves out "
    "what was asked, or answers a different question. Think it through briefly, then reply "
    "only by calling record_response with your explanation and a label."
)
_HALLUCINATION_SYSTEM = (
    "You check whether an answer invents facts. Read the question, the reference text and the "
    "answer under test. The answer is factual when every claim it makes is supported by the "
    "reference text; it is hallucinated when any claim is absent from, or contradicted by, the "
    "reference text. Judge only support by the reference, not general truth. Think it through "
    "briefly, then reply only by calling record_response with your explanation and a label."
)
_RESOLUTION_SYSTEM = (
    "You review a whole conversation between a user and an assistant, turn by turn, and decide "
    "how it ended. It is resolved when, by the last turn, the assistant has answered or done "
    "what the user came for and nothing the user asked for is left open (thanks or a natural "
    "close count as a sign of it). It is unresolved when the user gave up or dropped the "
    "request, asked the same thing again without getting further, was left waiting, or the "
    "conversation stopped on a question nobody answered. Judge the outcome of the whole "
    "conversation, not the tone of single turns. Think it through briefly, then reply only by "
    "calling record_response with your explanation and a label."
)
_CONVERSATION_USER = "<conversation>\n{{conversation}}\n</conversation>"
_USER = (
    "<question>\n{{question}}\n</question>\n\n<answer>\n{{answer}}\n</answer>\n\n"
    "<reference>\n{{reference}}\n</reference>"
)
_DEFAULT_PATHS = {"question": "$.input", "answer": "$.output", "reference": "$.reference"}
_SCHEMA = {"type": "object", "properties": {key: {} for key in _DEFAULT_PATHS},
           "required": list(_DEFAULT_PATHS)}


def _readable(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def judge_inputs(paths: Mapping[str, str]):  # type: ignore[no-untyped-def]
    """Inputs of a catalogue judge: JSONPaths with the server's mapping, shown readably."""

    def prepare(context: dict[str, Any]) -> dict[str, Any]:
        values = map_inputs(input_schema=_SCHEMA, path_mapping=dict(paths),
                            literal_mapping=None, context=context)
        missing = [key for key in _DEFAULT_PATHS if key not in values]
        if missing:
            raise MappingError(f"no value for {', '.join(missing)}")
        return {key: _readable(value) for key, value in values.items()}

    return prepare


def conversation_text(turns: Any) -> str:
    """A session's turns (``[{"input": ..., "output": ...}, ...]``) as numbered User and
    Assistant lines; anything else shown as the other judges show a value."""
    if not isinstance(turns, list) or not all(isinstance(t, Mapping) for t in turns):
        return _readable(turns)
    lines = []
    for n, turn in enumerate(turns, 1):
        lines.append(f"Turn {n}\nUser: {_readable(turn.get('input'))}\n"
                     f"Assistant: {_readable(turn.get('output'))}")
    return "\n\n".join(lines)


def conversation_inputs(path: str):  # type: ignore[no-untyped-def]
    """The input of a conversation judge: the turns at ``path``, written out turn by turn."""

    def prepare(context: dict[str, Any]) -> dict[str, Any]:
        values = map_inputs(input_schema={"type": "object", "properties": {"conversation": {}}},
                            path_mapping={"conversation": path}, literal_mapping=None,
                            context=context)
        if "conversation" not in values:
            raise MappingError("no value for conversation")
        return {"conversation": conversation_text(values["conversation"])}

    return prepare


def _judge(name: str, system: str, labels: tuple[tuple[str, float], ...],
           description: str, paths: Mapping[str, str | None], model: str | None,
           provider: str, invocation_parameters: Mapping[str, Any] | None, *,
           user: str = _USER, prepare: Any = None) -> LLMJudge:
    chosen = {key: paths.get(key) or default for key, default in _DEFAULT_PATHS.items()} \
        if prepare is None else {k: v for k, v in paths.items() if v}
    config = OutputConfig(kind="CATEGORICAL", name=name, direction="MAXIMIZE", values=labels)
    prompt = PromptSpec(
        prompt_name=name,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        template_format="MUSTACHE",
        tools={"type": "tools",
               "tools": [label_tool(TOOL, [label for label, _ in labels], description)],
               "tool_choice": {"type": "specific_function", "function_name": TOOL}},
        invocation_parameters={"type": "openai",
                               "openai": dict(invocation_parameters or {"temperature": 0.0})},
        model_provider=provider, model_name=model)
    return LLMJudge(name=name, prompt=prompt, output_configs=[config],
                    tool_configs={TOOL: name}, prepare=prepare or judge_inputs(chosen),
                    mapping_problems=mapping_problems(chosen))


def qa_correctness(*, name: str = "qa_correctness", question: str | None = None,
                   answer: str | None = None, reference: str | None = None,
                   model: str | None = None, provider: str = "OPENAI",
                   invocation_parameters: Mapping[str, Any] | None = None) -> LLMJudge:
    """Is the answer correct given the reference answer? Labels: correct (1) / incorrect (0)."""
    return _judge(name, _QA_SYSTEM, (("correct", 1.0), ("incorrect", 0.0)),
                  "Record whether the answer is correct.",
                  {"question": question, "answer": answer, "reference": reference},
                  model, provider, invocation_parameters)


def hallucination(*, name: str = "hallucination", question: str | None = None,
                  answer: str | None = None, reference: str | None = None,
                  model: str | None = None, provider: str = "OPENAI",
                  invocation_parameters: Mapping[str, Any] | None = None) -> LLMJudge:
    """Does the answer stay within the reference text? Labels: factual (1) / hallucinated (0)."""
    return _judge(name, _HALLUCINATION_SYSTEM, (("factual", 1.0), ("hallucinated", 0.0)),
                  "Record whether the answer is factual or hallucinated.",
                  {"question": question, "answer": answer, "reference": reference},
                  model, provider, invocation_parameters)


def conversation_resolution(*, name: str = "conversation_resolution",
                            conversation: str | None = None, model: str | None = None,
                            provider: str = "OPENAI",
                            invocation_parameters: Mapping[str, Any] | None = None) -> LLMJudge:
    """Did the conversation reach a resolution? A session judge: it reads the turns (a
    session case's output, or the JSONPath ``conversation``). Labels: resolved (1) /
    unresolved (0)."""
    path = conversation or "$.output"
    return _judge(name, _RESOLUTION_SYSTEM, (("resolved", 1.0), ("unresolved", 0.0)),
                  "Record whether the conversation reached a resolution.",
                  {"conversation": path}, model, provider, invocation_parameters,
                  user=_CONVERSATION_USER, prepare=conversation_inputs(path))


class ServerTemplateJudge(LLMJudge):
    """A judge built from one of the server's classification templates, fetched at run time."""

    template: str = ""

    def load(self, gateway: Any) -> None:
        """Fetch the template from the server (``gateway.classification_evaluator_configs``);
        on failure every case reports why."""
        from ..._phoenix.http import PhoenixError

        try:
            found_all = gateway.classification_evaluator_configs()
        except PhoenixError as exc:
            self.problem = f"cannot load Phoenix judge template {self.template!r}: {exc}"
            return
        templates = {t.name: t for t in found_all}
        found = templates.get(self.template)
        if found is None:
            self.problem = (f"Phoenix has no judge template {self.template!r}; it has: "
                            f"{', '.join(sorted(templates)) or 'none'}")
            return
        labels = found.choices
        config = OutputConfig(kind="CATEGORICAL", name=self.name,
                              direction=found.direction, values=labels)
        assert self.prompt is not None
        self.prompt.messages = [dict(m) for m in found.messages]
        self.prompt.tools = {"type": "tools", "tools": [
            label_tool(self.name, [label for label, _ in labels], found.description or
                       f"Record the {self.name} label.")],
            "tool_choice": {"type": "one_or_more"}}
        self.output_configs = [config]


def phoenix_judge(template: str, *, name: str | None = None,
                  mapping: Mapping[str, str] | None = None, model: str | None = None,
                  provider: str = "OPENAI",
                  invocation_parameters: Mapping[str, Any] | None = None) -> LLMJudge:
    """A judge from the Phoenix server's built-in templates (``classificationEvaluatorConfigs``:
    correctness, faithfulness, toxicity, document_relevance, ...), fetched when the session
    starts. Its inputs are the template's variables, taken from the context by name (``input``,
    ``output``, ``reference``, ``metadata``) unless ``mapping`` gives a JSONPath for them, as for
    an evaluator attached in Phoenix."""
    judge = ServerTemplateJudge(
        name=name or template, output_configs=[], path_mapping=dict(mapping or {}),
        mapping_problems=mapping_problems(mapping),
        prompt=PromptSpec(prompt_name=template, messages=[], template_format="MUSTACHE",
                          invocation_parameters={"type": "openai", "openai": dict(
                              invocation_parameters or {"temperature": 0.0})},
                          model_provider=provider, model_name=model))
    judge.template = template
    return judge
