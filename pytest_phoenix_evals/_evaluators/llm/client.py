"""Calling the judge model: providers, retries, a cap on concurrent calls, token usage.

Every LLM evaluator goes through :class:`Judges`, which owns one ``openai.AsyncOpenAI`` client per
endpoint on the engine's loop. OpenAI, Azure OpenAI and any OpenAI-compatible server (Ollama,
vLLM, our stand-in judge) are supported: the providers the ``openai`` client speaks. The request
is built as the Phoenix server builds it (``OpenAICompatibleClient.
_openai_chat_completion_build_params`` in ``phoenix/server/api/helpers/playground_clients.py``),
so a judge sees the same messages, tools, tool choice and parameters either way.

Retries are ours (the client's own are switched off) so that the policy is one place: 429, 5xx,
timeouts and connection errors are retried with exponential backoff and full jitter, honouring
``Retry-After``; after the last attempt the evaluator errors with what the judge said.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..._core.secrets import redact
from ..._core.text import encodable
from ..._core.types import NOT_RUN

# The settings live in a light module that the option table can import; re-exported here.
from ..._judge_settings import JudgeApi as JudgeApi
from ..._judge_settings import JudgeSettings as JudgeSettings
from ..._judge_settings import parse_price as parse_price

DEFAULT_MODEL = "gpt-4o-mini"
# The OpenAI models the server calls through Chat Completions; any other OpenAI model name goes
# to the Responses API (``get_openai_client_class`` in the server's playground_clients.py).
CHAT_COMPLETIONS_MODELS = frozenset({
    "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-4",
    "gpt-3.5-turbo"})
# The reasoning models: on Azure OpenAI the server sends them to the Responses API (they refuse
# function tools on Chat Completions), every other Azure model to Chat Completions
# (``OPENAI_REASONING_MODELS`` and ``get_openai_client_class`` in the same file).
REASONING_MODELS = frozenset({
    "gpt-6.1-sol", "gpt-6-astra", "gpt-6-sol", "gpt-6-luna", "gpt-5.6-sol", "gpt-5.6-terra",
    "gpt-5.6-luna", "gpt-5.5", "gpt-5.5-pro", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano",
    "gpt-5.4-pro", "gpt-5.2", "gpt-5.2-pro", "gpt-5.1", "gpt-5", "gpt-5-mini", "gpt-5-nano",
    "gpt-5-pro", "o1", "o1-pro", "o3", "o3-pro", "o3-mini", "o4-mini"})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0


class JudgeError(Exception):
    """The judge could not be called or did not answer; the message is safe to print."""


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class Completion:
    """What the judge answered, reduced to what evaluators read."""

    model: str
    content: str | None
    tool_calls: list[ToolCall]
    usage: dict[str, int]
    attempts: int
    cached: bool = False  # answered from --phoenix-cache, not by the model
    # The tools a Responses API answer echoes (as JSON), which Phoenix records over the
    # request's; None for Chat Completions.
    echoed_tools: list[Any] | None = None

    def quoted(self, limit: int = 500) -> str:
        """The raw answer, for error messages."""
        if self.tool_calls:
            text = "; ".join(f"{c.name}({c.arguments})" for c in self.tool_calls)
        else:
            text = self.content or "(empty answer)"
        return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class Endpoint:
    provider: str
    base_url: str | None
    api_key: str
    shown: str  # how messages name it (never the key)


class Judges:
    """Judge clients for one session; use only on the engine's event loop."""

    def __init__(self, settings: JudgeSettings, role: str = "judge", *,
                 workers: int = 1) -> None:
        self.settings = settings
        # How messages name the model: "judge", or "task's model" for a prompt under test.
        self.role = role
        # Under pytest-xdist: the run's workers, each with its share of the limits (settings).
        self.workers = workers
        self._clients: dict[Endpoint, Any] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self.cache: Any = None  # a JudgeCache with --phoenix-cache
        self.spent = 0.0  # USD, of the calls whose model has a price (--phoenix-judge-price)
        #: USD held by the priced calls in flight (their estimates), retries' waits included:
        #: --phoenix-budget-usd counts them as spent until they are answered or given up.
        self.reserved = 0.0
        self._largest: dict[str, float] = {}  # the costliest answer so far, by model

    def model(self, model_name: str | None) -> str:
        return self.settings.model or model_name or DEFAULT_MODEL

    def endpoint(self, provider: str) -> Endpoint:
        """Where a judge of ``provider`` is called; JudgeError naming what to set if nowhere."""
        provider = (provider or "OPENAI").upper()
        if provider == "OPENAI":
            base_url = self.settings.base_url or os.environ.get("OPENAI_BASE_URL") or None
            api_key = os.environ.get("OPENAI_API_KEY")
            if not api_key:
                if not base_url:
                    raise JudgeError(
                        "OPENAI_API_KEY is not set: set it, or point --phoenix-judge-base-url "
                        "(or OPENAI_BASE_URL) at an OpenAI-compatible server")
                api_key = "no-key-set"  # OpenAI-compatible servers often need none
            return Endpoint("OPENAI", base_url, api_key, base_url or "OpenAI")
        if provider == "AZURE_OPENAI":
            endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
            api_key = os.environ.get("AZURE_OPENAI_API_KEY")
            if not endpoint or not api_key:
                missing = [n for n, v in (("AZURE_OPENAI_ENDPOINT", endpoint),
                                          ("AZURE_OPENAI_API_KEY", api_key)) if not v]
                raise JudgeError(f"Azure OpenAI judge: set {' and '.join(missing)}")
            # The server's construction of Azure's OpenAI-style v1 URL.
            endpoint = endpoint.rstrip("/")
            if not endpoint.endswith("/openai/v1"):
                endpoint += "/openai/v1"
            return Endpoint("AZURE_OPENAI", endpoint + "/", api_key, endpoint)
        raise JudgeError(
            f"model provider {provider} is not supported for local judging (supported: OpenAI, "
            f"Azure OpenAI and OpenAI-compatible servers); run with "
            f"--phoenix-evaluate-on=server to let Phoenix call {provider}")

    def _client(self, endpoint: Endpoint) -> Any:
        if endpoint not in self._clients:
            from openai import AsyncOpenAI

            self._clients[endpoint] = AsyncOpenAI(
                api_key=endpoint.api_key, base_url=endpoint.base_url,
                timeout=self.settings.timeout, max_retries=0)
        return self._clients[endpoint]

    def api(self, provider: str, model: str) -> str:
        """``chat`` or ``responses``: the setting, else the endpoint the server would use."""
        if self.settings.api != "auto":
            return self.settings.api
        provider = (provider or "OPENAI").upper()
        if provider == "OPENAI":  # Responses, except the models that predate it
            return "chat" if model in CHAT_COMPLETIONS_MODELS else "responses"
        if provider == "AZURE_OPENAI":  # Chat Completions, except the reasoning models
            return "responses" if model in REASONING_MODELS else "chat"
        return "chat"

    async def complete(self, provider: str, params: dict[str, Any],
                       extra_body: dict[str, Any] | None = None, api: str = "chat"
                       ) -> Completion:
        """One chat completion (or Responses call) with retries; JudgeError after the last.
        Text UTF-8 cannot encode (a lone surrogate, from a span's JSON or a cut UTF-16 pair)
        is sent as its ``\\udcXX`` escape, as the dataset path uploads it."""
        params = encodable(params)
        extra_body = encodable(extra_body)
        endpoint = self.endpoint(provider)
        key = None
        if self.cache is not None:
            from .cache import cache_key

            key = cache_key(endpoint.shown, api, params, extra_body)
            if (kept := self.cache.get(key)) is not None:
                try:
                    kept["tool_calls"] = [ToolCall(**call) for call in kept["tool_calls"]]
                    return Completion(**{**kept, "cached": True, "attempts": 0})
                except (KeyError, TypeError):  # an answer of another shape: a miss
                    pass
        completion = await self._complete(endpoint, params, extra_body, api)
        if key is not None:
            self.cache.put(key, completion)
        return completion

    async def _complete(self, endpoint: Endpoint, params: dict[str, Any],
                        extra_body: dict[str, Any] | None, api: str) -> Completion:
        client = self._client(endpoint)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        attempts = 1 + max(0, self.settings.retries)
        model = str(params.get("model"))
        held = 0.0  # this call's reservation
        try:
            for attempt in range(1, attempts + 1):
                try:
                    async with self._semaphore:
                        # Every attempt, retries included: a 429 gives the place back unpaid,
                        # and the budget may be gone by the time the retry gets one again.
                        self._check_budget(held)
                        if not held:
                            held = self._estimate(model, params)
                            self.reserved += held
                        with _uninstrumented():
                            if api == "responses":
                                answer = await client.responses.create(**params,
                                                                       extra_body=extra_body)
                                completion = _from_responses(answer, attempt)
                            else:
                                # The client's own request (its base URL, headers, auth,
                                # timeout and errors), without its typed layer: the SDK
                                # walks the request against its parameter types and builds
                                # its response models, which cost more CPU than the rest of
                                # a judge call (profiled: docs/speed.md). The body is the one
                                # ``chat.completions.create(**params)`` sends.
                                data = await client.post(
                                    "/chat/completions", body=_sdk_ordered(params),
                                    options={"extra_json": extra_body} if extra_body else {},
                                    cast_to=object)
                                completion = _completion_of(data, attempt)
                    self._pay(model, completion.usage)
                    return completion
                except Exception as exc:
                    if not _transport_problem(exc):
                        raise
                    if attempt == attempts or not _retryable(exc):
                        raise JudgeError(
                            f"the {self.role} at {endpoint.shown} (model {params.get('model')}) "
                            f"failed after {attempt} attempt(s): {_describe(exc)}") from None
                    response = getattr(exc, "response", None)
                    await asyncio.sleep(backoff(attempt, getattr(response, "headers", None)))
            raise AssertionError("unreachable")
        finally:
            self.reserved -= held

    def _estimate(self, model: str, params: Mapping[str, Any]) -> float:
        """What a call is held to cost while in flight (0 for a model without a price): the
        costliest answer of this model so far, or, before the first, its request's prompt at
        about 4 characters a token (the usual rule of thumb for OpenAI's tokenizers; a
        tokenizer package would be a large dependency for a bound)."""
        price = self.settings.prices.get(model)
        if price is None or self.settings.budget_usd is None:
            return 0.0
        if model in self._largest:
            return self._largest[model]
        import json

        request = {k: params.get(k) for k in ("messages", "input", "tools") if k in params}
        tokens = len(json.dumps(request, ensure_ascii=False, default=str)) / 4
        return tokens * price[0] / 1_000_000

    def _pay(self, model: str, usage: Mapping[str, int]) -> None:
        cost = self.cost(model, usage)
        if cost is not None:
            self.spent += cost
            self._largest[model] = max(cost, self._largest.get(model, 0.0))

    def _check_budget(self, held: float = 0.0) -> None:
        """--phoenix-budget-usd: no attempt starts once the priced spend, with what the calls
        in flight hold, reaches it. Checked before every attempt, when it has its place among
        the concurrent ones (not before it waits for one: calls that queued while the budget
        lasted would start after it was spent); ``held`` is this call's own reservation."""
        budget = self.settings.budget_usd
        committed = self.spent + self.reserved - held
        if budget is not None and committed >= budget:
            shared = self.workers
            said = f"--phoenix-budget-usd={budget:g}" if shared == 1 else \
                f"this worker's share (1/{shared}) of --phoenix-budget-usd={budget * shared:g}"
            held_by = self.reserved - held
            raise JudgeError(f"{NOT_RUN}{said} is spent ({self.spent:.4f} USD"
                             + (f", {held_by:.4f} more held by calls in flight" if held_by
                                else "")
                             + f"): this {self.role} call was not started")

    def cost(self, model: str, usage: Mapping[str, int]) -> float | None:
        price = self.settings.prices.get(model)
        if price is None:
            return None
        return (usage.get("prompt_tokens", 0) * price[0]
                + usage.get("completion_tokens", 0) * price[1]) / 1_000_000

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


