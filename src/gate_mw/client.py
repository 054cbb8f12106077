"""`Gate`: the client a handler gets, bound to its request's context and route policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._chain import Call
from ._streaming import GateStream
from .errors import PolicyError
from .providers import ChatRequest

if TYPE_CHECKING:
    from ._context import RoutingContext
    from .gateway import Gateway
    from .limits import CacheMode
    from .policy import RoutePolicy
    from .results import ChatResult

__all__ = ["Gate", "Message"]

Message = Mapping[str, Any]


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
        self, messages: Sequence[Message], max_tokens: int | None, temperature: float | None,
        top_p: float | None, stop: Sequence[str] | None, params: dict[str, Any],
    ) -> ChatRequest:
        if not messages:
            raise ValueError("messages must not be empty")
        cap = self.policy.max_tokens
        if max_tokens is None or (cap is not None and max_tokens > cap):
            max_tokens = cap
        return ChatRequest(
            messages=messages,
            max_tokens=max_tokens,
            temperature=self.policy.temperature if temperature is None else temperature,
            top_p=top_p,
            stop=stop,
            extra=params,
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
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        cache: CacheMode = "use",
        **params: Any,
    ) -> ChatResult:
        """Answer `messages` with the first model that succeeds, in the order the route's
        strategy chose.

        `model` replaces the policy's chain (and strategy) for this call; `max_cost_usd`
        the policy's cost limit. `max_tokens` is capped by the policy's. `cache` is "use",
        "bypass" (neither read nor write the route's cache) or "refresh" (call upstream and
        store anew). Other keyword arguments are passed to the provider as they are. Raises
        `AllAttemptsFailed`, `DeadlineExceeded`, `RequestRejected`, `NoCandidates`,
        `BudgetExceeded` or `RateLimited`.
        """
        _check_cache_mode(cache)
        request = self._request(messages, max_tokens, temperature, top_p, stop, params)
        gateway = self.gateway
        await gateway.start()
        return await self._call(request, model, max_cost_usd, stream=False, cache=cache).run()

    def _call(
        self, request: ChatRequest, model: str | Sequence[str] | None, max_cost_usd: float | None,
        *, stream: bool, cache: CacheMode = "use",
    ) -> Call:
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
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        max_cost_usd: float | None = None,
        cache: CacheMode = "use",
        **params: Any,
    ) -> GateStream:
        """Stream the answer to `messages`: iterate the result for text deltas.

        Nothing is sent until the stream is opened (`async with`, `open()` or the first
        iteration). Models fall back until one sends its first token; after that a
        failure raises `StreamInterrupted`. `policy.ttft` bounds each attempt's wait for
        its first token, `policy.idle_timeout` the gaps between chunks, `policy.deadline`
        the whole. Arguments are those of `chat`; a route whose `Cache(stream=True)` has the
        answer replays it. To answer an HTTP request with it, see `gate_mw.responses`.
        """
        _check_cache_mode(cache)
        request = self._request(messages, max_tokens, temperature, top_p, stop, params)
        return GateStream(self._call(request, model, max_cost_usd, stream=True, cache=cache))


def _check_cache_mode(cache: object) -> None:
    if cache not in ("use", "bypass", "refresh"):
        raise ValueError(f"cache must be 'use', 'bypass' or 'refresh', got {cache!r}")
