"""Domain types: plain dataclasses that import neither pytest nor Phoenix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Direction = Literal["MAXIMIZE", "MINIMIZE", "NONE"]
ConfigKind = Literal["CATEGORICAL", "CONTINUOUS", "FREEFORM"]
AnnotatorKind = Literal["CODE", "LLM", "HUMAN"]
# How an annotation's error begins when its evaluator could not run at all (the summary lists
# those evaluators apart).
NOT_RUN = "not run: "


@dataclass(frozen=True, slots=True)
class Example:
    """One dataset example, as the server stores it at the version that was run."""

    id: str
    input: Any
    reference: Any
    metadata: dict[str, Any]
    dataset_name: str
    dataset_id: str
    version_id: str
    # The dataset splits the example is in; only filled in when a gate needs them (@split).
    splits: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        # Mapping access, as Phoenix's run_experiment offers its tasks (example["input"]).
        mapping = {"id": self.id, "input": self.input, "output": self.reference,
                   "metadata": self.metadata}
        return mapping[key]

    def context(self, output: Any) -> dict[str, Any]:
        """The evaluation context, exactly as the server's experiment runner builds it."""
        return {
            "input": self.input,
            "reference": self.reference,
            "output": output,
            "metadata": self.metadata,
        }


GroupKind = Literal["dataset", "test", "spans", "traces", "sessions"]


@dataclass(frozen=True, slots=True)
class Group:
    """What results belong to: one experiment, one journal file, one part of the summary.

    A dataset given on the command line (``--phoenix-dataset=qa``, ``qa:geo``, ``qa@V``) is a
    group of kind ``dataset``; a test function of the fixture style (requesting
    ``phoenix_example``) run on a dataset is a group of kind ``test``. ``key`` is the identity
    (the same in every pytest-xdist worker): two specs of one dataset, or one dataset used by
    two test functions, are different groups.
    """

    kind: GroupKind
    key: str
    # What the user sees: the dataset spec as given, or the dataset and the test function.
    label: str
    dataset_id: str
    dataset_name: str
    version_id: str
    splits: tuple[str, ...] = ()
    # For kind "test": the test function (node id without parameters), and the key of the
    # dataset group it runs on.
    test: str | None = None
    parent: str | None = None
    # One of several runs of a dataset spec that differ by what runs: the model a prompt runs
    # on (--phoenix-model), which names its experiment.
    variant: str | None = None

    def within(self, other: Group) -> bool:
        """This group is ``other`` or a test function run on it."""
        return self.key == other.key or self.parent == other.key


@dataclass(frozen=True, slots=True)
class Case:
    """One execution of the task on one example, in one group."""

    example: Example
    case_id: str
    group: Group
    repetition: int = 1

    @property
    def key(self) -> tuple[str, str, int]:
        """The case's identity in a session: (group, example, repetition)."""
        return (self.group.key, self.example.id, self.repetition)


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """An annotation config: what an evaluator produces and which way is better."""

    kind: ConfigKind
    name: str
    direction: Direction = "NONE"
    values: tuple[tuple[str, float | None], ...] = ()
    lower_bound: float | None = None
    upper_bound: float | None = None
    threshold: float | None = None

    def best_labels(self) -> frozenset[str] | None:
        """Labels that pass a categorical config, or None when the config asserts nothing."""
        if self.kind != "CATEGORICAL" or self.direction == "NONE":
            return None
        scored = [(label, score) for label, score in self.values if score is not None]
        if not scored:
            return None
        pick = max if self.direction == "MAXIMIZE" else min
        best = pick(score for _, score in scored)
        return frozenset(label for label, score in scored if score == best)


@dataclass(slots=True)
class Score:
    """One annotation: what one evaluator said about one case under one output config."""

    name: str
    evaluator: str
    annotator_kind: AnnotatorKind = "CODE"
    label: str | None = None
    score: float | None = None
    explanation: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    config: OutputConfig | None = None
    # Extra help shown to the user but never uploaded (the upload carries the server's text).
    hint: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None


VerdictStatus = Literal["pass", "fail", "error", "recorded"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one score passes, and the rule that decided it."""

    status: VerdictStatus
    rule: str

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")


@dataclass(slots=True)
class CaseResult:
    """Everything that happened to one case: the run and its annotations."""

    case: Case
    output: Any = None
    error: str | None = None
    exception: BaseException | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    trace_id: str | None = None
    scores: list[Score] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    # Set once pytest reported the case and once its upload ended (or there is none): what
    # only the report and the upload read is then let go (the output, the task's exception
    # with its frames, each score's explanation, hint, judge trace id and times), so that
    # memory stays bounded however many cases run. What the end of the run reads stays: the
    # case, the error, each score's name, label, score, error and metadata (the judges' usage,
    # a human's label), the verdicts and the run's times and trace id. The results file's
    # rows and the journal's lines are made as the case finishes, before any of it goes.
    reported: bool = field(default=False, repr=False)
    uploaded: bool = field(default=False, repr=False)
    # The case as it was listed, when ``case`` was built whole as it ran (a span's context):
    # it takes ``case``'s place then too, so that the context is let go as well.
    light: Case | None = field(default=None, repr=False, compare=False)
    # Keep the output (and the whole case) all the same: a failing span that
    # --phoenix-add-failures-to copies into a dataset at the end.
    keep: bool = field(default=False, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.error is None and not any(v.failed for v in self.verdicts)

    def mark(self, *, reported: bool = False, uploaded: bool = False) -> None:
        self.reported = self.reported or reported
        self.uploaded = self.uploaded or uploaded
        if self.reported and self.uploaded:
            self.exception = None
            if self.keep:
                return
            self.output = None
            if self.light is not None:
                self.case, self.light = self.light, None
            for score in self.scores:
                score.explanation = score.hint = score.trace_id = None
                score.start_time = score.end_time = None
