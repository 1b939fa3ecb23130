"""What a sink is: where a group's results go (an experiment today; span annotations next)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..._core.types import CaseResult, Group


@dataclass
class Destination:
    """Where one group's results go in Phoenix: its id, a link, where its traces belong."""

    group: Group
    id: str
    url: str
    project_name: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "project_name": self.project_name}


@dataclass
class UploadReport:
    """What a sink did with the results it was given, for the summary."""

    destinations: list[Destination] = field(default_factory=list)
    uploaded_runs: int = 0
    uploaded_annotations: int = 0
    failures: list[str] = field(default_factory=list)
    pending: int = 0
    # Cases kept in journal files (not all of them in Phoenix), by file.
    journaled: dict[str, int] = field(default_factory=dict)
    # Cases the journal could not take (a read-only or full disk), with why.
    unjournaled: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every result reached Phoenix."""
        return not (self.failures or self.pending or self.journaled)

    def merge(self, other: UploadReport) -> None:
        """Add another report (another sink's, or an xdist worker's) to this one."""
        known = {d.id for d in self.destinations}
        self.destinations += [d for d in other.destinations if d.id not in known]
        self.uploaded_runs += other.uploaded_runs
        self.uploaded_annotations += other.uploaded_annotations
        self.failures += other.failures
        self.pending += other.pending
        self.journaled.update(other.journaled)
        self.unjournaled += other.unjournaled

    def to_wire(self) -> dict[str, Any]:
        """Plain data (pytest-xdist carries builtins only)."""
        return {"destinations": [{**d.to_wire(), "group": group_to_wire(d.group)}
                                 for d in self.destinations],
                "uploaded_runs": self.uploaded_runs,
                "uploaded_annotations": self.uploaded_annotations,
                "failures": list(self.failures), "pending": self.pending,
                "journaled": dict(self.journaled), "unjournaled": list(self.unjournaled)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> UploadReport:
        return cls(
            destinations=[Destination(group=group_from_wire(d["group"]), id=d["id"],
                                      url=d["url"], project_name=d.get("project_name"))
                          for d in data.get("destinations", ())],
            uploaded_runs=data.get("uploaded_runs", 0),
            uploaded_annotations=data.get("uploaded_annotations", 0),
            failures=list(data.get("failures", ())), pending=data.get("pending", 0),
            journaled=dict(data.get("journaled") or {}),
            unjournaled=list(data.get("unjournaled") or ()))


def group_to_wire(group: Group) -> dict[str, Any]:
    return {"kind": group.kind, "key": group.key, "label": group.label,
            "dataset_id": group.dataset_id, "dataset_name": group.dataset_name,
            "version_id": group.version_id, "splits": list(group.splits), "test": group.test,
            "parent": group.parent, "variant": group.variant}


def group_from_wire(data: dict[str, Any]) -> Group:
    return Group(kind=data["kind"], key=data["key"], label=data["label"],
                 dataset_id=data["dataset_id"], dataset_name=data["dataset_name"],
                 version_id=data["version_id"], splits=tuple(data.get("splits") or ()),
                 test=data.get("test"), parent=data.get("parent"),
                 variant=data.get("variant"))


class Sink(Protocol):
    """Where results go. Every method but :meth:`project` is called from pytest's thread."""

    def open(self, group: Group) -> Destination:
        """The group's destination, created now if need be (PhoenixError if it cannot be)."""
        ...

    async def project(self, group: Group) -> str | None:
        """On the engine's loop: the project the group's task traces go to, if any."""
        ...

    def url(self, group: Group) -> str | None:
        """The group's link if its destination exists by now (never waits)."""
        ...

    def record(self, result: CaseResult) -> None:
        """Take a finished case: journal it and upload it in the background (never blocks)."""
        ...

    async def room(self) -> None:
        """On the engine's loop: return once the sink can take another result without holding
        it long (back-pressure; the runner waits for it before it starts a case)."""
        ...

    def waiting(self) -> int:
        """Uploads not finished yet."""
        ...

    def drain(self, timeout: float) -> UploadReport:
        """Wait at most ``timeout`` seconds for the uploads; what happened."""
        ...
