"""The session summary: every line of it, for the terminal and the markdown file. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._core.repeat import Repeated
from .._core.types import NOT_RUN, CaseResult

if TYPE_CHECKING:
    from .._core.gates import GateResult
    from .._run.sinks.base import UploadReport


@dataclass
class Summary:
    """What the end of a session knows, from which every summary line is built."""

    results: Sequence[CaseResult]
    report: UploadReport | None = None
    no_upload: bool = False
    notices: Sequence[str] = ()
    gate_results: Sequence[GateResult] | None = None
    baseline_lines: Sequence[str] = ()
    written: Sequence[str] = ()
    repetitions: int = 1
    pass_rule: str = "all"
    repetitions_auto: bool = False  # --phoenix-repetitions=auto:N (repetitions is N)
    # (observer, case id, error) of each observer call that raised.
    observer_errors: Sequence[Sequence[str]] = ()
    # Why the exit status is 1 whatever the tests said.
    at_risk: Sequence[str] = ()
    # Markdown sections for the markdown summary only (charts, a benchmark's tables).
    markdown: Sequence[str] = ()
    # The command that uploads what the journal keeps (with the run's --phoenix-url).
    upload_pending: str = "pytest --phoenix-upload-pending"

    def __post_init__(self) -> None:
        """The lines the modes hand in (notices, the baseline, agreement, push and promotion
        lines, what was written, observer errors) may quote a server's answer or an
        exception's text: they pass the secret filter here, where they enter the summary, so
        that the terminal, the markdown file and $GITHUB_STEP_SUMMARY all get them filtered,
        whichever mode wrote them."""
        from .._core.secrets import redactor

        scrub = redactor()
        self.notices = [scrub(line) for line in self.notices]
        self.baseline_lines = [scrub(line) for line in self.baseline_lines]
        self.markdown = [scrub(section) for section in self.markdown]
        self.written = [scrub(line) for line in self.written]
        self.observer_errors = [[scrub(part) for part in error]
                                for error in self.observer_errors]

    def experiments(self) -> list[tuple[str, str, str]]:
        """(group label, link, what it links to) of each destination, in the order they were
        made: an experiment, or the project whose spans (traces) were annotated."""
        return [(d.group.label, d.url,
                 "experiment" if d.group.kind in ("dataset", "test") else "project")
                for d in self.report.destinations] if self.report else []

    def main_lines(self) -> list[str]:
        """The per-group tables, judge usage, notices, links and upload problems."""
        report = self.report
        lines = summary_lines(
            self.results, self.experiments(), report.failures if report else [],
            report.pending if report else 0, self.no_upload, notes=self.notices,
            journaled=report.journaled if report else {}, upload_pending=self.upload_pending)
        if report is not None and report.unjournaled:
            lines.append(f"the journal could not keep {len(report.unjournaled)} result(s) "
                         f"(they were still uploaded; those not in Phoenix are lost):")
            lines += [f"  {line}" for line in report.unjournaled[:20]]
        if self.observer_errors:
            lines.append(f"an observer of finished cases raised on {len(self.observer_errors)} "
                         f"case(s) (their results were recorded and uploaded all the same):")
            lines += [f"  {observer} on {case}: {error}"
                      for observer, case, error in self.observer_errors[:10]]
        if self.at_risk:
            lines.append(f"exit status 1: {'; '.join(self.at_risk)}")
        return lines

    def lines(self) -> list[str]:
        """The whole terminal summary (empty when nothing ran and no gate was decided)."""
        gates = ["", *gate_lines(self.gate_results)] if self.gate_results is not None else []
        if not self.results:
            return gates[1:] + list(self.written)
        return (self.main_lines() + repetition_lines(self.results, self.repetitions,
                                                     self.pass_rule, self.repetitions_auto)
                + list(self.baseline_lines) + gates + list(self.written))

    def outcome(self, exitstatus: int) -> str:
        """The markdown summary's first line."""
        failed = sum(not r.passed for r in self.results)
        outcome = (f"**{'PASSED' if exitstatus == 0 else 'FAILED'}**: "
                   f"{len(self.results)} cases, {failed} failed")
        if self.gate_results is not None:
            outcome += "; " + gates_verdict(self.gate_results)
        for label, why in unasserted(self.results).items():
            outcome += f"; **nothing asserted** on {label} ({why})"
        return outcome


