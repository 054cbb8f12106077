"""`Gate`: the client a handler gets, bound to its request's context and route policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._chain import Call
from .errors import PolicyError
from .providers import ChatRequest

if TYPE_CHECKING:
    from ._context import RoutingContext
    from .gateway import Gateway
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
        **params: Any,
    ) -> ChatResult:
        """Answer `messages` with the first model of the route's chain that succeeds.

        `model` replaces the policy's chain for this call. `max_tokens` is capped by the
        policy's. Other keyword arguments are passed to the provider as they are.
        Raises `AllAttemptsFailed`, `DeadlineExceeded` or `RequestRejected`.
        """
        request = self._request(messages, max_tokens, temperature, top_p, stop, params)
        gateway = self.gateway
        await gateway.start()
        plan = gateway.registry.chain(self._chain(model))
        return await Call(gateway, self.context, self.policy, self.route, request, plan).run()
