"""The Phoenix gateway: the only code that speaks to Phoenix's REST and GraphQL APIs.

:class:`Gateway` is the one object the rest of the plugin holds. Its calls live by resource,
each in a module of this package, and every REST path and GraphQL document the plugin uses is
in one of them, behind typed methods:

* :mod:`.base`: the HTTP clients, the retry policy, messages naming the server, paging, the
  read tape (``--phoenix-offline``) and the answers an xdist worker is primed with;
* :mod:`.datasets`: datasets (with their attached evaluators and splits), experiments by id
  or name, baselines, an experiment's runs;
* :mod:`.experiments`: experiments made and deleted, runs and evaluations uploaded;
* :mod:`.prompts`: prompt versions found, pushed and tagged;
* :mod:`.previews`: the server's judge templates and evaluator previews;
* :mod:`.traces` (a wrapper, not a part of the class): projects, spans, span annotations.

Every request goes through the one retry policy of :mod:`.http`, and every failure becomes a
:class:`PhoenixError` whose message names the server and what to do; so does an answer that
is not the Phoenix API's (:func:`.http.json_body`). Every read answer is kept on
:attr:`Gateway.tape`, for the local snapshot that ``--phoenix-offline`` replays: the offline
gateway is this class over :class:`~.offline.ReplayTransport` (:func:`~.offline.offline_gateway`).
"""

from __future__ import annotations

from .base import MAX_CONNECTIONS, GatewayBase
from .datasets import MAIN_BRANCHES, DatasetCalls, LoadedDataset
from .experiments import CREATION_TOKEN, EXISTING_RUN, ExperimentCalls, send_evaluation, send_run
from .previews import PREVIEW_TIMEOUT, PREVIEWS_PER_REQUEST, PreviewCalls
from .prompts import PromptCalls

__all__ = [
    "CREATION_TOKEN",
    "EXISTING_RUN",
    "MAIN_BRANCHES",
    "MAX_CONNECTIONS",
    "PREVIEWS_PER_REQUEST",
    "PREVIEW_TIMEOUT",
    "Gateway",
    "GatewayBase",
    "LoadedDataset",
    "send_evaluation",
    "send_run",
]


class Gateway(DatasetCalls, ExperimentCalls, PromptCalls, PreviewCalls, GatewayBase):
    """Synchronous reads for collection time; ``a*`` methods on the engine's loop (one loop).

    ``transport`` (sync and, for the ``a*`` methods, async) replaces the network: the offline
    replay. ``where`` replaces "Phoenix at <url> (from <source>)" in messages.
    """
