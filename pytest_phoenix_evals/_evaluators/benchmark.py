"""A judge under benchmark (``--phoenix-benchmark``): run on a golden example, its label is
compared with the human's.

The golden set has the shape Phoenix writes when annotated spans are added to a dataset: the
human label of annotation NAME is in ``metadata["annotations"][NAME]``, a list of records of
which the one with ``"annotator_kind": "HUMAN"`` holds the ``label`` (and ``score``). A plain
``metadata["label"]`` (and ``metadata["score"]``) works too, for golden sets made by hand.

The judge never sees any of it: the annotations and the plain label and score are removed from
the example's metadata before it is evaluated. What the human said travels on the judge's
scores instead (``metadata["human_label"]``, ``metadata["human_score"]``), where the verdict,
the agreement gates and the report read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._core.types import Example, OutputConfig, Score, Verdict
from .protocol import Evaluator

#: A reference no golden example holds: what the judge's inputs are worked out with to see
#: whether they depend on the reference at all.
_PROBE = "\u2063pytest-phoenix-evals: is the reference read?\u2063"

#: Metadata keys the judge must not read: every annotation record, and the hand-made label.
HIDDEN = ("annotations", "label", "score")


def human_answer(metadata: Mapping[str, Any], names: Sequence[str]
                 ) -> tuple[str | None, float | None]:
    """The human's label and score for the first of ``names`` that has one (None, None when
    the example has no human label). When several people answered, the first record's (see
    :func:`disagreement`: the benchmark leaves out an example whose people disagree)."""
    answers = human_answers(metadata, names)
    return answers[0] if answers else (None, None)


def human_answers(metadata: Mapping[str, Any], names: Sequence[str]
                  ) -> list[tuple[str | None, float | None]]:
    """Every HUMAN record's (label, score) for the first of ``names`` that has any, else the
    hand-made ``metadata["label"]`` (and ``score``); empty when no human said anything."""
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):
        for name in names:
            records = annotations.get(name)
            if isinstance(records, Mapping):
                records = [records]
            found = [((None if record.get("label") is None else str(record.get("label"))),
                      _number(record.get("score")))
                     for record in (records if isinstance(records, list) else ())
                     if isinstance(record, Mapping)
                     and str(record.get("annotator_kind", "")).upper() == "HUMAN"
                     and (record.get("label") is not None or record.get("score") is not None)]
            if found:
                return found
    label, score = metadata.get("label"), _number(metadata.get("score"))
    if label is not None or score is not None:
        return [((None if label is None else str(label)), score)]
    return []


def disagreement(metadata: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The different answers of the people who labelled an example, when they differ (by
    label; by score when none gave a label); empty when they agree or one person answered.
    Taking the first would make the truth depend on the order the records were written in."""
    answers = human_answers(metadata, names)
    if any(label is not None for label, _ in answers):
        shown = [repr(label) for label, _ in answers if label is not None]
    else:
        shown = [f"{score:g}" for _, score in answers if score is not None]
    distinct = list(dict.fromkeys(shown))
    return distinct if len(distinct) > 1 else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def hidden_from_judge(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if key not in HIDDEN}


class JudgeUnderTest:
    """Wraps the judge: evaluates on the example without its human labels, carries the
    human's answer on the scores, and passes a case when the labels are equal (a judge that
    gives only scores is compared by Spearman's correlation in the gates, case by case it is
    recorded)."""

    kind = "LLM"

    def __init__(self, judge: Evaluator, names: Sequence[str], reference: str | None = None
                 ) -> None:
        self.judge = judge
        self.name = judge.name
        self.output_configs: Sequence[OutputConfig] = judge.output_configs
        self.names = list(names)  # annotation names the human label may be under
        #: --phoenix-reference: a JSONPath into the golden example for the judge's reference.
        self.reference = reference

    def context(self, example: Example) -> dict[str, Any]:
        """What the judge reads on a golden example: its input, its output (the response the
        human judged), its metadata without the human labels, and the reference: what
        --phoenix-reference finds in ``{input, output, metadata}`` (several matches joined by
        blank lines, as for spans), else the server's rule, the example's output.
        MappingError when the path finds nothing."""
        clean = hidden_from_judge(example.metadata)
        reference = example.reference
        if self.reference:
            from .mapping import MappingError, map_inputs

            seen = {"input": example.input, "output": example.reference, "metadata": clean}
            values = map_inputs(input_schema={"type": "object", "properties": {"reference": {}}},
                                path_mapping={"reference": self.reference},
                                literal_mapping=None, context=seen)
            if "reference" not in values:
                raise MappingError(f"--phoenix-reference {self.reference!r} finds nothing")
            reference = values["reference"]
            if isinstance(reference, list) and reference and all(
                    isinstance(item, str) for item in reference):
                reference = "\n\n".join(reference)
        return {"input": example.input, "reference": reference, "output": example.reference,
                "metadata": clean}

    def reads_reference(self, context: dict[str, Any]) -> bool:
        """Whether the judge's inputs on ``context`` depend on its reference: they are worked
        out (no call is made) with the reference as it is and with a stand-in, and compared.
        A judge that cannot say (one the server runs) is taken not to."""
        values = getattr(self.judge, "template_values", None)
        if not callable(values):
            return False

        def probe(reference: Any) -> str:
            try:
                return json.dumps(values({**context, "reference": reference}), sort_keys=True,
                                  default=repr)
            except Exception as exc:  # a mapping or template that fails on one of the two
                return f"error: {type(exc).__name__}"

        return probe(context.get("reference")) != probe(_PROBE)

    # The session equips the judge through the wrapper (judge clients, tracing, template).
    @property
    def judges(self) -> Any:
        return getattr(self.judge, "judges", None)

    @judges.setter
    def judges(self, value: Any) -> None:
        self.judge.judges = value  # type: ignore[attr-defined]

    @property
    def tracing(self) -> Any:
        return getattr(self.judge, "tracing", None)

    @tracing.setter
    def tracing(self, value: Any) -> None:
        self.judge.tracing = value  # type: ignore[attr-defined]

    @property
    def project_name(self) -> str | None:
        return getattr(self.judge, "project_name", None)

    def load(self, gateway: Any) -> None:
        load = getattr(self.judge, "load", None)
        if callable(load):
            load(gateway)

    @property
    def continuous(self) -> bool:
        configs = list(self.output_configs)
        return bool(configs) and configs[0].kind != "CATEGORICAL"

    async def evaluate(self, context: dict[str, Any], example: Example) -> list[Score]:
        label, score = human_answer(example.metadata, self.names)
        seen = self.context(example)
        scores = await self.judge.evaluate(seen, replace(example, metadata=seen["metadata"]))
        for found in scores:
            found.metadata = {**(found.metadata or {}), "human_label": label}
            if score is not None:
                found.metadata["human_score"] = score
        return scores

    def verdict(self, score: Score) -> Verdict | None:
        human = (score.metadata or {}).get("human_label")
        if self.continuous or human is None:
            return Verdict("recorded", "a score: compared by spearman() over the cases")
        return Verdict("pass" if score.label == human else "fail",
                       f"label must equal the human label {human!r}")

    async def aclose(self) -> None:
        close = getattr(self.judge, "aclose", None)
        if callable(close):
            await close()
