"""The judge benchmark: an LLM judge run over a golden set labelled by people, gated on
agreement, and promoted (``--phoenix-promote-tag``) only when it passed.

A dataset run of the golden set with no task: each case's output is the example's own output
(the response the human judged), and the only evaluator is the judge under test
(:class:`~.._evaluators.benchmark.JudgeUnderTest`), so the experiment, the journal, the gates
and the reports are the dataset run's. The version compared against
(``--phoenix-benchmark-against``) is a second group of the same golden set, left out of the
gates. pytest-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.errors import UsageProblem
from .base import CasePlan
from .dataset import DatasetRun

if TYPE_CHECKING:
    from .._core.types import Case, CaseResult, Group, Score
    from .._evaluators.benchmark import JudgeUnderTest
    from .._evaluators.protocol import Evaluator
    from .._run.sinks.base import Sink
    from .context import Context
    from .outcome import Outcome

CATALOG = ("qa_correctness", "hallucination")
#: The annotations each benchmark run carries beside the judge's own.
HUMAN_LABEL = "human_label"
AGREEMENT = "agreement"


class JudgeBenchmark(DatasetRun):
    """The judge under test and the golden cases, per group (one golden dataset)."""

    name: ClassVar[str] = "judge benchmark"
    hook_kind: ClassVar[str] = "benchmark"

    def __init__(self, ctx: Context, outcome: Outcome, **parts: Any) -> None:
        super().__init__(ctx, outcome, **parts)
        self.spec = self.settings.benchmark or ""
        self._judges: dict[str, JudgeUnderTest] = {}
        self._cases: dict[str, list[Case]] = {}
        self.unlabelled: dict[str, int] = {}
        #: Per group: the golden examples whose people disagree, by case id: their answers.
        self.disagreed: dict[str, dict[str, list[str]]] = {}
        self._labelled: dict[str, int] = {}  # golden examples of the whole set (unnarrowed)
        self._against: dict[str, str] = {}  # group key -> the tag it is judged at
        self._bases: dict[str, Group] = {}  # such a group's key -> the candidate's group

    # --- the dataset run, with the judge as its only evaluator and no task ------------------

    def groups(self) -> list[Group]:
        """The golden set's group, and the one judged by the version
        --phoenix-benchmark-against names."""
        found = []
        for group in self.spec_groups():
            other = self._against_group(group)
            found += [group] + ([other] if other is not None else [])
        return found

    def prepare_group(self, group: Group) -> None:
        from .golden import empty_reason, input_problem, label_notice

        self.evaluators(group)  # the judge under test, built and checked now
        judge, cases = self.judge(group), self.golden_cases(group)
        if group.key not in self._against and not cases:
            raise UsageProblem(empty_reason(
                self.spec, group, judge, self._labelled.get(group.key, 0),
                self.unlabelled.get(group.key, 0), len(self.disagreed.get(group.key, {}))))
        problem = input_problem(self.spec, group, judge, cases, self.settings.reference)
        if problem:
            raise UsageProblem(problem)
        if group.key in self._against:
            return  # the candidate's golden set, said once
        if notice := label_notice(self.spec, group, judge, cases):
            self.ctx.notice(notice)
        self._unused_hooks(group)

    def _unused_hooks(self, group: Group) -> None:
        """A conftest's task and evaluators do not run in a benchmark (the judge under test
        alone judges the golden set's own outputs): said, never ignored without a word."""
        if self.ctx.host.task_hook(group) is not None:
            self.ctx.notice(f"judge {self.spec!r} on {group.label}: the "
                            f"pytest_phoenix_evals_task hook is not called in a benchmark: "
                            f"the judge judges each golden example's own output (a reference "
                            f"goes with --phoenix-reference=JSONPATH)")
        judge = self.judge(group).judge
        others = [e.name for e in self.ctx.host.evaluators_hook(group, "benchmark")
                  if e is not judge and e.name != judge.name]
        if others:
            self.ctx.notice(f"judge {self.spec!r} on {group.label}: the "
                            f"pytest_phoenix_evals_evaluators hook's evaluator(s) "
                            f"{', '.join(map(repr, others))} do not run in a benchmark: only "
                            f"the judge under test does (a judge of the hook named "
                            f"{self.spec!r} is the one under test)")

    def plans(self, group: Group) -> list[CasePlan]:
        judge = self.evaluators(group)
        return [CasePlan(case, None, judge, case.example.reference)
                for case in self.golden_cases(group)]

    def find_task(self, group: Group) -> None:
        return None  # the judge judges the example's own output

    def untested(self, tested: set[str]) -> None:
        return None

    def choose_evaluators(self, group: Group, extra: Sequence[Evaluator] = ()
                          ) -> list[Evaluator]:
        return [self.judge(group)]

    def version_dependent_paths(self, group: Group, chosen: Sequence[Evaluator]) -> list[str]:
        return []

    def runner_name(self) -> str:
        return f"benchmark of judge {self.settings.benchmark}"

    def task_label(self, group: Group) -> str:
        """``judge NAME`` and, for a judge prompt, its name and version (``@TAG`` for the
        version compared against)."""
        from .._core.naming import row_id

        label = f"judge {self.settings.benchmark}"
        if prompt := self.prompt(group):
            label += f" prompt {prompt[0]} v{row_id(prompt[1])}"
        if tag := self._against.get(group.key):
            label += f" @{tag}"
        return label

    def selected(self, cases: Sequence[Case]) -> None:
        """A benchmark on some of its golden examples says so, in the summary and in the
        experiment's metadata; it never promotes (see :meth:`promote`)."""
        chosen: dict[str, set[str]] = {}
        for case in cases:
            chosen.setdefault(case.group.key, set()).add(case.example.id)
        for group in self.groups():
            total = self.golden_total(group)
            ran = len(chosen.get(group.key, ()))
            if ran >= total:
                continue
            why = self.ctx.host.selected_by()
            self.partial[group.key] = {"cases": ran, "examples": total, "selected_by": why}
            self.ctx.notice(f"{group.label}: a partial benchmark: {ran} of {total} golden "
                            f"examples selected ({why}); no tag is moved on it")

    def gated(self, group: Group) -> bool:
        """The gates (and the promotion) are the candidate's, not the version compared."""
        return group.key not in self._against

    def finish(self, passed: bool | None) -> None:
        """The agreement report, the figures into each experiment's metadata, then
        --phoenix-promote-tag."""
        self.outcome.baseline_lines += self.report_lines(self.outcome.results)
        self.outcome.markdown += self.report_markdown(self.outcome.results)
        self._record_figures()
        self.outcome.baseline_lines += self.promote(passed)

    # --- what Phoenix keeps of the benchmark -----------------------------------------------

    def sink(self) -> Sink:
        """The dataset run's experiment sink, each run also carrying the human label (an
        annotation of kind HUMAN) and whether the judge agreed with it."""
        sink = super().sink()
        if hasattr(sink, "more_scores"):
            sink.more_scores = self.human_scores
        return sink

    def human_scores(self, result: CaseResult) -> list[Score]:
        """``human_label`` (kind HUMAN: the golden example's label, or score) and, for a judge
        of labels, ``agreement`` (agree 1 / disagree 0; a judge that gave no label disagrees,
        as in the gates), beside the judge's own annotation on the case's run."""
        from .._core.secrets import redact, redact_value
        from .._core.types import Score

        judge = self._judges.get(result.case.group.key)
        if judge is None:
            return []
        found = next((score for score in result.scores if score.name == judge.names[0]
                      and "human_label" in (score.metadata or {})), None)
        if found is None:
            return []
        human = found.metadata.get("human_label")
        human_score = found.metadata.get("human_score")
        if human is None and human_score is None:
            return []
        what = {"judge": redact(self.spec), "annotation": judge.names[0]}
        scores = [Score(name=HUMAN_LABEL, evaluator=judge.name, annotator_kind="HUMAN",
                        label=None if human is None else redact(str(human)),
                        score=human_score, metadata=redact_value(dict(what)),
                        explanation="the label people gave this golden example",
                        start_time=found.start_time, end_time=found.end_time)]
        if not judge.continuous and human is not None:
            agreed = found.error is None and found.label == human
            said = "no label (an error)" if found.error is not None or found.label is None \
                else repr(found.label)
            scores.append(Score(
                name=AGREEMENT, evaluator=judge.name, annotator_kind="CODE",
                label="agree" if agreed else "disagree", score=1.0 if agreed else 0.0,
                explanation=redact(f"the judge said {said}, people said {human!r}"),
                metadata=redact_value(dict(what)), start_time=found.start_time,
                end_time=found.end_time))
        return scores

    def _pairs(self, results: list[CaseResult]
               ) -> list[tuple[str, Group, JudgeUnderTest, list[tuple[Any, Any]], int]]:
        """Per group: (key, group, the judge, its (judge, human) pairs, how many cases the
        judge did not answer)."""
        from .._core.gates import human_pairs

        by_group: dict[str, list[CaseResult]] = {}
        for result in results:
            by_group.setdefault(result.case.group.key, []).append(result)
        found = []
        for key, members in by_group.items():
            group = members[0].case.group
            judge = self.judge(group)
            pairs, unanswered = human_pairs(judge.names[0], members, scores=judge.continuous)
            found.append((key, group, judge, pairs, unanswered))
        return found

    def figures(self, results: list[CaseResult]) -> dict[str, dict[str, Any]]:
        """The summary figures per group, as plain data: n, each metric with its 95 %
        interval (and the method), the confusion matrix."""
        from .._report.agreement import figures

        return {key: figures(judge.names[0], pairs, unanswered, judge.continuous)
                for key, _, judge, pairs, unanswered in self._pairs(results)}

    def _record_figures(self) -> None:
        """The summary figures into each benchmark experiment's metadata
        (``metadata["benchmark"]["figures"]``); a failure to write them is said and fails
        the run, as a result that did not reach Phoenix does."""
        report = self.outcome.upload_report
        if report is None or not report.destinations:
            return
        from .._core.secrets import redact_value

        experiments = {d.group.key: d.id for d in report.destinations}
        figures = self.figures(self.outcome.results)
        gateway = None
        try:
            for key, found in figures.items():
                experiment = experiments.get(key)
                if experiment is None:
                    continue
                if gateway is None:
                    gateway = self.ctx.gateway.reopened()  # the run's clients are closed
                try:
                    current = (gateway.experiment(experiment) or {}).get("metadata") or {}
                    benchmark = {**(current.get("benchmark") or {}), "figures": found}
                    gateway.add_experiment_metadata(experiment,
                                                    redact_value({"benchmark": benchmark}))
                except Exception as exc:
                    report.failures.append(f"the benchmark's figures could not be written to "
                                           f"the metadata of experiment {experiment}: {exc}")
        finally:
            if gateway is not None:
                gateway.close()

    def corrections(self) -> int:
        """--phoenix-corrections: judge traces people corrected become golden examples."""
        from .corrections import add_corrections

        return add_corrections(self.ctx)

    # --- the judge ---------------------------------------------------------------------------

    def judge(self, group: Group) -> JudgeUnderTest:
        """The judge under test on ``group``'s golden set; UsageError naming the choices."""
        if group.key not in self._judges:
            from .._core.naming import annotation_names
            from .._evaluators.benchmark import JudgeUnderTest

            found = self._against_judge(group) if group.key in self._against else \
                self._find(group)
            # Where the human label may be: the annotation's name, the judge's, the name the
            # command line gave, and a judge prompt's tool name.
            names = [*annotation_names(found.output_configs), found.name,
                     self.spec.rsplit("/", 1)[-1], *(getattr(found, "tool_configs", None) or {})]
            self._judges[group.key] = JudgeUnderTest(found, list(dict.fromkeys(names)),
                                                     reference=self.settings.reference)
        return self._judges[group.key]

    def _find(self, group: Group) -> Any:
        from .._core.naming import annotation_names
        from .._phoenix.http import PhoenixError

        source = self.dataset_source
        spec = self.spec
        if spec.startswith("prompt:"):
            return self._from_prompt(spec.removeprefix("prompt:"))
        try:
            if spec.startswith("dataset:"):
                other, _, name = spec.removeprefix("dataset:").rpartition("/")
                if not other or not name:
                    raise UsageProblem(f"--phoenix-benchmark {spec!r}: write "
                                       f"dataset:DATASET/EVALUATOR")
                attached, where = source.attached_to(source.group(other)), f"dataset {other!r}"
            else:
                name, attached = spec, source.attached_to(group)
                where = f"the golden dataset {group.dataset_name!r}"
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-benchmark {spec!r}: {exc}") from None
        for evaluator in attached:
            if name == evaluator.name or name in annotation_names(evaluator.output_configs):
                if evaluator.kind != "LLM":
                    raise UsageProblem(
                        f"--phoenix-benchmark {spec!r}: {evaluator.name!r} is a "
                        f"{evaluator.kind.lower()} evaluator, not a judge: only LLM judges "
                        f"are benchmarked against human labels")
                return evaluator
        if not spec.startswith("dataset:"):
            hooked = self._from_hook(group, name)
            if hooked is not None:
                return hooked
        if not spec.startswith("dataset:") and name in CATALOG:
            from .._evaluators.llm import catalog

            return getattr(catalog, name)()
        judges = sorted(e.name for e in attached if e.kind == "LLM")
        raise UsageProblem(
            f"--phoenix-benchmark {spec!r}: no LLM judge {name!r} is attached to {where} "
            f"(its judges: {', '.join(judges) or 'none'}), and it is none of this plugin's "
            f"judges ({', '.join(CATALOG)}); a judge attached to another dataset is "
            f"dataset:DATASET/EVALUATOR")

    def _from_hook(self, group: Group, name: str) -> Any:
        """The judge named ``name`` among the pytest_phoenix_evals_evaluators hook's (a
        catalogue judge given its own paths, ``qa_correctness(reference=...)``), or None."""
        from .._core.naming import annotation_names

        for evaluator in self.ctx.host.evaluators_hook(group, "benchmark"):
            if name == evaluator.name or name in annotation_names(evaluator.output_configs):
                if getattr(evaluator, "kind", None) != "LLM":
                    raise UsageProblem(
                        f"--phoenix-benchmark {self.spec!r}: the evaluator {evaluator.name!r} "
                        f"of the pytest_phoenix_evals_evaluators hook is not an LLM judge: "
                        f"only LLM judges are benchmarked against human labels")
                return evaluator
        return None

    def _from_prompt(self, reference: str) -> Any:
        """``prompt:NAME[@TAG|@VERSION_ID]``: a judge prompt of Phoenix prompt management (the
        version tagged --phoenix-prompt-tag, else the latest, when none is named), built as
        production judging builds it (``judge_prompts.py``)."""
        from .judge_prompts import judge_from_prompt

        return judge_from_prompt(self.ctx, reference, default_tag=self.settings.prompt_tag,
                                 option="--phoenix-benchmark")

    # --- the golden cases --------------------------------------------------------------------

    def golden_cases(self, group: Group) -> list[Case]:
        """The group's cases (narrowed by --phoenix-examples, --phoenix-limit) whose example
        has a human label for the judge, and only one: an example whose people disagree is
        left out (counted, and said in the report)."""
        if group.key not in self._cases:
            from dataclasses import replace

            from .._core.naming import case_id
            from .._evaluators.benchmark import disagreement, human_answers

            judge = self.judge(group)
            base = self._bases.get(group.key)
            examples = self.dataset_source.dataset(base or group).examples
            disagreed = {case_id(e): found for e in examples
                         if (found := disagreement(e.metadata, judge.names))}
            golden = {e.id for e in examples if human_answers(e.metadata, judge.names)
                      and case_id(e) not in disagreed}
            self.disagreed[group.key] = disagreed
            self.unlabelled[group.key] = len(examples) - len(golden) - len(disagreed)
            self._labelled[group.key] = len(golden)
            every = self.dataset_source.cases(group) if base is None else [
                replace(case, group=group) for case in self.dataset_source.cases(base)]
            self._cases[group.key] = [c for c in every if c.example.id in golden]
        return self._cases[group.key]

    def golden_total(self, group: Group) -> int:
        """How many golden examples the whole golden set has (not narrowed by any selection)."""
        self.golden_cases(group)
        return self._labelled[group.key]

    def prompt(self, group: Group) -> tuple[str, str] | None:
        """(prompt name, version id) of the judge under test, when it is a prompt version of
        Phoenix prompt management."""
        self.judge(group)
        return self._prompt_of(group.key)

    def metadata(self, group: Group) -> dict[str, Any]:
        """What the experiment's metadata says of the benchmark: the judge and its prompt."""
        found: dict[str, Any] = {"judge": self.spec,
                                 "human_labels": len(self.golden_cases(group)),
                                 "without_human_label": self.unlabelled.get(group.key, 0),
                                 "human_labels_disagree": len(self.disagreed.get(group.key,
                                                                                 {}))}
        if prompt := self.prompt(group):
            found["prompt"], found["prompt_version_id"] = prompt
        tag = self._against.get(group.key) or self.settings.prompt_tag
        if tag:
            found["prompt_tag"] = tag
        return {"benchmark": found}

    # --- side by side: --phoenix-benchmark-against=TAG ----------------------------------------

    def _against_group(self, group: Group) -> Group | None:
        """The group of the same golden set judged by the version tagged
        --phoenix-benchmark-against (None without it)."""
        tag = self.settings.benchmark_against
        if not tag or group.key in self._against:
            return None
        from dataclasses import replace

        other = replace(group, key=f"{group.key}@{tag}", label=f"{group.label}[{tag}]")
        self._against[other.key] = tag
        self._bases[other.key] = group
        return other

    def _against_judge(self, group: Group) -> Any:
        """The judge under test with its prompt version tagged ``tag`` (the candidate's
        evaluator, built again)."""
        from .._evaluators.attached import AttachedEvaluators

        base, tag = self._bases[group.key], self._against[group.key]
        found = self._find(base)
        prompt = getattr(getattr(found, "prompt", None), "prompt_name", None)
        node = next((n for n in self.dataset_source.dataset(base).evaluator_nodes
                     if n.get("name") == found.name), None)
        if node is None or not prompt:
            raise UsageProblem(f"--phoenix-benchmark-against={tag}: judge {self.spec!r} is "
                               f"not a prompt of Phoenix prompt management, so it has no "
                               f"tagged versions to compare with")
        if self.ctx.gateway.prompt_version(prompt, tag=tag) is None:
            raise UsageProblem(f"--phoenix-benchmark-against={tag}: prompt {prompt!r} has "
                               f"no version tagged {tag!r}")
        builder = AttachedEvaluators(self.ctx.gateway, prompt_tag=tag,
                                     notices=self.ctx.notices,
                                     evaluate_on=self.settings.evaluate_on)
        return builder.build(node, base.dataset_name)

    def comparison_lines(self, results: list[CaseResult]) -> list[str]:
        """Example by example: what each version got right that the other did not."""
        from .._report.agreement import versions_lines

        lines = []
        right: dict[str, dict[str, bool]] = {}
        for result in results:
            right.setdefault(result.case.group.key, {})[result.case.example.id] = result.passed
        names = {r.case.example.id: r.case.case_id for r in results}
        for key, base in self._bases.items():
            mine, theirs = right.get(base.key), right.get(key)
            if mine is not None and theirs is not None:
                lines += versions_lines(self.settings.prompt_tag or "the candidate",
                                        self._against[key], base.label, mine, theirs, names)
        return lines

    # --- the end of the run --------------------------------------------------------------

    def report_lines(self, results: list[CaseResult]) -> list[str]:
        """n, each metric with its 95 % interval, and the confusion matrix, per group."""
        from .._report.agreement import metric_lines

        self.groups()  # (on xdist's controller: the groups compared are known now)
        lines: list[str] = []
        for key, group, judge, pairs, unanswered in self._pairs(results):
            self.golden_cases(group)  # (on xdist's controller: counts the examples left out)
            lines += metric_lines(f"judge {self.spec!r} against human labels on {group.label}",
                                  pairs, judge.continuous)
            if unanswered:
                lines.append(f"  {unanswered} case(s) the judge did not answer")
            left_out = self.unlabelled.get(key, 0)
            if left_out:
                lines.append(f"  {left_out} example(s) without a human label were left out")
            disagreed = self.disagreed.get(key) or {}
            if disagreed:
                shown = "; ".join(f"{case}: {' vs '.join(answers)}"
                                  for case, answers in list(disagreed.items())[:5])
                more = f"; and {len(disagreed) - 5} more" if len(disagreed) > 5 else ""
                lines.append(f"  {len(disagreed)} example(s) whose human labels disagree were "
                             f"left out ({shown}{more})")
        return lines + self.comparison_lines(results)

    def report_markdown(self, results: list[CaseResult]) -> list[str]:
        """The same figures as tables, for the markdown summary: one section per group."""
        from .._report.agreement import metric_markdown

        return [metric_markdown(f"Judge {self.spec} against human labels on {group.label}",
                                pairs, unanswered, judge.continuous)
                for _, group, judge, pairs, unanswered in self._pairs(results)]

    def promote(self, passed: bool | None) -> list[str]:
        """--phoenix-promote-tag: move the tag to the judged prompt version when every gate
        passed and every result is in Phoenix; the lines that say what happened, or why not."""

        tag = self.settings.promote_tag
        if not tag:
            return []
        prompts = {prompt for group_key in self._judges if group_key not in self._against
                   and (prompt := self._prompt_of(group_key)) is not None}
        why = self.outcome.promotion_blockers(passed)
        why += self._partial_evidence()
        if not prompts:
            why.append(f"judge {self.spec!r} is not a prompt version in Phoenix prompt "
                       f"management (only an attached LLM judge's prompt can carry a tag)")
        if why:
            return [f"--phoenix-promote-tag={tag}: nothing promoted: {'; '.join(why)}"]
        lines = []
        gateway = self.ctx.gateway.reopened()  # the run's clients are closed by now
        try:
            lines += self._move(gateway, tag, sorted(prompts))
        finally:
            gateway.close()
        return lines

    def _partial_evidence(self) -> list[str]:
        """Why the results are not the whole golden set (-k, --lf, deselection,
        --phoenix-examples, --phoenix-limit, a shard): counted from what ran, per candidate
        group, so that no way of selecting is missed."""
        ran: dict[str, set[str]] = {}
        for result in self.outcome.results:
            ran.setdefault(result.case.group.key, set()).add(result.case.example.id)
        why = []
        for group in self.groups():
            if group.key in self._against:
                continue
            total, done = self.golden_total(group), len(ran.get(group.key, ()))
            if done < total:
                why.append(f"only {done} of the {total} golden examples of {group.label} ran "
                           f"({self.ctx.host.selected_by()}); a tag moves only on the whole "
                           f"golden set")
        return why

    def _move(self, gateway: Any, tag: str, prompts: list[tuple[str, str]]) -> list[str]:
        from .._phoenix.http import PhoenixError
        from .prompt import move_tag

        lines = []
        for name, version in prompts:
            try:
                lines.append(move_tag(gateway, name, version, tag,
                                      f"promoted by pytest-phoenix-evals: judge {self.spec!r} "
                                      f"passed its gates against human labels"))
            except PhoenixError as exc:
                lines.append(f"--phoenix-promote-tag={tag}: could not move the tag of prompt "
                             f"{name!r}: {exc}")
                self.outcome.promotion_failed = True
        return lines

    def _prompt_of(self, group_key: str) -> tuple[str, str] | None:
        inner = self._judges[group_key].judge
        prompt = getattr(inner, "prompt", None)
        name, version = getattr(prompt, "prompt_name", None), getattr(prompt, "version_id", None)
        return (name, version) if name and version else None
