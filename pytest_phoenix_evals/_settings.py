"""The resolved options: :class:`Settings`, frozen, and what reads them without pytest.

Every mode, the session and the layers below read the options through this one value; the
option table (``_options.py``, the pytest layer) fills it. It is a module of its own, standard
library only, so that the pytest-free layers and modes can take it without the option table
(which speaks pytest), and an unused plugin still imports only light modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ._judge_settings import JudgeSettings

if TYPE_CHECKING:
    from ._core.gates import Gate
    from ._core.verdict import Threshold

EvaluateOn = Literal["local", "server"]  # where attached evaluators run
SpanTarget = Literal["span", "trace", "session"]  # what a project's cases judge


# NamedTuples rather than frozen dataclasses: as immutable, and defining them costs a fraction
# (this module is imported in every pytest run; see tests/test_static.py).
class Settings(NamedTuple):
    """Every option, resolved; nothing else reads ``config.getoption`` for our options.

    The field defaults are the options' defaults: the one place each is written.
    """

    datasets: tuple[str, ...] = ()
    task: str | None = None
    # A prompt as the task: where its variables and appended messages are in the example.
    prompt_variables: str = "input"
    prompt_messages: str | None = None
    push_prompt: str | None = None
    # A prompt as the task, run on each of these models (--phoenix-model).
    models: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    dataset_version: str | None = None
    examples: tuple[str, ...] = ()
    limit: int | None = None
    sample_seed: str | None = None
    only_failures: bool = False
    cache: bool = False
    url: str | None = None
    url_source: str | None = None  # where url came from ("--phoenix-url", "env ...")
    experiment_name: str | None = None
    thresholds: Mapping[str, Threshold] = MappingProxyType({})
    gates: tuple[Gate, ...] = ()
    baseline: str | None = None
    # A fraction of a pass rate, or "significant" (the paired test at ``alpha``).
    max_regression: float | str | None = None
    alpha: float = 0.05
    # The benchmark whose measured judge error corrects pass rates: "latest" or an id.
    judge_calibration: str | None = None
    set_baseline: bool = False
    regate: str | None = None
    repetitions: int = 1
    # --phoenix-repetitions=auto:N: ``repetitions`` is the bound N; a case runs again only
    # while its verdict is unsettled (_core/repeat.py).
    repetitions_auto: bool = False
    task_timeout: float | None = None
    pass_rule: str = "all"  # "all", "majority", "any", or a number K of runs as digits
    results: str | None = None
    summary_md: str | None = None
    no_upload: bool = False
    offline: bool = False
    concurrency: int = 8
    upload_timeout: float = 120.0
    upload_pending: bool = False
    evaluate_on: EvaluateOn = "local"
    prompt_tag: str | None = None
    judge: JudgeSettings = JudgeSettings()
    allow_code_evaluators: bool = False
    skip_evaluators: tuple[str, ...] = ()
    run_id: str | None = None
    code_timeout: float = 10.0
    # Production traces: a project's spans as cases.
    project: str | None = None
    spans: str | None = None
    evaluators: tuple[str, ...] = ()
    since: Any = None  # a timedelta back from now, or a datetime
    until: Any = None
    settle: float = 60.0
    sample: float | None = None
    max_spans: int | None = None
    target: SpanTarget = "span"
    rejudge: bool = False
    shard: tuple[int, int] | None = None  # (K, N), 1-based
    claim_ttl: float = 3600.0  # seconds a dead run's claims hold
    reference: str | None = None
    add_failures_to: str | None = None
    # Judges benchmarked against human labels.
    benchmark: str | None = None
    benchmark_against: str | None = None
    promote_tag: str | None = None
    corrections: str | None = None
    test_share: float = 0.2


def is_prompt_task(task: str | None) -> bool:
    """Whether --phoenix-task names a prompt (prompt:NAME or prompt-file:PATH)."""
    return (task or "").startswith(("prompt:", "prompt-file:"))
