"""The gateway's calls for evaluators the server runs: the server's built-in judge templates
(``classificationEvaluatorConfigs``) and evaluator previews (``evaluatorPreviews``, batched as
aliased fields of one mutation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from .base import GatewayBase
from .wire import JudgeTemplate, PreviewAnswer, judge_template

__all__ = ["PREVIEW_TIMEOUT", "PREVIEWS_PER_REQUEST", "PreviewCalls"]

# A batch of previews runs one after another on the server, judge calls included.
PREVIEW_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
#: Previews in one request: the server's limit on aliases in one GraphQL document.
PREVIEWS_PER_REQUEST = 50

_TEMPLATES_QUERY = """query { classificationEvaluatorConfigs {
  name description optimizationDirection choices
  messages { role content { ... on TextContentPart { text { text } } } } } }"""
_PREVIEW_RESULTS = ("{ evaluatorName error annotation { name annotatorKind label score "
                    "explanation metadata traceId } }")


class PreviewCalls(GatewayBase):
    """The server's judge templates, and evaluator previews on the engine's loop."""

    def classification_evaluator_configs(self) -> list[JudgeTemplate]:
        """The server's built-in judge templates (their text is Phoenix's: never stored)."""
        data = self._graphql(_TEMPLATES_QUERY, {}, "reading the server's judge templates")
        return [judge_template(t) for t in data.get("classificationEvaluatorConfigs") or ()]

    async def aevaluator_previews(self, previews: Sequence[Mapping[str, Any]]
                                  ) -> list[PreviewAnswer]:
        """Run up to :data:`PREVIEWS_PER_REQUEST` evaluator previews (``EvaluatorPreviewInput``)
        in one request; each one's results or error, in order. PhoenixError when the request
        itself fails.

        Aliases rather than one ``previews`` list: the server flattens a list's results (an
        answer whose tool matches no config yields none) and fails the whole list on any
        request-level problem; with aliases every preview gets its own results or error.
        """
        if len(previews) > PREVIEWS_PER_REQUEST:
            raise ValueError(f"at most {PREVIEWS_PER_REQUEST} previews a request")
        count = range(len(previews))
        params = ", ".join(f"$p{i}: EvaluatorPreviewsInput!" for i in count)
        fields = " ".join(f"p{i}: evaluatorPreviews(input: $p{i}) {{ results {_PREVIEW_RESULTS} }}"
                          for i in count)
        query = f"mutation({params}) {{ {fields} }}"
        variables = {f"p{i}": {"previews": [preview]} for i, preview in enumerate(previews)}
        doing = "running evaluator previews"
        http = self._async()

        async def post() -> dict[str, Any]:
            response = await http.post("graphql", json={"query": query, "variables": variables},
                                       timeout=PREVIEW_TIMEOUT,
                                       extensions=self._extensions(doing))
            response.raise_for_status()
            return self._graphql_answer(response, doing)

        payload = await self.acall(doing, post)
        errors: dict[str, str] = {}
        for error in payload.get("errors") or ():
            path = error.get("path") or ["?"]
            errors.setdefault(str(path[0]), error.get("message", str(error)))
        data = payload.get("data") or {}
        answers = []
        for i in count:
            alias = f"p{i}"
            if data.get(alias) is None:
                answers.append(PreviewAnswer(None, errors.get(alias) or "; ".join(
                    errors.values()) or "the server returned no result"))
            else:
                answers.append(PreviewAnswer(list(data[alias]["results"])))
        return answers
