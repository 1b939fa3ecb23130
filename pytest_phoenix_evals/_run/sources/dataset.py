"""The dataset source: each ``--phoenix-dataset`` spec is a group; its examples are the cases.

A spec is ``NAME``, ``NAME@VERSION``, ``NAME:SPLIT`` or ``NAME@VERSION:SPLIT`` (a dataset whose
whole name holds ``@`` or ``:`` is still found by that name). Each spec is loaded once, with the
evaluators attached to the dataset in Phoenix; the cases are narrowed by ``--phoenix-examples``
and ``--phoenix-limit``. A test function of the fixture style that runs on a spec gets a group of
its own (:meth:`DatasetSource.test_group`), so that its experiment never mixes with another's.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..._core.naming import case_id
from ..._core.types import Case, Group
from ..._evaluators.protocol import Evaluator
from ..._phoenix.gateway import Gateway, LoadedDataset
from .base import Task

SPEC = re.compile(r"(?P<name>[^@:]+)(?:@(?P<version>[^:]+))?(?::(?P<split>.+))?")


class SelectionError(ValueError):
    """A selection option names something no dataset of the run has."""


@dataclass(frozen=True)
class Selection:
    """What the command line selects, for every spec."""

    version: str | None = None
    splits: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    limit: int | None = None
    sample_seed: str | None = None
    # A gate per split needs each example's splits (one more listing per split).
    split_membership: bool = False


def parse_spec(text: str, selection: Selection, known: Callable[[], Sequence[str]] | None = None
               ) -> tuple[str, str | None, tuple[str, ...]]:
    """``NAME@VERSION:SPLIT`` (each part optional) as (name, version, splits), merged with
    the selection's version and splits. ``known`` lists the datasets' real names: a name
    holding ``@`` or ``:`` that is one of them is taken whole."""
    version, splits = selection.version, selection.splits
    if ("@" in text or ":" in text) and (known is None or text not in known()):
        match = SPEC.fullmatch(text)
        if match is not None:
            version = match["version"] or version
            if match["split"] and match["split"] not in splits:
                splits = (*splits, match["split"])
            return match["name"], version, splits
    return text, version, splits


@dataclass
class _Loaded:
    group: Group
    dataset: LoadedDataset
    attached: list[Evaluator]
    cases: list[Case] | None = None


@dataclass
class DatasetSource:
    """Groups, cases and attached evaluators of the command line's datasets.

    ``build`` turns a dataset's attached evaluator nodes into evaluators (the evaluators
    package decides where each runs); ``extra`` adds evaluators written in code (the hook);
    ``task_for`` finds the task (``--phoenix-task`` or the hook).
    """

    gateway: Gateway
    specs: Sequence[str]
    selection: Selection = field(default_factory=Selection)
    attached: Any = None
    extra: Callable[[Group], Sequence[Evaluator]] = lambda group: ()
    task_for: Callable[[Group], Task | None] = lambda group: None
    _loaded: dict[str, _Loaded] = field(default_factory=dict)
    _by_key: dict[str, _Loaded] = field(default_factory=dict)
    _evaluators: dict[str, list[Evaluator]] = field(default_factory=dict)
    _found: set[str] = field(default_factory=set)
    _known: list[str] | None = None

    # --- the Source protocol --------------------------------------------------------------

    def groups(self) -> list[Group]:
        return [self.group(spec) for spec in self.specs]

    def cases(self, group: Group) -> list[Case]:
        """The group's cases, narrowed by --phoenix-examples and --phoenix-limit."""
        loaded = self._of(group)
        if loaded.cases is None:
            loaded.cases = self._select([Case(example=e, case_id=case_id(e), group=loaded.group)
                                         for e in loaded.dataset.examples])
        if group.key == loaded.group.key:
            return loaded.cases
        return [replace(case, group=group) for case in loaded.cases]

    def _select(self, cases: list[Case]) -> list[Case]:
        if self.selection.examples:
            cases = self._chosen(cases)
        limit = self.selection.limit
        if limit is not None and len(cases) > limit:
            if self.selection.sample_seed is None:
                return cases[:limit]
            # The same seed picks the same examples whatever order the server lists them.
            chosen = random.Random(self.selection.sample_seed).sample(
                sorted(cases, key=lambda c: c.example.id), limit)
            keep = {c.example.id for c in chosen}
            cases = [c for c in cases if c.example.id in keep]
        return cases

    def evaluators(self, group: Group, marker: Sequence[Evaluator] = ()) -> list[Evaluator]:
        """The dataset's attached evaluators, the hook's, then ``marker``'s (a test's own)."""
        base = self._of(group).group
        if base.key not in self._evaluators:
            self._evaluators[base.key] = [*self._of(group).attached, *self.extra(base)]
        return [*self._evaluators[base.key], *marker]

    def task(self, group: Group) -> Task | None:
        return self.task_for(self._of(group).group)

    def attached_to(self, group: Group) -> list[Evaluator]:
        """Only the evaluators attached to the group's dataset in Phoenix."""
        return list(self._of(group).attached)

    # --- loading --------------------------------------------------------------------------

    def group(self, spec: str) -> Group:
        """The group of a spec, loading its dataset once (PhoenixError if it cannot be)."""
        if spec not in self._loaded:
            name, version, splits = parse_spec(spec, self.selection, self._names)
            dataset = self.gateway.load_dataset(name, version, splits,
                                                split_membership=self.selection.split_membership)
            attached = self.attached.for_dataset(dataset) if self.attached is not None else []
            key = f"dataset:{dataset.id}@{dataset.version_id}:{','.join(sorted(splits))}"
            if any(other.group.key == key for other in self._loaded.values()):
                key += f"#{spec}"  # the same selection given twice still runs twice
            # The dataset's name, as the node ids always were, unless another spec of the run
            # names the same dataset: then the spec as given tells them apart.
            others = [s for s in self.specs if s != spec
                      and parse_spec(s, self.selection, self._names)[0] in (dataset.name,
                                                                             dataset.id)]
            label = spec if others else dataset.name
            group = Group(kind="dataset", key=key, label=label, dataset_id=dataset.id,
                          dataset_name=dataset.name, version_id=dataset.version_id,
                          splits=tuple(splits))
            self._loaded[spec] = self._by_key[key] = _Loaded(group, dataset, attached)
        return self._loaded[spec].group

    def _names(self) -> list[str]:
        """The server's dataset names (read once)."""
        if self._known is None:
            self._known = list(self.gateway.dataset_names())
        return self._known

    def dataset(self, group: Group) -> LoadedDataset:
        return self._of(group).dataset

    def test_group(self, group: Group, test: str) -> Group:
        """The group of a test function (node id without parameters) run on ``group``."""
        digest = hashlib.sha256(f"{group.key}|{test}".encode()).hexdigest()[:12]
        name = test.rsplit("::", 1)[-1]
        tested = Group(kind="test", key=f"test:{digest}", label=f"{group.label} ({name})",
                       dataset_id=group.dataset_id, dataset_name=group.dataset_name,
                       version_id=group.version_id, splits=group.splits, test=test,
                       parent=group.key)
        self._by_key.setdefault(tested.key, self._of(group))
        return tested

    def variant_group(self, group: Group, variant: str) -> Group:
        """The group of one variant of a spec's run (a model of --phoenix-model): the same
        cases, an experiment of its own."""
        varied = replace(group, key=f"{group.key}#variant={variant}",
                         label=f"{group.label} ({variant})", variant=variant)
        self._by_key.setdefault(varied.key, self._of(group))
        return varied

    def _of(self, group: Group) -> _Loaded:
        return self._by_key[group.key]

    def loaded(self) -> list[tuple[Group, LoadedDataset]]:
        """Every spec loaded so far, with its dataset."""
        return [(entry.group, entry.dataset) for entry in self._loaded.values()]

    def forget(self) -> None:
        """Drop what was loaded (to load a dataset again at another version)."""
        self._loaded.clear()
        self._by_key.clear()
        self._evaluators.clear()

    def load_at(self, name: str, version_id: str | None, splits: Sequence[str]) -> Group:
        """A group for a dataset at exactly this version and these splits (regate)."""
        selection = self.selection
        self.selection = Selection(version=version_id, splits=tuple(splits),
                                   split_membership=selection.split_membership)
        try:
            return self.group(name)
        finally:
            self.selection = selection

    # --- --phoenix-examples ---------------------------------------------------------------

    def _chosen(self, cases: list[Case]) -> list[Case]:
        """The cases --phoenix-examples names (by example id or case id), in dataset order."""
        wanted = set(self.selection.examples)
        chosen = []
        for case in cases:
            hits = wanted & {case.example.id, case.case_id, case.case_id.split("-", 1)[0]}
            if hits:
                self._found |= hits
                chosen.append(case)
        return chosen

    def check_examples(self) -> None:
        """Every --phoenix-examples id names an example of some dataset of the run;
        SelectionError naming the missing ones and some that exist."""
        if not self.selection.examples:
            return
        for group in self.groups():
            self.cases(group)
        missing = set(self.selection.examples) - self._found
        if missing:
            loaded = [entry.dataset for entry in self._loaded.values()]
            known = [case_id(e).split("-", 1)[0] for d in loaded for e in d.examples[:10]]
            raise SelectionError(
                f"--phoenix-examples: no example {', '.join(sorted(missing))} in dataset(s) "
                f"{', '.join(d.name for d in loaded)}; examples include "
                f"{', '.join(known) or 'none'} (or give example ids)")

    # --- snapshots ------------------------------------------------------------------------

    def save_snapshots(self, rootpath: Path) -> list[str]:
        """Save what built these datasets and evaluators, for --phoenix-offline; the problems
        (a snapshot that cannot be written costs a notice, never the run)."""
        from ..._phoenix.offline import save

        problems = []
        for entry in self._loaded.values():
            dataset = entry.dataset
            try:
                save(rootpath, dataset.name, dataset.version_id, self.gateway.tape)
            except OSError as exc:
                problems.append(f"could not save the local snapshot of {dataset.name}: {exc}")
        return problems


