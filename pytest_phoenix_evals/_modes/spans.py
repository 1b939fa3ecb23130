"""Production judging (``--phoenix-project``): a project's spans (or traces) that lack the
evaluators' annotations are the cases, each carrying its own output (no task); the evaluators
are named on the command line (or by a conftest hook); results go back as span (trace)
annotations, journaled first, never twice; at the end, failing spans can grow a dataset.

pytest-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.errors import UsageProblem
from .._run import handover
from .base import CasePlan, Mode
from .named_judges import CATALOG

if TYPE_CHECKING:
    from .._core.types import Case, CaseResult, Group
    from .._evaluators.protocol import Evaluator
    from .._phoenix.traces import Project
    from .._run.sinks.base import Destination, Sink
    from .._run.sources.sessions import SessionListing, SessionSource
    from .._run.sources.spans import Listing, SpanSource
    from .context import Context
    from .outcome import Outcome

#: Spans read per annotation request while regating a window.
REGATE_PAGE = 500




def _first_errors(results: Sequence[CaseResult]) -> list[str]:
    """Each evaluator that errored: on how many cases, and its first error (which names the
    evaluator's line when it is code of the user's)."""
    found: dict[str, tuple[int, str]] = {}
    for result in results:
        for score in result.scores:
            if score.error:
                count, first = found.get(score.evaluator, (0, score.error))
                found[score.evaluator] = (count + 1, first)
    return [f"  {evaluator}: {count} error(s), the first: {first}"
            for evaluator, (count, first) in found.items()]


class ProductionRun(Mode):
    """A project's spans (or traces) judged and annotated."""

    name: ClassVar[str] = "production judging"

    def __init__(self, ctx: Context, outcome: Outcome, *,
                 source: SpanSource | SessionSource | None = None,
                 sink: Sink | None = None) -> None:
        super().__init__(ctx, outcome)
        self._source = source
        self._sink = sink

    # --- what it reads ----------------------------------------------------------------------

    @property
    def spans(self) -> SpanSource | SessionSource:
        """The project's spans (traces, sessions) that lack the evaluators' annotations."""
        if self._source is None and self.settings.target == "session":
            self._source = self._sessions()
        if self._source is None:
            from .._core.window import window
            from .._run.sources.claims import Claims
            from .._run.sources.spans import Listing, SpanSelection, SpanSource

            s = self.settings
            assert s.project is not None
            try:
                span_window = window(s.since, s.until, s.settle)
            except ValueError as exc:
                raise UsageProblem(f"--phoenix-since/--phoenix-until: {exc}") from None
            selection = SpanSelection(project=s.project, condition=s.spans, window=span_window,
                                      sample=s.sample, max_spans=s.max_spans, target=s.target,
                                      rejudge=s.rejudge, reference=s.reference,
                                      shard=s.shard)
            given = self.ctx.host.workerinput.get(handover.SPANS)
            listing = Listing.from_wire(json.loads(Path(given).read_text())) if given else None
            # Claimed on the server: runs at once on any host judge each subject once.
            claims = None if listing is not None or s.no_upload else \
                Claims(self.ctx.traces, s.target, ttl=s.claim_ttl)
            self._source = SpanSource(self.ctx.traces, selection, self._evaluators,
                                      claims=claims, listing=listing,
                                      journaled=None if listing is not None else self._journaled)
        return self._source

    def source(self) -> SpanSource | SessionSource:
        return self.spans

    def _sessions(self) -> SessionSource:
        """``--phoenix-target=session``: the project's settled sessions (``--phoenix-spans``
        read as a session filter)."""
        from .._core.window import window
        from .._run.sources.claims import Claims
        from .._run.sources.sessions import SessionListing, SessionSelection, SessionSource

        s = self.settings
        assert s.project is not None
        try:
            session_window = window(s.since, s.until, s.settle)
        except ValueError as exc:
            raise UsageProblem(f"--phoenix-since/--phoenix-until: {exc}") from None
        selection = SessionSelection(project=s.project, condition=s.spans, window=session_window,
                                     sample=s.sample, max_spans=s.max_spans, rejudge=s.rejudge,
                                     reference=s.reference, shard=s.shard)
        given = self.ctx.host.workerinput.get(handover.SPANS)
        listing = SessionListing.from_wire(json.loads(Path(given).read_text())) if given \
            else None
        traces = self.ctx.traces
        claims = None if listing is not None or s.no_upload else \
            Claims(traces, "session", ttl=s.claim_ttl)
        return SessionSource(traces, selection, self._evaluators, claims=claims, listing=listing,
                             journaled=None if listing is not None else self._journaled)

    def _journaled(self, project: Project) -> tuple[dict[str, set[str]], list[str]]:
        """The results waiting in this rootdir's journal for the project's spans on this
        server: they count as judged (upload-pending writes them)."""
        from .._phoenix.http import mask_url
        from .._phoenix.traces import normalised_url
        from .._run.sinks.journal import journal_dir, journaled_names

        traces = self.ctx.traces
        here = normalised_url(mask_url(traces.gateway.url))
        return journaled_names(journal_dir(self.ctx.host.rootpath), self.settings.target,
                               project.id, traces.server_identity(),
                               lambda url: normalised_url(url) == here)

    def describe(self) -> str:
        return f"project {self.settings.project} ({self.settings.target}s)"

    def groups(self) -> list[Group]:
        return [self.spans.group()]

    def plans(self, group: Group) -> list[CasePlan]:
        source = self.spans
        self.evaluators(group)  # checked and equipped before any case
        prepare = getattr(source, "prepare", None)  # spans: contexts built as they run
        return [CasePlan(case, None, source.needed(case), source.output(case), prepare)
                for case in source.cases(group)]

    def prepare(self) -> None:
        """Check the filter, list the spans, and say what will be judged (before
        collection)."""
        listing = self.checked_listing()
        self.evaluators(self.spans.group())  # equipped (judges, tracing) before cases run
        for line in self.listing_lines(listing):
            self.ctx.say(f"phoenix-evals: {line}")

    def checked_listing(self) -> Listing | SessionListing:
        """The listing, once the project, the judges' projects and the filter are checked;
        UsageProblem naming what to fix otherwise."""
        from .._phoenix.http import PhoenixError
        from .._run.sources.spans import SpanSource, condition_for, evaluator_names

        source, s = self.spans, self.settings
        if source.listed is not None:  # listed (and checked) already, here or by xdist's
            return source.listed  # controller
        traces = self.ctx.traces
        if not isinstance(source, SpanSource):
            return self._checked_sessions(source)
        try:
            project = source.project
            self._refuse_a_judge_project(project.name)
            if s.spans and (problem := traces.filter_problem(project, s.spans)):
                raise UsageProblem(f"--phoenix-spans {s.spans!r}: Phoenix refuses this span "
                                   f"filter: {problem}")
            names = sorted({n for e in source.evaluators() for n in evaluator_names(e)})
            whole = condition_for(source.selection, names)
            if problem := traces.filter_problem(project, whole):
                raise UsageProblem(f"the span filter {whole!r} is refused by Phoenix: "
                                   f"{problem}")
            return source.listing()
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-project {s.project!r}: {exc}") from None

    def _checked_sessions(self, source: SessionSource) -> SessionListing:
        """The session listing, once the project, the judges' projects and the session filter
        are checked."""
        from .._phoenix.http import PhoenixError

        s, traces = self.settings, self.ctx.traces
        try:
            project = source.project
            self._refuse_a_judge_project(project.name)
            if s.spans and (problem := traces.session_filter_problem(project, s.spans)):
                raise UsageProblem(f"--phoenix-spans {s.spans!r} (with --phoenix-target="
                                   f"session, a session filter): Phoenix refuses this session "
                                   f"filter: {problem}")
            whole = source.condition()
            if whole and (problem := traces.session_filter_problem(project, whole)):
                raise UsageProblem(f"the session filter {whole!r} is refused by Phoenix: "
                                   f"{problem}")
            return source.listing()
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-project {s.project!r}: {exc}") from None

    def _refuse_a_judge_project(self, project: str) -> None:
        """The loop guard's other half: judging the project the judges trace into would judge
        the judges' own calls, and grow with every run."""
        from .._evaluators.protocol import NeedsJudges
        from .context import JUDGE_PROJECT

        for evaluator in self.spans.evaluators():
            if not isinstance(evaluator, NeedsJudges):
                continue
            traced = getattr(evaluator, "project_name", None) or JUDGE_PROJECT
            if traced == project:
                raise UsageProblem(
                    f"--phoenix-project {project!r} is where judge {evaluator.name!r} traces "
                    f"its own calls: judging it would judge the judges; pick the project of "
                    f"your app")

    def listing_lines(self, listing: Listing | SessionListing) -> list[str]:
        s = self.settings
        window = self.spans.selection.window
        what = f"{s.target}(s)"
        lines = [f"project {listing.project.name!r}: {len(listing.cases)} {what} to judge"
                 + (f", from {window.describe()}" if window else "")
                 + (f" (sample {s.sample:g})" if s.sample is not None else "")
                 + (f" (shard {s.shard[0]}/{s.shard[1]})" if s.shard else "")]
        calls = self.judge_calls(listing)
        if calls:
            lines[0] += f"; {calls} judge call(s)"
        if listing.judged:
            lines.append(f"{listing.judged} {what} listed already have every evaluation")
        lines += self.unsettled_lines(listing)
        if listing.claimed:
            lines.append(f"{listing.claimed} {what} left to another run judging them now "
                         f"(claimed in Phoenix)")
        if listing.waiting:
            lines.append(f"{listing.waiting} {what} have results waiting in the journal, not "
                         f"judged again: {self.upload_pending()}")
        if listing.corrected:
            lines.append(f"{listing.corrected} {what} carry a person's correction of this "
                         f"plugin's annotation (annotator kind HUMAN): never judged again")
        lines += [f"journal not read: {problem}" for problem in listing.problems]
        if listing.unclaimed:
            lines.append(f"judging without claims, as Phoenix refused them "
                         f"({listing.unclaimed}): a run at the same time may judge the same "
                         f"{what}")
        if listing.more:
            lines.append(f"more {what} wait beyond --phoenix-max-spans={s.max_spans}: the next "
                         f"run takes them (oldest first)")
        return lines

    def unsettled_lines(self, listing: Listing | SessionListing) -> list[str]:
        """What the settle left for a later run, and when it can be judged."""
        from .._core.window import describe_ready, parse_time
        from .._run.sources.sessions import SessionListing

        s = self.settings
        if not listing.unsettled:
            return []
        ready = parse_time(listing.settles_at) if listing.settles_at else None
        when = f"; they can be judged from {describe_ready(ready)}" if ready else ""
        if isinstance(listing, SessionListing):
            why = (f"within --phoenix-settle={s.settle:g}s" if ready else
                   f"within --phoenix-settle={s.settle:g}s or after --phoenix-until")
            return [f"{listing.unsettled} session(s) had a trace {why}: left until they "
                    f"settle" + (f"; if none grows, they can be judged from "
                                 f"{describe_ready(ready)}" if ready else "")]
        return [f"{listing.unsettled} {s.target}(s) newer than --phoenix-settle="
                f"{s.settle:g}s wait{when}"]

    def judge_calls(self, listing: Listing | SessionListing) -> int:
        from .._evaluators.protocol import NeedsJudges

        judges = {e.name for e in self.spans.evaluators() if isinstance(e, NeedsJudges)}
        return sum(len(judges & set(found.needs)) for found in listing.cases)

    def collect_only_line(self) -> str | None:
        """--collect-only: how many judge calls the run would make, and about what they
        cost."""
        from .._run.sources.spans import SpanSource

        source = self.spans
        listing = source.listing()
        calls = self.judge_calls(listing)
        line = f"phoenix-evals: {len(listing.cases)} case(s), {calls} judge call(s)"
        prices = self.settings.judge.prices
        if prices and calls:
            contexts = source.every_context() if isinstance(source, SpanSource) else \
                [f.context for f in listing.cases]
            model = self.settings.judge.model or "gpt-4o-mini"
            price = prices.get(model) or next(iter(prices.values()))
            # About 4 characters a token; the prompt around the context and the answer are
            # guessed at 300 and 80 tokens.
            tokens_in = 0
            needs = [len(f.needs) for f in listing.cases]
            for count, context in zip(needs, contexts, strict=False):
                tokens_in += (len(json.dumps(context, default=str)) // 4 + 300) * count
            tokens_out = 80 * calls
            cost = (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
            line += (f", about {cost:.4f} USD at {price[0]:g}/{price[1]:g} USD per million "
                     f"tokens")
        return line

    # --- what it judges with ----------------------------------------------------------------

    def choose_evaluators(self, group: Group, extra: Sequence[Evaluator] = ()
                          ) -> list[Evaluator]:
        return [*self.spans.evaluators(group), *extra]

    def _evaluators(self, group: Group) -> list[Evaluator]:
        """The command line's evaluators, then the conftest hook's."""
        from .._run.sinks.span_annotations import RESERVED_NAMES
        from .._run.sources.spans import evaluator_names

        chosen = [e for name in self.settings.evaluators for e in self._named(name)]
        hooked = self.ctx.host.evaluators_hook(group, group.kind)
        self._without_reference(group, hooked)
        chosen += hooked
        if not chosen:
            raise UsageProblem(
                f"--phoenix-project {self.settings.project!r}: nothing to judge the spans "
                f"with: add --phoenix-evaluators=NAME,... ({', '.join(CATALOG)}, a Phoenix "
                f"judge template, tool_calls, dataset:NAME or prompt:NAME@TAG) or a "
                f"pytest_phoenix_evals_evaluators hook")
        for evaluator in chosen:
            reserved = RESERVED_NAMES & set(evaluator_names(evaluator))
            if reserved:
                raise UsageProblem(f"evaluator {evaluator.name!r} writes annotation "
                                   f"{sorted(reserved)[0]!r}, a name Phoenix keeps for "
                                   f"notes: give it another name")
        return chosen

    def _without_reference(self, group: Group, hooked: Sequence[Evaluator]) -> None:
        """A code evaluator of the hook that compares with the reference, where spans
        (traces, sessions) have none: said at collection, with where it is defined."""
        from .._core.where import defined_at
        from .._evaluators.code import reads_reference

        if self.settings.reference:
            return
        what = group.kind
        for evaluator in hooked:
            if not reads_reference(evaluator):
                continue
            where = defined_at(getattr(evaluator, "fn", evaluator))
            line = (f"{group.label}: evaluator {evaluator.name!r} of the "
                    f"pytest_phoenix_evals_evaluators hook"
                    + (f" ({where})" if where else "")
                    + f" reads expected/reference, which {what} do not have (no "
                    f"--phoenix-reference): it compares with an empty reference, and where it "
                    f"errors it writes nothing, so the same {what} are judged again by every "
                    f"run; return it for kind == 'dataset' only (the hook's kind argument)")
            self.ctx.say(f"phoenix-evals: {line}")
            self.ctx.notice(line)

    def _named(self, name: str) -> list[Evaluator]:
        from .named_judges import named_evaluators

        return named_evaluators(self.ctx, name, subject=self.settings.target)

    # --- where it writes --------------------------------------------------------------------

    def sink(self) -> Sink:
        if self._sink is None:
            from .._core.version import plugin_version
            from .._run.sinks.journal import journal_dir
            from .._run.sinks.span_annotations import AnnotationSink

            self._sink = AnnotationSink(
                self.ctx.traces, self.ctx.engine, self.spans.project, self.settings.target,
                metadata={"plugin": "pytest-phoenix-evals", "plugin_version": plugin_version()},
                journal_dir=journal_dir(self.ctx.host.rootpath),
                journal_suffix=self.ctx.journal_suffix())
        return self._sink

    def announce(self, group: Group, destination: Destination) -> str:
        return f"phoenix-evals: annotations go to project {group.label}: {destination.url}"

    # --- the run ----------------------------------------------------------------------------

    def for_workers(self, directory: str) -> dict[str, Any]:
        """On xdist's controller: list the spans once, for every worker to collect the
        same."""
        path = Path(directory) / "spans.json"
        if not path.exists():
            try:
                listing = self.checked_listing()
            except UsageProblem:
                return {}  # each worker finds the same problem and says it
            path.write_text(json.dumps(listing.to_wire()))
            for line in self.listing_lines(listing):
                self.ctx.say(f"phoenix-evals: {line}")
        return {handover.SPANS: str(path)}

    def nothing_to_do(self) -> bool:
        """The listing was made and found nothing to judge (a scheduled run with nothing new
        exits 0, not pytest's 5)."""
        listing = self.spans.listed
        return listing is not None and not listing.cases

    # --- the end ----------------------------------------------------------------------------

    def after_uploads(self) -> None:
        """After the annotations are written: the notices, failures into a dataset, claims
        gone."""
        from .._core.types import NOT_RUN

        if self._source is None:  # nothing was listed: nothing to say
            return
        results = self.outcome.results
        notices = self.ctx.notices
        worker = bool(self.ctx.host.workerinput)
        left = [r for r in results if any(s.error for s in r.scores)]
        if left and not worker:  # (the controller says it for every worker)
            budget = sum(any(s.error and "budget" in s.error and s.error.startswith(NOT_RUN)
                             for s in r.scores) for r in results)
            notices.append(
                f"{len(left)} case(s) had an evaluator error and got no annotation from it: "
                f"they are judged again by the next run"
                + (f" ({budget} stopped by --phoenix-budget-usd)" if budget else ""))
            notices += _first_errors(left)
        gone: set[str] = getattr(self._sink, "gone", set())
        if gone:
            what = "session(s)" if self.settings.target == "session" else "span(s)"
            notices.append(f"{len(gone)} {what} were deleted from Phoenix before their "
                           f"annotations could be written")
        if self.settings.add_failures_to and not worker:
            notices += self.add_failures(results)
        if problem := self._source.release():
            notices.append(problem)

    def regate(self) -> int:
        """``--phoenix-regate=window`` with ``--phoenix-project``: decide the gates over the
        annotations this plugin already wrote on the window's spans (``--phoenix-since`` ...), by
        this command line's evaluators and verdict rules. No judge is called; annotations of the
        same name written by humans or other tools are not read. The exit status."""
        from dataclasses import replace

        from .._core.baseline import rules_of
        from .._core.naming import IDENTIFIER
        from .._phoenix.http import PhoenixError
        from .._run.sources.spans import (
            SpanSource,
            condition_for,
            span_case,
            span_context,
            subject_of,
        )

        s = self.settings
        if s.regate != "window":
            raise UsageProblem(f"--phoenix-regate={s.regate!r} with --phoenix-project: write "
                               f"--phoenix-regate=window to decide the gates over the "
                               f"annotations already written in the window")
        if not s.gates:
            raise UsageProblem("--phoenix-regate=window decides --phoenix-fail-under gates: "
                               "add one, for example --phoenix-fail-under=hallucination=0.95")
        source, traces = self.spans, self.ctx.traces
        if not isinstance(source, SpanSource):
            return self._regate_sessions(source)
        try:
            project = source.project
            rules = rules_of(source.evaluators())
            names = sorted(rules)
            selection = replace(source.selection, rejudge=True)  # judged or not: every span
            condition = condition_for(selection, names)
            if problem := traces.filter_problem(project, condition):
                raise UsageProblem(f"the span filter {condition!r} is refused by Phoenix: "
                                   f"{problem}")
            group = source.group()
            results: list[CaseResult] = []
            unjudged = 0
            window = selection.window
            records = list(traces.spans(project, condition=condition,
                                        start=window.start if window else None,
                                        end=window.end if window else None))
            for at in range(0, len(records), REGATE_PAGE):
                page = records[at:at + REGATE_PAGE]
                found: dict[str, list[dict[str, Any]]] = {}
                subjects = [subject_of(r, s.target) for r in page]
                for row in traces.annotations(project, s.target, subjects, names,
                                              identifier=IDENTIFIER):
                    found.setdefault(str(row.get(f"{s.target}_id")), []).append(row)
                for record, subject in zip(page, subjects, strict=True):
                    rows = found.get(subject)
                    if not rows:
                        unjudged += 1
                        continue
                    context = span_context(record, [])
                    results.append(self._regated(span_case(record, context, group, s.target),
                                                 context["output"], rows, rules))
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-regate=window: {exc}") from None
        what = "trace(s)" if s.target == "trace" else "span(s)"
        return self._window_decided(project, group, results, unjudged, what,
                                    f"the annotations of project {project.name!r} from "
                                    f"{window.describe() if window else 'every span'}")

    def _regate_sessions(self, source: SessionSource) -> int:
        """``--phoenix-regate=window`` for sessions: the window's settled sessions (those
        started since ``--phoenix-since``), decided by our session annotations alone."""
        from dataclasses import replace

        from .._core.baseline import rules_of
        from .._core.naming import IDENTIFIER
        from .._phoenix.http import PhoenixError
        from .._run.sources.sessions import (
            session_case,
            session_context,
            settled,
            started_since,
        )

        traces = self.ctx.traces
        results: list[CaseResult] = []
        unjudged = 0
        try:
            project = source.project
            rules = rules_of(source.evaluators())
            names = sorted(rules)
            source.selection = replace(source.selection, rejudge=True)  # judged or not
            condition = source.condition()
            if condition and (problem := traces.session_filter_problem(project, condition)):
                raise UsageProblem(f"the session filter {condition!r} is refused by Phoenix: "
                                   f"{problem}")
            group = source.group()
            window = source.selection.window
            records = [r for r in traces.sessions(project, condition=condition)
                       if settled(r, window) and started_since(r, window)]
            for at in range(0, len(records), REGATE_PAGE):
                page = records[at:at + REGATE_PAGE]
                found: dict[str, list[dict[str, Any]]] = {}
                for row in traces.annotations(project, "session", [r.session_id for r in page],
                                              names, identifier=IDENTIFIER):
                    found.setdefault(str(row.get("session_id")), []).append(row)
                for record in page:
                    rows = found.get(record.session_id)
                    if not rows:
                        unjudged += 1
                        continue
                    context = session_context(record, {})
                    results.append(self._regated(session_case(record, context, group),
                                                 context["output"], rows, rules))
        except PhoenixError as exc:
            raise UsageProblem(f"--phoenix-regate=window: {exc}") from None
        return self._window_decided(project, group, results, unjudged, "session(s)",
                                    f"the session annotations of project {project.name!r} from "
                                    f"{window.describe() if window else 'every session'}")

    def _regated(self, case: Case, output: Any, rows: list[dict[str, Any]],
                 rules: Mapping[str, Any]) -> CaseResult:
        """A subject's annotations of ours as its result, judged by this command line's
        verdict rules."""
        from .._core.baseline import judge
        from .._core.types import CaseResult

        result = CaseResult(case=case, output=output)
        for row in rows:
            score, verdict = judge({"name": row["name"], **(row.get("result") or {}),
                                    "annotatorKind": row.get("annotator_kind")},
                                   rules, self.settings.thresholds)
            result.scores.append(score)
            result.verdicts.append(verdict)
        return result

    def _window_decided(self, project: Project, group: Group, results: list[CaseResult],
                        unjudged: int, what: str, regated: str) -> int:
        """The gates over a regated window, said; the exit status."""
        from .._run.sinks.base import Destination, UploadReport

        url = self.ctx.traces.project_url(project)
        self.outcome.take(results, UploadReport(destinations=[
            Destination(group=group, id=project.id, url=url)]))
        passed = self.outcome.apply_gates([r.case for r in results])
        self.ctx.say(f"phoenix-evals: regating {regated}: {len(results)} {what} judged earlier; "
                     f"no judge called")
        if unjudged:
            self.ctx.notices.append(f"{unjudged} {what} of the window have no annotation from "
                                    f"this plugin yet and are not counted")
        for line in self.outcome.summary():
            self.ctx.say(line)
        return 0 if passed and results else 1

    def upload_pending(self) -> str:
        """The command that uploads what the journal keeps, to this run's server."""
        from .._core.commands import upload_pending_command

        return upload_pending_command(self.settings.url, self.settings.url_source)

    def regression_command(self, spec: str) -> str:
        """The command that judges the regression dataset again, as printed: the dataset, and
        this command line's options but those that choose spans or name files
        (--phoenix-evaluators, the judges' and the server's options stay)."""
        from .._core.commands import SPAN_ONLY, carried_options, pytest_command

        dataset = spec.partition(":")[0]
        return pytest_command(f"--phoenix-dataset={dataset}",
                              *carried_options(self.ctx.host.command_line, SPAN_ONLY))

    def add_failures(self, results: list[CaseResult]) -> list[str]:
        """--phoenix-add-failures-to: the spans judged and failed, journaled, then added (with
        what earlier runs left for the dataset); what is not added yet keeps the exit status
        from 0 (``failures.py``). The summary's lines."""
        from .._run.sinks.base import UploadReport
        from .._run.sinks.journal import journal_dir
        from .._run.sources.sessions import SessionListing
        from .failures import add_failures

        spec = self.settings.add_failures_to
        assert spec is not None
        listed = self.spans.listed
        # A session's turns, from the listing (a result lets go of its output once written;
        # a failing span's result keeps its own: RunSettings.keep_failures).
        outputs = {c.record.session_id: c.context["output"] for c in listed.cases} \
            if isinstance(listed, SessionListing) else None
        done = add_failures(self.ctx.traces, spec, self.spans.project, results,
                            journal_dir=journal_dir(self.ctx.host.rootpath),
                            suffix=self.ctx.journal_suffix(), no_upload=self.settings.no_upload,
                            outputs=outputs, rerun=self.regression_command(spec),
                            upload_pending=self.upload_pending())
        if done.pending or done.unjournaled:
            report = self.outcome.upload_report = self.outcome.upload_report or UploadReport()
            report.journaled.update(done.pending)
            report.unjournaled += done.unjournaled
        if not results:  # no summary is printed without results: said here
            for line in done.lines:
                self.ctx.say(f"phoenix-evals: {line}")
        return done.lines
