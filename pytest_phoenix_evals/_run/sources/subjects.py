"""What the span and session sources share: a project's subjects (spans, traces or sessions) as
cases of one group, listed once (on xdist's controller) or given a listing, claimed on the
server, each judged only by the evaluators whose annotation it lacks. A source says how it
lists (``_list``), what its group is called (``kind``) and how a listed subject becomes a
case (``_case``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..._core.types import Case, Group, GroupKind

if TYPE_CHECKING:
    from ..._evaluators.protocol import Evaluator
    from ..._phoenix.traces import Project, Traces
    from .claims import Claims


class Listed(Protocol):
    """What a listing holds that the source reads."""

    project: Project
    cases: Any
    unclaimed: str


class Selects(Protocol):
    """What a selection holds that the source reads."""

    @property
    def project(self) -> str: ...


L = TypeVar("L", bound=Listed)
S = TypeVar("S", bound=Selects)


class SubjectSource(Generic[S, L]):
    """A project's subjects as the cases of one group."""

    def __init__(self, traces: Traces, selection: S,
                 evaluators: Callable[[Group], list[Evaluator]], *,
                 claims: Claims | None = None, listing: L | None = None,
                 journaled: Callable[[Project], tuple[Mapping[str, set[str]], list[str]]]
                 | None = None) -> None:
        self.traces = traces
        self.selection = selection
        self._evaluators = evaluators
        self._claims = claims
        self._journaled = journaled
        self._waiting: Mapping[str, set[str]] = {}
        self._listing = listing
        self._group: Group | None = None
        self._chosen: list[Evaluator] | None = None
        self._cases: list[Case] | None = None
        # subject id (the example's: a source has one group) -> what the listing found; the
        # id's own string is the key, so that a long listing adds no key objects.
        self._by_key: dict[str, Any] = {}
        self._needed: dict[tuple[str, ...], list[Evaluator]] = {}  # one list each

    # --- what a source says --------------------------------------------------------------

    def kind(self) -> GroupKind:
        raise NotImplementedError

    def _list(self) -> L:
        raise NotImplementedError

    def _case(self, found: Any, group: Group) -> Case:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        if self._listing is not None:
            return self._listing.project
        if not hasattr(self, "_project"):
            self._project: Project = self.traces.project(self.selection.project)
        return self._project

    def group(self) -> Group:
        if self._group is None:
            project, kind = self.project, self.kind()
            self._group = Group(kind=kind, key=f"{kind}:{project.id}", label=project.name,
                                dataset_id=project.id, dataset_name=project.name,
                                version_id="")
        return self._group

    def groups(self) -> list[Group]:
        return [self.group()]

    def evaluators(self, group: Group | None = None) -> list[Evaluator]:
        if self._chosen is None:
            self._chosen = self._evaluators(self.group())
        return self._chosen

    def task(self, group: Group) -> None:
        return None

    @property
    def listed(self) -> L | None:
        """The listing, if it was made."""
        return self._listing

    def listing(self) -> L:
        """List the subjects now (once)."""
        if self._listing is None:
            self._listing = self._list()
        return self._listing

    def cases(self, group: Group | None = None) -> list[Case]:
        if self._cases is None:
            listing = self.listing()
            group = self.group()
            self._cases = []
            for found in listing.cases:
                case = self._case(found, group)
                self._cases.append(case)
                self._by_key[case.example.id] = found
        return self._cases

    def output(self, case: Case) -> Any:
        return self._by_key[case.example.id].context["output"]

    def needed(self, case: Case) -> list[Evaluator]:
        """The evaluators whose annotation this case's subject lacks."""
        needs = self._by_key[case.example.id].needs
        found = self._needed.get(needs)
        if found is None:  # the cases that need the same share one list (and their items)
            found = self._needed[needs] = [e for e in self.evaluators() if e.name in needs]
        return found

    def release(self) -> str | None:
        """This run's claims gone; why not, when they could not be."""
        return self._claims.release() if self._claims is not None else None

    def _claim(self, subjects: list[str], room: int | None, listing: L) -> set[str] | None:
        """The subjects this run won (:meth:`Claims.take`); None when the server refused the
        claims: then this run judges without them, and says so. The claims only keep runs at
        once from paying for the same judgement twice; the results stay one annotation per
        name, subject and identifier whoever writes them, and refusing the claims usually
        means refusing the results too, which are then journaled."""
        from ..._phoenix.http import PhoenixError

        assert self._claims is not None
        try:
            return self._claims.take(self.project, subjects, room)
        except PhoenixError as exc:
            listing.unclaimed = str(exc)
            return None