@contextlib.contextmanager
def _uninstrumented() -> Iterator[None]:
    """No instrumentation of the app records a judge call: an OpenInference (or any
    OpenTelemetry) instrumentation of the openai client installed in this process would
    otherwise trace it into the app's project, which a production-traces run may be judging.
    Our own judge spans are made around the call, outside this."""
    from opentelemetry import context

    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        context.detach(token)


def _is_timeout(exc: BaseException) -> bool:
    import openai

    # The client wraps most timeouts in APITimeoutError, but a timeout while reading the body
    # can surface as the HTTP library's own ReadTimeout.
    return isinstance(exc, openai.APITimeoutError) or "Timeout" in type(exc).__name__


def _transport_problem(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APIStatusError, openai.APIConnectionError)) or _is_timeout(exc):
        return True
    module = type(exc).__module__.split(".")[0]
    return module.startswith(("httpx", "httpcore")) and not isinstance(exc, ValueError)


def _retryable(exc: Exception) -> bool:
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return True  # timeouts and connection errors


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a server asked us to wait (``retry-after-ms`` or ``retry-after``), capped."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = (headers or {}).get(name)
        if value is not None:
            try:
                return min(RETRY_AFTER_CAP, max(0.0, float(value) / scale))
            except ValueError:
                continue
    return None


