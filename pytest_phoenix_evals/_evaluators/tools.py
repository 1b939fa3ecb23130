"""Tool use: did the agent call the tools it should have, with the right arguments, in order?

``tool_calls()`` compares the calls a case made with the calls its reference expects:

- the calls made are read from the output: an assistant message's ``tool_calls`` (OpenAI's
  shape, ``{"function": {"name", "arguments"}}``, the arguments JSON or decoded), the prompt
  task's ``{"messages": [...]}``, a list of such messages, or a plain list of
  ``{"name", "arguments"}``; when the output holds none of these, ``metadata["tool_calls"]``
  (what production judging puts there: an LLM span's output tool calls, a trace's TOOL spans
  in order). An output of plain text made no call.
- the calls expected are the reference, in any of the same shapes (or JSON text of one). A call
  expected without ``arguments`` only asks for the name.

Names must be equal. Arguments are equal (``arguments="exact"``) or the expected ones a JSON
subset of those made (``"subset"``, the default: every expected key present with a matching
value, objects compared the same way inside, lists item by item). The order is kept
(``order="strict"``, the default) or not (``"any"``). The label is ``pass`` when every call
matches and none is missing or extra, else ``fail``; the score is matched / max(expected,
made); the explanation and the metadata name the calls missing, extra, out of order and with
wrong arguments. pytest-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .._core.types import Example, OutputConfig, Score

ArgumentsRule = Literal["exact", "subset"]
OrderRule = Literal["strict", "any"]
PASS, FAIL = "pass", "fail"


@dataclass(frozen=True)
class ToolCall:
    """One call: the tool's name and its arguments, decoded (None: not given)."""

    name: str
    arguments: Any = None

    def show(self) -> str:
        if self.arguments is None:
            return f"{self.name}(...)"
        return f"{self.name}({json.dumps(self.arguments, ensure_ascii=False, sort_keys=True)})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


class NotToolCalls(ValueError):
    """A value that holds no tool calls in any shape this evaluator reads."""


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _call(item: Mapping[str, Any]) -> ToolCall:
    function = item.get("function")
    source = function if isinstance(function, Mapping) else item
    name = source.get("name")
    if not isinstance(name, str) or not name:
        raise NotToolCalls(f"a tool call without a name: {json.dumps(item, default=str)[:200]}")
    return ToolCall(name, _decoded(source.get("arguments")))


def _is_call(item: Any, *, listed: bool = False) -> bool:
    """A call's shape: OpenAI's ``function``, or a ``name`` with ``arguments`` (in a list of
    calls, a name alone: a call expected by its name only)."""
    if not isinstance(item, Mapping) or "role" in item:
        return False
    return "function" in item or ("name" in item and (listed or "arguments" in item))


def find_calls(value: Any) -> list[ToolCall] | None:
    """The tool calls ``value`` holds, in order; None when it holds no tool-call shape at all
    (plain text, or an object of other keys)."""
    value = _decoded(value)
    if isinstance(value, Mapping):
        if isinstance(value.get("messages"), list):
            return find_calls(value["messages"])
        if "tool_calls" in value:
            calls = value["tool_calls"]
            return [] if calls is None else find_calls(calls if isinstance(calls, list)
                                                       else [calls])
        if _is_call(value):
            return [_call(value)]
        return None
    if isinstance(value, list):
        if not value:
            return []
        if all(isinstance(m, Mapping) and "role" in m for m in value):  # messages
            return [call for m in value if m.get("role") in ("assistant", "ai")
                    for call in find_calls({"tool_calls": m.get("tool_calls")}) or ()]
        if all(_is_call(item, listed=True) for item in value):
            return [_call(item) for item in value]
        raise NotToolCalls(f"a list that is neither tool calls nor messages: "
                           f"{json.dumps(value, default=str)[:200]}")
    return None


