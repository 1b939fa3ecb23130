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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._core.types import Example, OutputConfig, Score, Verdict
from .protocol import Evaluator

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

    def __init__(self, judge: Evaluator, names: Sequence[str]) -> None:
        self.judge = judge
        self.name = judge.name
        self.output_configs: Sequence[OutputConfig] = judge.output_configs
        self.names = list(names)  # annotation names the human label may be under

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
        clean = hidden_from_judge(example.metadata)
        scores = await self.judge.evaluate({**context, "metadata": clean},
                                           replace(example, metadata=clean))
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