def backoff(attempt: int, headers: Mapping[str, str] | None = None) -> float:
    """Delay before retry ``attempt``: Retry-After if given, else exponential, full jitter."""
    after = retry_after(headers)
    if after is not None:
        return after
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))


def _describe(exc: Exception) -> str:
    import openai

    if _is_timeout(exc):
        return "timed out (raise --phoenix-judge-timeout if the judge is slow)"
    if not isinstance(exc, openai.APIStatusError):
        return redact(f"cannot connect ({type(exc).__name__}: {exc})")
    message = getattr(exc, "message", None) or str(exc)
    return redact(f"HTTP {exc.status_code}: {message}"[:500])


def _sdk_ordered(params: Mapping[str, Any]) -> dict[str, Any]:
    """The body ``chat.completions.create(**params, stream=False)`` sends, key for key in its
    order (``model``, ``stream``, ``service_tier``, ``messages``, then the rest by name): the
    same bytes as the server's playground, which calls that method (tests/test_prompt_parity.py
    compares them)."""
    body: dict[str, Any] = {"model": params.get("model"), "stream": False}
    for key in ("service_tier", "messages"):
        if key in params:
            body[key] = params[key]
    body.update(sorted((k, v) for k, v in params.items() if k not in body))
    return body


def _completion_of(data: Any, attempts: int) -> Completion:
    """A Chat Completions answer (its JSON) as a Completion: what :func:`_completion` reads
    of the SDK's model, read from the JSON the server sent."""
    data = data if isinstance(data, Mapping) else {}
    choices = data.get("choices") or []
    choice = choices[0] if isinstance(choices, list) and choices and \
        isinstance(choices[0], Mapping) else {}
    message = choice.get("message")
    calls = []
    content = None
    if isinstance(message, Mapping):
        content = message.get("content") if isinstance(message.get("content"), str) else None
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and (call.get("type") or "function") == "function":
                calls.append(ToolCall(str(call.get("id") or ""), str(function.get("name")),
                                      function.get("arguments") or ""))
    usage = {}
    if isinstance(data.get("usage"), Mapping):
        found = data["usage"]
        usage = {key: int(found.get(key) or 0)
                 for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return Completion(model=str(data.get("model") or ""), content=content, tool_calls=calls,
                      usage=usage, attempts=attempts)


def _from_responses(response: Any, attempts: int) -> Completion:
    texts: list[str] = []
    calls = []
    for item in response.output or ():
        if item.type == "message":
            texts += [block.text for block in item.content or () if block.type == "output_text"]
        elif item.type == "function_call":
            calls.append(ToolCall(item.call_id, item.name, item.arguments or ""))
    usage = {}
    if response.usage is not None:
        usage = {"prompt_tokens": response.usage.input_tokens or 0,
                 "completion_tokens": response.usage.output_tokens or 0,
                 "total_tokens": response.usage.total_tokens or 0}
    # An answer whose text is empty is "" (Phoenix records it so), no text at all None.
    return Completion(model=response.model or "", content="".join(texts) if texts else None,
                      tool_calls=calls, usage=usage, attempts=attempts,
                      echoed_tools=[tool.model_dump(mode="json")
                                    for tool in getattr(response, "tools", None) or ()])


# --- the request, as the server builds it -------------------------------------------------

# Message roles as the server maps them (``_ROLE_MAPPING`` in message_helpers.py).
ROLES = {"user": "user", "assistant": "assistant", "model": "assistant", "ai": "assistant",
          "system": "system", "developer": "system", "tool": "tool"}
_TOOL_CHOICE = {"none": "none", "zero_or_more": "auto", "one_or_more": "required"}
_FLOAT_PARAMS = ("temperature", "frequency_penalty", "presence_penalty", "top_p")


def openai_message(role: str, content: str) -> dict[str, Any]:
    mapped = ROLES.get(role.lower())
    if mapped is None:
        raise ValueError(f"unknown message role {role!r}")
    if mapped == "tool":
        raise ValueError("tool_call_id is required for tool messages")
    return {"role": mapped, "content": content}


def _tool_choice(tools: Mapping[str, Any], specific: Any) -> dict[str, Any]:
    """``tool_choice`` and ``parallel_tool_calls`` from the prompt's tools; ``specific`` shapes a
    choice of one function (the two OpenAI APIs spell it differently)."""
    out: dict[str, Any] = {}
    choice = tools.get("tool_choice") or {}
    kind = choice.get("type")
    if kind in _TOOL_CHOICE:
        out["tool_choice"] = _TOOL_CHOICE[kind]
    elif kind == "specific_function":
        out["tool_choice"] = specific(choice["function_name"])
    if tools.get("disable_parallel_tool_calls"):
        out["parallel_tool_calls"] = False
    return out


def request_params(
    model: str,
    messages: list[dict[str, Any]],
    tools: Mapping[str, Any] | None,
    invocation_parameters: Mapping[str, Any] | None,
    response_format: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(chat.completions.create keyword arguments, extra_body) from a prompt version's parts."""
    params: dict[str, Any] = {"messages": messages, "model": model}
    if tools:
        params.update(_tool_choice(tools, lambda name: {"type": "function",
                                                        "function": {"name": name}}))
        functions = []
        for tool in tools.get("tools") or ():
            if tool.get("type") != "function":
                continue
            spec = tool["function"]
            definition: dict[str, Any] = {
                "name": spec["name"],
                "parameters": spec.get("parameters") or {},
                "strict": spec["strict"] if isinstance(spec.get("strict"), bool) else None,
            }
            if spec.get("description"):
                definition["description"] = spec["description"]
            functions.append({"type": "function", "function": definition})
        if functions:
            params["tools"] = functions
    schema = _json_schema_format(response_format)
    if schema is not None:
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    extra_body = None
    if invocation_parameters:
        values = invocation_parameters.get(invocation_parameters.get("type", "openai")) or {}
        for name in _FLOAT_PARAMS:
            if _is_number(values.get(name)):
                params[name] = float(values[name])
        for name in ("max_completion_tokens", "max_tokens"):  # max_tokens wins, as on the server
            if isinstance(values.get(name), int) and not isinstance(values[name], bool):
                params["max_completion_tokens"] = values[name]
        if isinstance(values.get("seed"), int) and not isinstance(values["seed"], bool):
            params["seed"] = values["seed"]
        if isinstance(values.get("stop"), list):
            params["stop"] = values["stop"]
        if values.get("reasoning_effort"):
            params["reasoning_effort"] = values["reasoning_effort"]
        if isinstance(values.get("extra_body"), dict):
            extra_body = values["extra_body"]
    return params, extra_body


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_schema_format(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A prompt version's ``json_schema`` response format as the server forwards it: the name,
    then the description and schema when set, and ``strict`` when it is a boolean."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    given = response_format.get("json_schema") or {}
    found: dict[str, Any] = {"name": given.get("name")}
    if given.get("description"):
        found["description"] = given["description"]
    if given.get("schema"):
        found["schema"] = given["schema"]
    if isinstance(given.get("strict"), bool):
        found["strict"] = given["strict"]
    return found


def responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions messages as the Responses API's input items, as the server converts
    them (``_to_openai_response_input_item_param``): an assistant's tool calls follow it as
    ``function_call`` items, a tool message is a ``function_call_output`` (dropped without its
    call id)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "tool":
            if message.get("tool_call_id") is not None:
                items.append({"call_id": message["tool_call_id"],
                              "output": message["content"] or "",
                              "type": "function_call_output"})
            continue
        items.append({"role": message["role"], "content": message["content"] or "",
                      "type": "message"})
        for call in message.get("tool_calls") or ():
            items.append({"call_id": call["id"], "name": call["function"]["name"],
                          "arguments": call["function"]["arguments"],
                          "type": "function_call"})
    return items


def responses_params(
    model: str,
    messages: list[dict[str, Any]],
    tools: Mapping[str, Any] | None,
    invocation_parameters: Mapping[str, Any] | None,
    response_format: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(responses.create keyword arguments, extra_body), as the server builds them
    (``_openai_response_build_params``): fewer parameters survive than for Chat Completions."""
    params: dict[str, Any] = {"input": responses_input(messages), "model": model}
    if tools:
        params.update(_tool_choice(tools, lambda name: {"type": "function", "name": name}))
        functions = []
        for tool in tools.get("tools") or ():
            if tool.get("type") == "raw":
                functions.append(tool["raw"])
                continue
            spec = tool["function"]
            definition: dict[str, Any] = {
                "type": "function", "name": spec["name"],
                "parameters": spec.get("parameters") or None,
                "strict": spec["strict"] if isinstance(spec.get("strict"), bool) else None}
            if spec.get("description"):
                definition["description"] = spec["description"]
            functions.append(definition)
        if functions:
            params["tools"] = functions
    schema = _json_schema_format(response_format)
    if schema is not None:  # the Responses API's spelling: text.format, the schema always set
        text_format = {"type": "json_schema", "name": schema["name"],
                       "schema": schema.get("schema") or {}}
        text_format.update({k: schema[k] for k in ("description", "strict") if k in schema})
        params["text"] = {"format": text_format}
    extra_body = None
    if invocation_parameters:
        values = invocation_parameters.get(invocation_parameters.get("type", "openai")) or {}
        if _is_number(values.get("temperature")):
            params["temperature"] = float(values["temperature"])
        if isinstance(values.get("max_completion_tokens"), int) and \
                not isinstance(values["max_completion_tokens"], bool):
            params["max_output_tokens"] = values["max_completion_tokens"]
        if _is_number(values.get("top_p")):
            params["top_p"] = float(values["top_p"])
        if values.get("reasoning_effort"):
            params["reasoning"] = {"effort": values["reasoning_effort"]}
        if isinstance(values.get("extra_body"), dict):
            extra_body = values["extra_body"]
    return params, extra_body
