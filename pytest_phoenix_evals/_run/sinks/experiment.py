"""The experiment sink: a group's case results become one Phoenix experiment's runs and annotations.

One experiment per group, created when it is first needed (or made once for every pytest-xdist
worker: by the controller for the command line's datasets, and under a file lock shared by the
workers for the groups only workers know, the test functions of the fixture style). Each case is
journaled, then posted from a background task on the engine's loop: the run first, then its
annotations, one request at a time, so that the uploads in flight are the cases being posted;
how many go at once follows Phoenix's answers (:class:`.pace.Pace`). Nothing here blocks a
test; :meth:`ExperimentSink.drain` waits at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._core.commands import upload_pending_command
from ..._core.secrets import redact, redact_value
from ..._core.text import encodable
from ..._core.types import CaseResult, Group, Score
from ..._phoenix.gateway import Gateway
from ..._phoenix.http import Observe, PhoenixError, refusal
from ..engine import Engine
from .base import Destination, UploadReport
from .pace import MOST, Pace

if TYPE_CHECKING:
    from .journal import Journal

#: Results recorded and not yet uploaded beyond which the runner starts no new case (:meth:`
#: ExperimentSink.room`): each one holds its output, its payloads and its task until its
#: upload ends, so without a bound a server slower than the cases held them all (10,000
#: cases: 80 MB). Twice the pace's most, so that a free place always finds one waiting.
BACKLOG = 2 * MOST


@dataclass(frozen=True)
class ExperimentPlan:
    """What every experiment of the session is made with; the group adds the rest."""

    #: The experiment's name: --phoenix-experiment-name, or the default made for each group
    #: (what ran on it, :func:`default_experiment_name`).
    name: str | Callable[[Group], str]
    metadata: Mapping[str, Any]
    repetitions: int = 1
    # What a group adds to the metadata (a benchmarked judge's prompt version).
    per_group: Callable[[Group], Mapping[str, Any]] | None = None
    # --phoenix-run-id: every process of one CI run (shards of a job matrix) records into one
    # experiment per group, found by a creation token derived from the run id.
    run_id: str | None = None
    #: The experiment's description: the command line that ran, secrets masked.
    description: str | None = None

    def token_for(self, group: Group) -> str | None:
        """The run's creation token for the group (None without a run id: each session makes
        its own)."""
        return run_token(self.run_id, group) if self.run_id is not None else None

    def name_for(self, group: Group) -> str:
        name = self.name(group) if callable(self.name) else self.name
        if group.variant:
            return f"{name} ({group.variant})"
        return f"{name} {group.test.rsplit('::', 1)[-1]}" if group.test else name

    def metadata_for(self, group: Group) -> dict[str, Any]:
        metadata = {**self.metadata, "dataset_version_id": group.version_id}
        if group.test:
            metadata["runner"] = group.test
        if group.splits:
            metadata["splits"] = list(group.splits)
        if self.per_group is not None:
            metadata.update(self.per_group(group))
        return metadata


def run_token(run_id: str, group: Group) -> str:
    """The creation token every process of a run (--phoenix-run-id) derives alike."""
    return hashlib.sha256(f"run\n{run_id}\n{group.key}".encode()).hexdigest()[:32]


def git_info(cwd: Path) -> dict[str, str]:
    """The commit, branch and whether the work tree is dirty, for an experiment's metadata."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                 timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    info = {"git_commit": git("rev-parse", "HEAD"),
            "git_branch": git("rev-parse", "--abbrev-ref", "HEAD")}
    if info["git_commit"]:
        info["git_dirty"] = "true" if git("status", "--porcelain") else "false"
    return {key: value for key, value in info.items() if value}