def repetition_lines(results: Sequence[CaseResult], repetitions: int, pass_rule: str,
                     auto: bool = False) -> list[str]:
    """With repetitions: how stable the cases were, and which ones were flaky; with auto,
    how many runs beyond the first each case took."""
    if repetitions == 1:
        return []
    runs: dict[tuple[str, str], list[CaseResult]] = {}
    for result in results:
        runs.setdefault((result.case.group.key, result.case.example.id), []).append(result)
    cases = [Repeated(sorted(r, key=lambda x: x.case.repetition), pass_rule,
                      repetitions if auto else None)
             for r in runs.values()]
    counts = {s: sum(c.stability == s for c in cases)
              for s in ("stable-pass", "flaky", "stable-fail")}
    each = f"auto, at most {repetitions}" if auto else f"{repetitions}"
    lines = ["", f"repetitions: {each} runs per case, pass rule {pass_rule}: "
                 f"{len(cases)} cases, " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    if auto:
        made = sum(len(c.results) for c in cases)
        again = sum(len(c.results) > 1 for c in cases)
        lines.append(f"  runs: {made} for {len(cases)} cases: {made - len(cases)} extra "
                     f"run(s), {again} case(s) run again until settled (a fixed "
                     f"{repetitions} would have made {repetitions * len(cases)})")
    flaky = [c for c in cases if c.stability == "flaky"]
    lines += [f"  flaky: {c.case_id} ({c.passes}/{len(c.results)} runs passed; "
              f"{'passes' if c.passed else 'fails'} the rule)" for c in flaky[:30]]
    return lines


def gates_verdict(results: Sequence[GateResult]) -> str:
    failed = sum(not r.passed for r in results)
    return (f"gates: {failed} of {len(results)} failed" if failed
            else f"gates: all {len(results)} passed")



@dataclass
class _Tally:
    evaluator: str = ""
    cases: int = 0
    asserted: int = 0
    passed: int = 0
    errors: int = 0
    scores: list[float] = field(default_factory=list)


def summary_lines(
    results: Iterable[CaseResult],
    experiments: Sequence[tuple[str, str, str]],
    failures: Sequence[str],
    pending: int = 0,
    no_upload: bool = False,
    notes: Sequence[str] = (),
    journaled: Mapping[str, int] | None = None,
    upload_pending: str = "pytest --phoenix-upload-pending",
) -> list[str]:
    """The terminal summary: per group and annotation, then links and upload problems."""
    from tabulate import tabulate

    by_dataset: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_dataset[result.case.group.label].append(result)
    lines: list[str] = []
    for dataset, cases in by_dataset.items():
        passed = sum(r.passed for r in cases)
        task_errors = sum(r.error is not None for r in cases)
        line = f"{dataset}: {len(cases)} case{'s' if len(cases) != 1 else ''}, {passed} passed, "
        line += f"{len(cases) - passed} failed"
        line += f" ({task_errors} with task errors)" if task_errors else ""
        lines.append(line)
        if why := unasserted(cases).get(dataset):
            lines.append(f"  NOTHING ASSERTED: {why}: its {passed} passed case"
                         f"{'s' if passed != 1 else ''} only show{'s' if passed == 1 else ''} "
                         f"that the task did not raise")
        tallies: dict[str, _Tally] = {}
        for result in cases:
            for score, verdict in zip(result.scores, result.verdicts):
                tally = tallies.setdefault(score.name, _Tally(evaluator=score.evaluator))
                tally.cases += 1
                tally.errors += score.error is not None
                if verdict.status != "recorded":
                    tally.asserted += 1
                    tally.passed += verdict.status == "pass"
                if score.score is not None:
                    tally.scores.append(score.score)
        rows = [[
            name,
            t.evaluator if t.evaluator != name else "",
            t.cases,
            f"{100 * t.passed / t.asserted:.1f}%" if t.asserted else "recorded",
            f"{sum(t.scores) / len(t.scores):.3g}" if t.scores else "",
            t.errors or "",
        ] for name, t in tallies.items()]
        if rows:
            lines += tabulate(rows, headers=["annotation", "evaluator", "cases", "pass rate",
                                             "mean score", "errors"],
                              tablefmt="simple", disable_numparse=True).splitlines()
        lines.append("")
    results = [r for cases in by_dataset.values() for r in cases]
    if usage := judge_usage(results):
        lines.append(usage)
    lines += not_run(results)
    lines += notes
    for label, url, noun in experiments:
        lines.append(f"experiment for {label}: {url}" if noun == "experiment" else
                     f"annotations written in project {label}: {url}")
    if no_upload:
        lines.append("nothing uploaded (--phoenix-no-upload)")
    if failures or pending:
        lines.append(f"could not upload {len(failures) + pending} item(s):")
        lines += [f"  {failure}" for failure in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more")
        if pending:
            lines.append(f"  {pending} case(s) still uploading when the wait ran out")
    if journaled:
        import os

        total = sum(journaled.values())
        lines.append(f"{total} result(s) are not all in Phoenix yet; they are kept in:")
        lines += [f"  {os.path.relpath(path)} ({count})" for path, count in journaled.items()]
        lines.append(f"  when Phoenix is back, run `{upload_pending}` in this "
                     "directory to upload them where they were meant for (the same "
                     "experiment, project or dataset)")
    return lines


NO_EVALUATOR = "no evaluator ran"
RECORDED_ONLY = "its evaluators only recorded scores, none has a pass rule"


def unasserted(results: Iterable[CaseResult]) -> dict[str, str]:
    """The dataset groups whose cases passed with nothing asserted beyond the task's errors
    (label -> why): no evaluator ran on them, or every annotation was only recorded. A test
    of the fixture style asserts in its own body, and is never listed."""
    found: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        if result.case.group.kind == "dataset" and result.error is None:
            found[result.case.group.label].append(result)
    why: dict[str, str] = {}
    for label, cases in found.items():
        if not any(r.scores for r in cases):
            why[label] = NO_EVALUATOR
        elif all(v.status == "recorded" for r in cases for v in r.verdicts):
            why[label] = RECORDED_ONLY
    return why


def judge_usage(results: Iterable[CaseResult]) -> str | None:
    """One line summing the judges' calls, tokens and (when priced) cost."""
    calls = prompt = completion = hits = 0
    cost = 0.0
    priced = False
    for result in results:
        seen: set[str] = set()
        for score in result.scores:
            meta = score.metadata
            # A judge with several output configs made one call; count it once.
            if score.annotator_kind != "LLM" or "total_tokens" not in meta \
                    or score.evaluator in seen:
                continue
            seen.add(score.evaluator)
            if meta.get("judge_cache") == "hit":
                hits += 1
                continue
            calls += 1
            prompt += int(meta.get("prompt_tokens") or 0)
            completion += int(meta.get("completion_tokens") or 0)
            if "cost_usd" in meta:
                priced = True
                cost += float(meta["cost_usd"])
    if not calls and not hits:
        return None
    line = (f"judge usage: {calls} call{'s' if calls != 1 else ''}, {prompt} prompt + "
            f"{completion} completion = {prompt + completion} tokens")
    line += f", ${cost:.4f}" if priced else " (cost: set --phoenix-judge-price)"
    return line + (f"; {hits} answer{'s' if hits != 1 else ''} from the judge cache "
                   f"(--phoenix-cache)" if hits else "")



def not_run(results: Iterable[CaseResult]) -> list[str]:
    """Evaluators that never ran (the server could not run them, ...), with the first reason."""
    reasons: dict[str, tuple[int, str]] = {}
    for result in results:
        for score in result.scores:
            if score.error and score.error.startswith(NOT_RUN):
                count, reason = reasons.get(score.evaluator, (0, score.error))
                reasons[score.evaluator] = (count + 1, reason)
    return [f"{evaluator} was not run on {count} case{'s' if count != 1 else ''}: "
            f"{reason.removeprefix(NOT_RUN)}" for evaluator, (count, reason) in reasons.items()]


def gate_lines(results: Sequence[GateResult]) -> list[str]:
    """The summary's gate table and verdict."""
    from tabulate import tabulate

    rows = [[r.gate.text, r.where, r.cases, r.shown_value(), r.gate.describe(),
             "pass" if r.passed else "FAIL", r.detail] for r in results]
    lines = tabulate(rows, headers=["gate", "dataset", "cases", "value", "needs", "result",
                                    "notes"], tablefmt="simple", disable_numparse=True
                     ).splitlines()
    verdict = gates_verdict(results) + "; the exit status follows them (--phoenix-fail-under)"
    return [verdict, *lines]

