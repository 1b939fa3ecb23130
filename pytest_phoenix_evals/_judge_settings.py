"""What a session tells the judge client: model, endpoint, timeouts, retries, prices.

The defaults here are the judge options' defaults (``--phoenix-judge-*``); the option table
reads them, so each is written once. The judge client (``_evaluators/llm/client.py``)
re-exports it. It is a top-level module of its own, standard library only, because the option
table imports it in every pytest run (one small module, not a package and its parents).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple

# "chat" or "responses"; "auto" calls the endpoint the Phoenix server would call.
JudgeApi = Literal["auto", "chat", "responses"]


# A NamedTuple rather than a frozen dataclass: as immutable, and much cheaper to define (the
# option table imports this module in every pytest run).
class JudgeSettings(NamedTuple):
    model: str | None = None  # replaces every judge's model when set
    base_url: str | None = None  # replaces OPENAI_BASE_URL when set
    timeout: float = 30.0
    retries: int = 3
    concurrency: int = 8
    api: JudgeApi = "auto"
    # model -> (USD per million input tokens, USD per million output tokens)
    prices: Mapping[str, tuple[float, float]] = MappingProxyType({})
    # USD: no judge call starts once the priced spend reaches it (None: no limit)
    budget_usd: float | None = None


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``gpt-4o-mini=0.15/0.60`` -> (model, (input, output)) in USD per million tokens."""
    model, sep, rest = text.partition("=")
    prompt, slash, completion = rest.partition("/")
    try:
        if not (sep and slash and model.strip()):
            raise ValueError
        return model.strip(), (float(prompt), float(completion))
    except ValueError:
        raise ValueError(f"{text!r} is not MODEL=INPUT/OUTPUT (USD per million tokens), for "
                         f"example gpt-4o-mini=0.15/0.60") from None