def default_experiment_name(ran: str, git: Mapping[str, str], now: datetime | None = None, *,
                            run_id: str | None = None) -> str:
    """``<what ran> [<branch>@<commit>[+dirty]] <UTC time>``: what ran first (the task or prompt
    and its version, on the dataset and its version), as Phoenix's experiment list shows the
    start of a name; two runs of the same are told apart by the time; ``+dirty`` says the work
    tree had changes. With a run id, ``run <id>`` instead of the time: every shard of the run
    names it alike."""
    now = now or datetime.now(UTC)
    stamp = f"run {run_id}" if run_id else \
        f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}Z"
    parts = [ran] if ran else []
    if "git_commit" in git:
        dirty = "+dirty" if git.get("git_dirty") == "true" else ""
        parts.append(f"{git.get('git_branch', 'HEAD')}@{git['git_commit'][:8]}{dirty}")
    return " ".join([*parts, stamp])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ExperimentSink:
    """Posts runs and annotations in the background; reports what it could not post."""

    def __init__(self, gateway: Gateway, engine: Engine, plan: ExperimentPlan, *,
                 given: Mapping[str, Mapping[str, Any]] | None = None,
                 shared_dir: Path | None = None,
                 journal_dir: Path | None = None, journal_suffix: str = "",
                 processes: int = 1) -> None:
        self._gateway = gateway
        self._engine = engine
        self._plan = plan
        self._experiments: dict[str, asyncio.Future[Destination]] = {}
        # Experiments made elsewhere (by pytest-xdist's controller), by group key.
        self._given = dict(given or {})
        # pytest-xdist: where workers agree on one experiment per group (a file per group).
        self._shared_dir = shared_dir
        self._report = UploadReport()
        # The uploads not known to be done (the done ones are let go as more come).
        self._uploads: list[concurrent.futures.Future[None]] = []
        self._uploads_lock = threading.Lock()
        # Uploads started and not ended (on the loop), and the event room() waits for.
        self._unfinished = 0
        self._roomy: asyncio.Event | None = None
        #: How many cases are posted at once (one request each at a time); ``processes``: how
        #: many pytest-xdist workers upload beside this one, each its share.
        self.pace = Pace.shared(processes)
        self._journal_dir = journal_dir
        self._journal_suffix = journal_suffix
        self._journals: dict[str, Journal] = {}
        self._intents: dict[str, dict[str, Any]] = {}
        #: Annotations a mode adds to a case's run beside its scores (the benchmark's human
        #: label and agreement), journaled and posted with them; redacted by whoever makes them.
        self.more_scores: Callable[[CaseResult], list[Score]] | None = None

    # --- the Sink protocol ----------------------------------------------------------------

    def open(self, group: Group) -> Destination:
        """Create the group's experiment from pytest's thread (to print its link first, or for
        xdist's controller to hand to every worker)."""
        return self._engine.run(self._experiment(group))

    async def project(self, group: Group) -> str | None:
        try:
            return (await self._experiment(group)).project_name
        except Exception:  # reported by _experiment; the task then runs untraced
            return None

    def url(self, group: Group) -> str | None:
        future = self._experiments.get(group.key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result().url

    def record(self, result: CaseResult) -> None:
        future = self._engine.submit(self._upload(result))
        future.add_done_callback(lambda _: result.mark(uploaded=True))
        with self._uploads_lock:  # called from pytest's thread and from the loop's
            if len(self._uploads) >= 2 * BACKLOG:
                self._uploads = [upload for upload in self._uploads if not upload.done()]
            self._uploads.append(future)

    async def room(self) -> None:
        """Back-pressure: wait while :data:`BACKLOG` results are still uploading."""
        while self._unfinished >= BACKLOG:
            if self._roomy is None:  # made on the loop
                self._roomy = asyncio.Event()
            self._roomy.clear()
            await self._roomy.wait()

    def waiting(self) -> int:
        with self._uploads_lock:
            return sum(not upload.done() for upload in self._uploads)

    def drain(self, timeout: float) -> UploadReport:
        with self._uploads_lock:
            uploads = list(self._uploads)
        if uploads:
            _, not_done = concurrent.futures.wait(uploads, timeout=timeout)
            self._report.pending = len(not_done)
        for journal in self._journals.values():
            try:
                left = journal.close()
            except OSError as exc:  # a full disk: what it holds may be torn
                self._report.unjournaled.append(f"closing {journal.path}: {exc}")
                left = journal.cases - journal.done
            if left:
                self._report.journaled[str(journal.path)] = left
        return self._report

    # --- experiments ----------------------------------------------------------------------

    async def _experiment(self, group: Group) -> Destination:
        if group.key not in self._experiments:
            future: asyncio.Future[Destination] = asyncio.get_running_loop().create_future()
            self._experiments[group.key] = future
            try:
                future.set_result(await self._find_or_create(group))
            except Exception as exc:
                future.set_exception(exc)
                self._report.failures.append(f"{group.label}: creating the experiment: {exc}")
        return await asyncio.shield(self._experiments[group.key])

    async def _find_or_create(self, group: Group) -> Destination:
        if group.key in self._given:
            return self._from_wire(group, self._given[group.key])
        if self._shared_dir is not None:
            return await asyncio.to_thread(self._shared, group, asyncio.get_running_loop())
        return await self._create(group)

    def _shared(self, group: Group, loop: asyncio.AbstractEventLoop) -> Destination:
        """pytest-xdist workers: the first to need the group's experiment makes it and leaves
        its id in a file; the others (same machine, same session) read it."""
        assert self._shared_dir is not None
        digest = hashlib.sha256(group.key.encode()).hexdigest()[:16]
        path = self._shared_dir / f"{digest}.json"
        with _locked(self._shared_dir / f"{digest}.lock"):
            if path.is_file():
                return self._from_wire(group, json.loads(path.read_text()))
            made = asyncio.run_coroutine_threadsafe(self._create(group), loop).result()
            path.write_text(json.dumps(made.to_wire()))
            return made

    @staticmethod
    def _from_wire(group: Group, data: Mapping[str, Any]) -> Destination:
        return Destination(group=group, id=data["id"], url=data["url"],
                           project_name=data.get("project_name"))

    async def _create(self, group: Group) -> Destination:
        # The intent's token: an experiment the server made although the answer never came
        # back is found by --phoenix-upload-pending instead of being made twice. With a run
        # id, the token is the run's: another shard's experiment is looked for first.
        token = self._intent(group)["token"]
        shared = self._plan.run_id is not None
        found = await self._gateway.aoldest_with_token(group.dataset_id, token) if shared \
            else None
        created = found or await self._gateway.acreate_experiment(
            group.dataset_id, group.version_id, dataset_name=group.dataset_name,
            experiment_name=redact(self._plan.name_for(group)),
            description=redact(self._plan.description) if self._plan.description else None,
            metadata=redact_value(self._plan.metadata_for(group)), splits=group.splits,
            repetitions=self._plan.repetitions, token=token, look_first=False)
        if shared and found is None:
            # Two shards that looked at once both made one: the oldest is the run's, and the
            # one made here gives way (deleted, empty: nothing was posted into it yet).
            oldest = await self._gateway.aoldest_with_token(group.dataset_id, token)
            if oldest is not None and oldest["id"] != created["id"]:
                await self._gateway.adelete_experiment(created["id"])
                created = oldest
        experiment = Destination(
            group=group, id=created["id"],
            url=self._gateway.experiment_url(group.dataset_id, created["id"]),
            project_name=created.get("project_name"))
        self._report.destinations.append(experiment)
        return experiment

    # --- uploads --------------------------------------------------------------------------

    def _journal(self, name: str) -> Journal | None:
        """The journal file ``name`` (an experiment's id, or an intended experiment's)."""
        if self._journal_dir is None:
            return None
        if name not in self._journals:
            from ..._local import safe_name
            from .journal import Journal

            self._journals[name] = Journal(
                self._journal_dir / f"{safe_name(name)}{self._journal_suffix}.jsonl")
        return self._journals[name]

    def _where(self, group: Group) -> dict[str, Any]:
        """What a journal record says of where it belongs: the server and the dataset (so that
        --phoenix-upload-pending never posts it into another server's experiment)."""
        from ..._phoenix.http import mask_url

        return {"server": mask_url(self._gateway.url), "dataset": group.dataset_name,
                "dataset_id": group.dataset_id}

    def _intent(self, group: Group) -> dict[str, Any]:
        """The experiment this group's results were meant for, when it could not be made:
        enough for --phoenix-upload-pending to make it later (once: its token)."""
        if group.key not in self._intents:
            import uuid

            self._intents[group.key] = {
                "token": self._plan.token_for(group) or uuid.uuid4().hex,
                "dataset_id": group.dataset_id,
                "dataset_name": group.dataset_name, "version_id": group.version_id,
                "name": redact(self._plan.name_for(group)),
                "description": redact(self._plan.description or ""),
                "metadata": redact_value(self._plan.metadata_for(group)),
                "splits": list(group.splits), "repetitions": self._plan.repetitions}
        return self._intents[group.key]

    async def _upload(self, result: CaseResult) -> None:
        """Journal the case, then post it; whatever goes wrong is a line of the report, never
        an exception (one bad case must not stop the others)."""
        case = result.case
        self._unfinished += 1
        try:
            await self._upload_case(result)
        except Exception as exc:  # a bug of ours: the case is said lost, the session goes on
            self._report.failures.append(f"{case.case_id}: not uploaded: "
                                         f"{type(exc).__name__}: {exc}")
        finally:
            self._unfinished -= 1
            if self._roomy is not None and self._unfinished < BACKLOG:
                self._roomy.set()

    async def _upload_case(self, result: CaseResult) -> None:
        case = result.case
        run, evaluations = self._payloads(result)
        key = f"{case.example.id}:{case.repetition}"
        try:
            experiment = await self._experiment(case.group)
        except Exception:
            # Kept with the experiment it was meant for, which upload-pending makes later.
            intent = self._intent(case.group)
            kept = self._journal(f"intended-{intent['token']}")
            if kept is not None:
                self._journaled(kept, case.case_id, lambda: kept.case(
                    key, {"id": None, "url": None, "intent": intent,
                          **self._where(case.group)}, run, evaluations))
            self._report.failures.append(f"{case.case_id}: not uploaded (no experiment)")
            return
        journal = self._journal(experiment.id)
        journaled = journal is not None and self._journaled(
            journal, case.case_id, lambda: journal.case(  # on disk before anything is posted
                key, {"id": experiment.id, "url": experiment.url, **self._where(case.group)},
                run, evaluations))
        async with self.pace.slot():
            try:
                run_id = await self._gateway.apost_run(
                    experiment.id, run, doing=f"uploading the run of {case.case_id}",
                    observe=self.pace.answered)
            except PhoenixError as exc:
                self._report.failures.append(f"{case.case_id}: run: {exc}")
                return
            self._report.uploaded_runs += 1
            outcomes = [await self._post_evaluation(run_id, e, case.case_id)
                        for e in evaluations]
            self._report.uploaded_annotations += sum(outcomes)
            if journal is not None and journaled and all(outcomes):
                self._journaled(journal, case.case_id, lambda: journal.mark_done(key))

    def _journaled(self, journal: Journal, case_id: str, write: Callable[[], None]) -> bool:
        """Write to the journal; a journal that cannot be written (a read-only or full disk)
        is said loudly, and the upload still goes ahead."""
        try:
            write()
        except OSError as exc:
            self._report.unjournaled.append(f"{case_id}: {journal.path}: {exc}")
            return False
        return True

    def _payloads(self, result: CaseResult) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The run and evaluation bodies exactly as posted (and journaled), redacted; the
        same fields arize-phoenix-client's log_run and log_evaluation post."""
        case = result.case
        now = datetime.now(UTC)
        start = result.start_time or now
        run: dict[str, Any] = {
            "dataset_example_id": case.example.id, "output": redact_value(result.output),
            "repetition_number": case.repetition, "start_time": start.isoformat(),
            "end_time": (result.end_time or start).isoformat()}
        if result.trace_id:
            run["trace_id"] = result.trace_id
        if result.error:
            run["error"] = result.error
        evaluations = []
        more = self.more_scores(result) if self.more_scores is not None else []
        for score in [*result.scores, *more]:
            outcome = {k: v for k, v in (("score", score.score), ("label", score.label),
                                         ("explanation", score.explanation)) if v is not None}
            if not outcome and score.error is None:
                self._report.failures.append(f"{case.case_id}: {score.name}: no label, score, "
                                             f"explanation or error to upload")
                continue
            begin = score.start_time or start
            evaluations.append({
                "name": score.name, "annotator_kind": score.annotator_kind,
                "start_time": begin.isoformat(), "end_time": (score.end_time or begin).isoformat(),
                "result": outcome or None, "error": score.error,
                "metadata": dict(score.metadata or {}), "trace_id": score.trace_id})
        return encodable(run), encodable(evaluations)

    async def _post_evaluation(self, run_id: str, evaluation: dict[str, Any],
                               case_id: str) -> bool:
        try:
            await self._gateway.apost_evaluation(
                run_id, evaluation, doing=f"uploading annotation {evaluation['name']!r} of "
                                          f"{case_id}", observe=self.pace.answered)
        except Exception as exc:  # each evaluation on its own: one refused, the others go up
            reason = str(exc) if isinstance(exc, PhoenixError) else \
                f"{type(exc).__name__}: {exc}"
            self._report.failures.append(f"{case_id}: {evaluation['name']}: {reason}")
            return False
        return True


# --- --phoenix-upload-pending: what earlier sessions journaled ---------------------------


@dataclass
class Replayed:
    """What a replay of journal files did."""

    uploaded: int = 0
    problems: list[str] = field(default_factory=list)
    experiments: set[str] = field(default_factory=set)


async def replay(gateway: Gateway, files: Sequence[Path],
                 pace: Pace | None = None) -> Replayed:
    """Post the pending cases of these journal files into their experiments (a run Phoenix
    has already is taken over, evaluations upsert), marking each done; a file whose cases are
    all done is deleted. Each file is locked while it is worked on: one a running session (or
    another upload-pending) holds is left alone. As many cases post at once as ``pace`` says
    (as a session's uploads: more for a far server, fewer when it answers 429 or 503)."""
    from .journal import claimed_records

    done = Replayed()
    slots = pace if pace is not None else Pace()
    places = _Places()
    for path in files:
        claimed = claimed_records(path, done.problems)
        if claimed is None:
            continue
        journal, records, unreadable = claimed
        journal.cases = len(records)
        records = [r for r in [await _placed(gateway, r, places, done) for r in records]
                   if r is not None]

        async def one(record: dict[str, Any], journal: Journal = journal) -> None:
            async with slots.slot():
                try:
                    trouble = await _post_record(gateway, record, slots.answered)
                except PhoenixError as exc:
                    done.problems.append(str(exc))
                    return
                except Exception as exc:  # one bad record never stops the others
                    done.problems.append(f"{record.get('key')}: {type(exc).__name__}: {exc}")
                    return
            if trouble:
                done.problems.extend(f"{record['key']}: {t}" for t in trouble)
                return
            journal.mark_done(record["key"])
            experiment = record["experiment"]
            # The server it went to, not the link the journal kept (older records lack it).
            dataset_id = experiment.get("dataset_id") or \
                (experiment.get("intent") or {}).get("dataset_id")
            done.experiments.add(gateway.experiment_url(dataset_id, experiment["id"])
                                 if dataset_id else experiment["url"])
            done.uploaded += 1

        await asyncio.gather(*(one(r) for r in records))
        # Deleted once every case in it is done; one with lines we could not read is kept
        # apart for a person to look at (never deleted: we may not have written them).
        if journal.close(delete=not unreadable) == 0 and unreadable:
            kept = path.with_name(path.name + ".unreadable")
            path.replace(kept)
            done.problems.append(f"{path}: kept as {kept}")
    return done


@dataclass
class _Places:
    """What a replay found out about where records go (asked once per experiment)."""

    refused: dict[str, str] = field(default_factory=dict)  # key -> why not
    made: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (id, url)
    fine: set[str] = field(default_factory=set)


async def _placed(gateway: Gateway, record: dict[str, Any], places: _Places,
                  done: Replayed) -> dict[str, Any] | None:
    """The record with the experiment it goes into, made now if it was only intended; None
    (and a problem, once per experiment) when it must not be posted to this server."""
    from ..._phoenix.http import mask_url

    experiment = record["experiment"]
    here = mask_url(gateway.url)
    # The same server may be reached by another URL (a proxy): a journal for another URL is
    # uploaded only where its experiment exists, of its dataset (checked below).
    elsewhere = experiment.get("server") if experiment.get("server") != here else None
    if experiment.get("id") is None:
        intent = experiment["intent"]
        key = f"intent:{intent['token']}"
        if key not in places.refused and intent["token"] not in places.made:
            try:
                made = await gateway.acreate_experiment(
                    intent["dataset_id"], intent["version_id"],
                    dataset_name=intent["dataset_name"], experiment_name=intent["name"],
                    description=intent.get("description") or None,
                    metadata=intent["metadata"], splits=intent.get("splits") or (),
                    repetitions=int(intent.get("repetitions") or 1), token=intent["token"])
                places.made[intent["token"]] = (
                    made["id"], gateway.experiment_url(intent["dataset_id"], made["id"]))
            except PhoenixError as exc:
                places.refused[key] = f"the experiment it was meant for could not be made: {exc}"
        if intent["token"] in places.made:
            experiment["id"], experiment["url"] = places.made[intent["token"]]
    else:
        key = f"experiment:{experiment['id']}"
        if key not in places.refused and key not in places.fine:
            found = await asyncio.to_thread(gateway.experiment, experiment["id"])
            if found is None:
                places.refused[key] = (
                    f"experiment {experiment['id']} is not in {here}"
                    + (f" (it was journaled for {elsewhere}: run `"
                       f"{upload_pending_command(elsewhere, '--phoenix-url')}` to upload it "
                       f"there)" if elsewhere else
                       " (deleted?): its results cannot go anywhere; remove the file if you "
                       "do not need them"))
            elif experiment.get("dataset_id") and \
                    found.get("dataset_id") != experiment["dataset_id"]:
                places.refused[key] = (
                    f"experiment {experiment['id']} in {here} belongs to another dataset than "
                    f"the one journaled ({experiment.get('dataset')}): not uploaded")
            else:
                places.fine.add(key)
    why = places.refused.get(key)
    if why is None:
        return record
    if why not in done.problems:  # said once, for all the records it holds back
        done.problems.append(why)
    return None


async def _post_record(gateway: Gateway, record: Mapping[str, Any],
                       observe: Observe | None = None) -> list[str]:
    """Post one journaled case: the run, then its evaluations; the evaluations Phoenix
    refused (PhoenixError when a post failed in a way worth another try later). ``observe``
    is told of every answer (the pace)."""
    key = record["key"]
    run_id = await gateway.apost_run(record["experiment"]["id"], record["run"],
                                     doing=f"uploading the run of case {key}", observe=observe)
    problems = []
    for evaluation in record["evaluations"]:
        try:
            await gateway.apost_evaluation(
                run_id, evaluation,
                doing=f"uploading annotation {evaluation['name']!r} of case {key}",
                observe=observe)
        except PhoenixError as exc:
            refused = refusal(exc)
            if refused is None:
                raise
            problems.append(f"{evaluation['name']}: {refused}")
    return problems