def subset(expected: Any, actual: Any) -> bool:
    """Whether ``expected`` is a JSON subset of ``actual``: objects by their keys (recursively),
    lists item by item (same length), other values equal (a boolean never equals a number)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and subset(value, actual[key]) for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            subset(e, a) for e, a in zip(expected, actual, strict=True))
    return _same(expected, actual)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, Mapping) or isinstance(actual, Mapping):
        return isinstance(expected, Mapping) and isinstance(actual, Mapping) and \
            expected.keys() == actual.keys() and all(_same(v, actual[k])
                                                     for k, v in expected.items())
    if isinstance(expected, list) or isinstance(actual, list):
        return isinstance(expected, list) and isinstance(actual, list) and \
            len(expected) == len(actual) and all(_same(e, a) for e, a in
                                                 zip(expected, actual, strict=True))
    return bool(expected == actual)


@dataclass
class Comparison:
    """The expected calls against those made."""

    expected: list[ToolCall]
    actual: list[ToolCall]
    matched: list[tuple[ToolCall, ToolCall]] = field(default_factory=list)
    wrong: list[tuple[ToolCall, ToolCall]] = field(default_factory=list)  # name right, args not
    missing: list[ToolCall] = field(default_factory=list)
    extra: list[ToolCall] = field(default_factory=list)
    out_of_order: list[ToolCall] = field(default_factory=list)  # made, but not in its place

    @property
    def score(self) -> float:
        most = max(len(self.expected), len(self.actual))
        return 1.0 if most == 0 else len(self.matched) / most

    @property
    def passed(self) -> bool:
        return len(self.matched) == len(self.expected) == len(self.actual)

    def explanation(self) -> str:
        head = (f"{len(self.matched)} of {len(self.expected)} expected call(s) made as "
                f"expected; {len(self.actual)} call(s) made")
        parts = [head]
        if self.missing:
            parts.append("missing: " + ", ".join(c.show() for c in self.missing))
        if self.extra:
            parts.append("extra: " + ", ".join(c.show() for c in self.extra))
        if self.out_of_order:
            parts.append("out of order: " + ", ".join(c.show() for c in self.out_of_order))
        if self.wrong:
            parts.append("wrong arguments: " + ", ".join(
                f"{e.name} expected {e.show().removeprefix(e.name)}, got "
                f"{a.show().removeprefix(a.name)}" for e, a in self.wrong))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"expected": len(self.expected), "made": len(self.actual),
                "matched": len(self.matched),
                "missing": [c.to_json() for c in self.missing],
                "extra": [c.to_json() for c in self.extra],
                "out_of_order": [c.to_json() for c in self.out_of_order],
                "wrong": [{"name": e.name, "expected": e.arguments, "made": a.arguments}
                          for e, a in self.wrong]}


def compare(expected: Sequence[ToolCall], actual: Sequence[ToolCall], *,
            arguments: ArgumentsRule = "subset", order: OrderRule = "strict") -> Comparison:
    """Pair the expected calls with those made: as many full matches (name and arguments) as
    possible, then calls of the right name with wrong arguments; the rest is missing or
    extra."""

    def full(e: ToolCall, a: ToolCall) -> bool:
        if e.name != a.name:
            return False
        if e.arguments is None:  # only the name was asked for
            return True
        return subset(e.arguments, a.arguments) if arguments == "subset" \
            else _same(e.arguments, a.arguments)

    found = Comparison(list(expected), list(actual))
    pairs = _in_order(found.expected, found.actual, full) if order == "strict" else \
        _any_order(found.expected, found.actual, full)
    used_e = {i for i, _ in pairs}
    used_a = {j for _, j in pairs}
    for i, j in sorted(pairs):
        e, a = found.expected[i], found.actual[j]
        (found.matched if full(e, a) else found.wrong).append((e, a))
    left_e = [i for i in range(len(expected)) if i not in used_e]
    left_a = [j for j in range(len(actual)) if j not in used_a]
    if order == "strict":  # a call made in the wrong place: said as such, not as missing
        for i in list(left_e):
            late = next((j for j in left_a if full(expected[i], actual[j])), None)
            if late is not None:
                found.out_of_order.append(actual[late])
                left_e.remove(i)
                left_a.remove(late)
    found.missing = [expected[i] for i in left_e]
    found.extra = [actual[j] for j in left_a]
    return found


def _in_order(expected: Sequence[ToolCall], actual: Sequence[ToolCall], full: Any
              ) -> list[tuple[int, int]]:
    """The order-keeping pairing with the most full matches, then the most name matches: a
    weighted longest common subsequence (difflib's matcher cannot weigh a full match above a
    name match, so it is written out; both lists are an agent's few calls)."""
    n, m = len(expected), len(actual)
    big = n + m + 1  # one full match outweighs every name match there can be

    def weight(i: int, j: int) -> int:
        if expected[i].name != actual[j].name:
            return 0
        return big if full(expected[i], actual[j]) else 1

    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            w = weight(i, j)
            best[i][j] = max(best[i + 1][j], best[i][j + 1],
                             best[i + 1][j + 1] + w if w else 0)
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        w = weight(i, j)
        if w and best[i][j] == best[i + 1][j + 1] + w:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _any_order(expected: Sequence[ToolCall], actual: Sequence[ToolCall], full: Any
               ) -> list[tuple[int, int]]:
    """The most full matches in any order (a maximum bipartite matching, by augmenting paths:
    a first-come pairing can miss one when a made call fits two expected ones), then name
    matches among the calls left."""

    def matching(fits: Any, rows: list[int], cols: list[int]) -> dict[int, int]:
        owner: dict[int, int] = {}  # col -> row

        def augment(row: int, seen: set[int]) -> bool:
            for col in cols:
                if col in seen or not fits(row, col):
                    continue
                seen.add(col)
                if col not in owner or augment(owner[col], seen):
                    owner[col] = row
                    return True
            return False

        for row in rows:
            augment(row, set())
        return owner

    first = matching(lambda i, j: full(expected[i], actual[j]), list(range(len(expected))),
                     list(range(len(actual))))
    rows = [i for i in range(len(expected)) if i not in first.values()]
    cols = [j for j in range(len(actual)) if j not in first]
    second = matching(lambda i, j: expected[i].name == actual[j].name, rows, cols)
    return [(i, j) for j, i in {**first, **second}.items()]


@dataclass
class ToolCallsEvaluator:
    """The tool-use evaluator (see the module's docstring); a code evaluator of this plugin."""

    name: str = "tool_calls"
    arguments: ArgumentsRule = "subset"
    order: OrderRule = "strict"
    # JSONPaths into the context, as an attached evaluator's mapping: where the expected calls
    # are (default: the reference) and the calls made (default: the output, then
    # metadata.tool_calls).
    expected: str | None = None
    made: str | None = None
    kind: str = "CODE"
    output_configs: Sequence[OutputConfig] = ()

    def __post_init__(self) -> None:
        if self.arguments not in ("exact", "subset"):
            raise ValueError(f"arguments={self.arguments!r}: write 'exact' or 'subset'")
        if self.order not in ("strict", "any"):
            raise ValueError(f"order={self.order!r}: write 'strict' or 'any'")
        self.output_configs = [OutputConfig(kind="CATEGORICAL", name=self.name,
                                            direction="MAXIMIZE",
                                            values=((PASS, 1.0), (FAIL, 0.0)))]

    async def evaluate(self, context: dict[str, Any], example: Example | None = None
                       ) -> list[Score]:
        start = datetime.now(UTC)
        config = self.output_configs[0]
        rules = {"arguments": self.arguments, "order": self.order}
        try:
            expected = self._expected(self._at(context, self.expected, "reference"))
            actual = find_calls(self._at(context, self.made, "output")) or [] if self.made \
                else self._actual(context)
        except NotToolCalls as exc:
            return [Score(name=self.name, evaluator=self.name, error=str(exc), config=config,
                          metadata={"tool_calls": rules}, start_time=start,
                          end_time=datetime.now(UTC))]
        found = compare(expected, actual, arguments=self.arguments, order=self.order)
        return [Score(name=self.name, evaluator=self.name, annotator_kind="CODE",
                      label=PASS if found.passed else FAIL, score=found.score,
                      explanation=found.explanation(),
                      metadata={"tool_calls": {**rules, **found.to_json()}}, config=config,
                      start_time=start, end_time=datetime.now(UTC))]

    @staticmethod
    def _at(context: dict[str, Any], path: str | None, key: str) -> Any:
        if path is None:
            return context.get(key)
        from .mapping import MappingError, map_inputs

        try:
            values = map_inputs(input_schema={"type": "object", "properties": {"value": {}}},
                                path_mapping={"value": path}, literal_mapping=None,
                                context=context)
        except MappingError as exc:
            values, problem = {}, str(exc).replace(" for key 'value'", "")
        else:
            problem = "no value"
        if "value" not in values:
            raise NotToolCalls(f"path {path!r} finds nothing in the context "
                               f"{{input, output, reference, metadata}} ({problem})")
        return values["value"]

    def _expected(self, reference: Any) -> list[ToolCall]:
        if reference is None or reference == "":
            raise NotToolCalls("no expected tool calls: the reference is empty (give each "
                               "example's expected calls as its output, or name them with "
                               "--phoenix-reference=JSONPATH)")
        found = find_calls(reference)
        if found is None:
            raise NotToolCalls(f"the reference holds no tool calls: expected a list of "
                               f"{{\"name\", \"arguments\"}}, or OpenAI-style tool_calls; it "
                               f"is {json.dumps(_decoded(reference), default=str)[:200]}")
        return found

    def _actual(self, context: Mapping[str, Any]) -> list[ToolCall]:
        found = find_calls(context.get("output"))
        if found is not None:
            return found
        metadata = context.get("metadata")
        listed = metadata.get("tool_calls") if isinstance(metadata, Mapping) else None
        if isinstance(listed, list):
            return find_calls(listed) or []
        return []  # plain text: no call made


def tool_calls(*, name: str = "tool_calls", arguments: ArgumentsRule = "subset",
               order: OrderRule = "strict", expected: str | None = None,
               made: str | None = None) -> ToolCallsEvaluator:
    """The tool-use evaluator: the calls made (the output's tool calls, else the span's or
    trace's ``metadata.tool_calls``) against the reference's expected calls. ``arguments``:
    ``"subset"`` (the expected arguments a JSON subset of those made) or ``"exact"``;
    ``order``: ``"strict"`` or ``"any"``. Label pass / fail, score matched / max(expected,
    made). ``expected`` and ``made`` are JSONPaths into the context for other places
    (``expected="$.reference.plan"``)."""
    return ToolCallsEvaluator(name=name, arguments=arguments, order=order, expected=expected,
                              made=made)


def from_spec(spec: str) -> ToolCallsEvaluator:
    """``tool_calls[:RULE[:RULE]]`` as ``--phoenix-evaluators`` names it: RULE ``exact`` or
    ``subset`` (the arguments), ``strict`` or ``any-order`` (the order). ValueError naming the
    rule that is not one."""
    head, *rules = spec.split(":")
    if head != "tool_calls":
        raise ValueError("write tool_calls[:exact|subset][:strict|any-order]")
    arguments: ArgumentsRule = "subset"
    order: OrderRule = "strict"
    for rule in rules:
        if rule in ("exact", "subset"):
            arguments = "exact" if rule == "exact" else "subset"
        elif rule in ("strict", "any-order"):
            order = "strict" if rule == "strict" else "any"
        else:
            raise ValueError(f"{rule!r} is not a rule of tool_calls: write "
                             f"tool_calls[:exact|subset][:strict|any-order]")
    return tool_calls(arguments=arguments, order=order)