def offline_gateway(specs: Sequence[str], selection: Selection, rootpath: Path) -> Gateway:
    """--phoenix-offline: a gateway that answers from the datasets' local snapshots
    (UsageProblem naming the snapshot to fix when one cannot be read)."""
    from ..._core.errors import UsageProblem
    from ..._local import local_path, safe_name
    from ..._phoenix.offline import load
    from ..._phoenix.offline import offline_gateway as replaying

    tape: dict[str, Any] = {}
    taken = []
    for spec in specs:
        # A dataset whose whole name holds "@" or ":" is known by its snapshot's folder.
        known = [spec] if local_path(rootpath, "snapshots", safe_name(spec)).is_dir() else []
        name, version, _ = parse_spec(spec, selection, known.copy)
        try:
            snapshot = load(rootpath, name, version)
            tape.update(snapshot["tape"])
            taken.append(f"{name} version {snapshot['version_id']} saved "
                         f"{snapshot['saved_at']}")
        except ValueError as exc:
            raise UsageProblem(f"--phoenix-offline: {exc}") from None
        except (KeyError, TypeError, AttributeError):
            raise UsageProblem(
                f"--phoenix-offline: the local snapshot of dataset {name!r} is not one this "
                f"plugin wrote (its fields are missing): delete "
                f"{local_path(rootpath, 'snapshots', safe_name(name))} and run "
                f"once without --phoenix-offline") from None
    return replaying(tape, f"the local snapshot ({'; '.join(taken) or 'none'})")
