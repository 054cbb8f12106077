"""`Gate`: the client a handler gets, bound to its request's context and route policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Unpack

from ._chain import Call
from ._streaming import GateStream
from .chat._model import ChatOptions, check_params
from .chat._output import Output
from .chat._shapes import shape_problem
from .chat._validate import InvalidRequest, validate_request
from .errors import PolicyError, RequestRejected
from .providers import ChatRequest

if TYPE_CHECKING:
    from ._context import RoutingContext
    from .gateway import Gateway
    from .limits import CacheMode
    from .policy import RoutePolicy
    from .results import ChatResult

__all__ = ["Gate", "Message"]

Message = Mapping[str, Any]
_NO_BODY: Mapping[str, Any] = MappingProxyType({})
# Options that need no field of ChatRequest besides their own (nor any check of shapes).
_FEW = frozenset({"max_tokens", "temperature"})
_CACHE_MODES = ("use", "bypass", "refresh")


class Gate:
    """Calls models for one request, under one route policy."""

    __slots__ = ("context", "gateway", "policy", "route")

    def __init__(
        self, gateway: Gateway, context: RoutingContext, policy: RoutePolicy, route: str
    ) -> None:
        self.gateway = gateway
        self.context = context
        self.policy = policy
        self.route = route

    @property
    def request_id(self) -> str:
        return self.context.request_id

    def _request(
        self, function: str, messages: Sequence[Message], options: ChatOptions,
        cache: CacheMode = "use",
    ) -> ChatRequest:
        if cache not in _CACHE_MODES:
            raise ValueError(f"cache must be 'use', 'bypass' or 'refresh', got {cache!r}")
        few = options.keys() <= _FEW  # the common call: nothing more to look up or check
        extra = _NO_BODY if few else check_params(options, function)
        # A caller's mistake is refused here, as a 4xx, before it can reach an upstream
        # and count against a model; what goes on are checked copies.
        try:
            checked, valid = validate_request(messages, options)
        except InvalidRequest as invalid:
            raise RequestRejected(
                f"invalid request: {invalid}", (), request_id=self.context.request_id, status=400
            ) from None
        if extra:
            extra = {name: valid[name] for name in extra}
        options = valid  # type: ignore[assignment]
        policy = self.policy
        max_tokens, cap = options.get("max_tokens"), policy.max_tokens
        if max_tokens is None or (cap is not None and max_tokens > cap):
            max_tokens = cap
        temperature = options.get("temperature")
        if temperature is None:
            temperature = policy.temperature
        if few:
            return ChatRequest(checked, max_tokens, temperature, checked=True)
        stop, output = options.get("stop"), options.get("output")
        tools, tool_choice = options.get("tools"), options.get("tool_choice")
        response_format = options.get("response_format")
        if (tools or tool_choice or response_format) and (
            problem := shape_problem(tools, tool_choice, response_format)
        ):
            raise RequestRejected(problem, (), request_id=self.request_id, status=400)
        return ChatRequest(
            messages=checked,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=options.get("top_p"),
            stop=(stop,) if isinstance(stop, str) else stop,
            extra=extra,
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=options.get("parallel_tool_calls"),
            response_format=response_format,
            output=None if output is None else Output.of(output),
            n=options.get("n"),
            seed=options.get("seed"),
            user=options.get("user"),
            metadata=options.get("metadata"),
            extra_body=options.get("extra_body") or _NO_BODY,
            raw=options.get("raw", False),
            checked=True,
        )

    def _chain(self, model: str | Sequence[str] | None) -> tuple[str, ...]:
        if model is None:
            return self.policy.models
        chain = (model,) if isinstance(model, str) else tuple(model)
        if unknown := self.gateway.registry.unknown(chain):
            raise PolicyError(f"unknown model {unknown[0]!r}", route=self.route, field="model")
        return chain

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        cache: CacheMode = "use",
        **options: Unpack[ChatOptions],
    ) -> ChatResult:
        """Answer `messages` with the first model that succeeds, in the order the route's
        strategy chose.

        Messages, `tools`, `tool_choice` and `response_format` are in OpenAI's chat format,
        translated for each provider; `result.message` and `result.tool_calls` come back
        the same whichever answered. `output=` (a pydantic model, any type pydantic
        validates, or a JSON schema) asks for structured output and puts the validated
        object in `result.parsed`; an answer that does not validate fails that attempt
        (`invalid_output`) and the chain goes on. `model` replaces the policy's chain (and
        strategy) for this call; `max_cost_usd` the policy's cost limit. `max_tokens` is
        capped by the policy's. The keywords are `chat.ChatOptions`: other OpenAI
        parameters (such as `frequency_penalty`) are passed on where the provider takes
        them; any other keyword raises `TypeError` before anything is sent
        (provider-specific fields go in `extra_body=`). `raw=True` keeps the provider's
        JSON in `result.raw`. `cache` is "use", "bypass" (neither read nor write the route's
        cache) or "refresh" (call upstream and store anew). Raises `AllAttemptsFailed`,
        `DeadlineExceeded`, `RequestRejected`, `NoCandidates`, `BudgetExceeded` or
        `RateLimited`; `RequestRejected` (400) at once, before any upstream is called, for
        messages or options no upstream could take (see `gate_mw.chat._validate`).
        """
        request = self._request("chat", messages, options, cache)
        gateway = self.gateway
        if not gateway._ready():
            await gateway.start()
        return await self._call(request, model, max_cost_usd, stream=False, cache=cache).run()

    def _call(
        self, request: ChatRequest, model: str | Sequence[str] | None, max_cost_usd: float | None,
        *, stream: bool, cache: CacheMode = "use",
    ) -> Call:
        if self.context.scope.get("method") == "HEAD":
            # A HEAD answer has no body: a model call for it would be paid and thrown away.
            raise RequestRejected(
                "a HEAD request does not call models: send GET for the answer", (),
                request_id=self.context.request_id, status=405,
            )
        if max_cost_usd is not None and not max_cost_usd > 0:
            raise PolicyError("max_cost_usd must be positive", route=self.route, field="max_cost_usd")
        models = None if model is None else self._chain(model)
        return Call(
            self.gateway, self.context, self.policy, self.route, request, models=models,
            max_cost_usd=max_cost_usd, stream=stream, cache=cache,
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str | Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        cache: CacheMode = "use",
        **options: Unpack[ChatOptions],
    ) -> GateStream:
        """Stream the answer to `messages`: iterate the result for text deltas, or its
        `events()` for text and tool-call deltas.

        Nothing is sent until the stream is opened (`async with`, `open()` or the first
        iteration). Models fall back until one sends its first token; after that a
        failure raises `StreamInterrupted`. `policy.ttft` bounds each attempt's wait for
        its first token, `policy.idle_timeout` the gaps between chunks, `policy.deadline`
        the whole. Arguments are those of `chat`; a route whose `Cache(stream=True)` has the
        answer replays it. To answer an HTTP request with it, see `gate_mw.responses`.
        """
        request = self._request("stream", messages, options, cache)
        return GateStream(self._call(request, model, max_cost_usd, stream=True, cache=cache))

