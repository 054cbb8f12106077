"""What a strategy knows about the call it is routing."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._context import RoutingContext
    from .._registry import Deployment
    from ..policy import RoutePolicy
    from ._state import LatencyStats

__all__ = ["DEFAULT_OUTPUT_TOKENS", "RequestInfo"]

#: Output tokens assumed for cost estimates when neither the call, the policy nor the
#: model entry bounds them.
DEFAULT_OUTPUT_TOKENS = 4096
_UNSET: Any = object()


class RequestInfo:
    """One call as the router sees it, before any attempt.

    `prompt_tokens` is the estimate of the messages; `max_tokens` the output bound of the
    call (the call's, capped by the policy's), if any. Strategies may note what they
    decided in `tier` and `task`; the route span shows them.
    """

    __slots__ = (
        "_costs", "context", "latencies", "max_cost_usd", "max_tokens", "messages", "policy",
        "prompt_tokens", "rng", "route", "stream", "task", "tier",
    )

    def __init__(
        self, *, messages: Sequence[Mapping[str, Any]], prompt_tokens: int, max_tokens: int | None,
        policy: RoutePolicy, route: str, rng: random.Random, context: RoutingContext | None = None,
        max_cost_usd: float | None = None, stream: bool = False,
    ) -> None:
        self.messages = messages
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.policy = policy
        self.route = route
        self.rng = rng
        self.context = context
        self.max_cost_usd = max_cost_usd
        self.stream = stream
        self.tier: str | None = None
        self.task: str | None = None
        self._costs: dict[str, float | None] = {}
        #: Latency figures read during this decision (see `RoutingState.latency`).
        self.latencies: dict[str, LatencyStats | None] = {}

    @property
    def caller(self) -> str | None:
        """The caller key of the request (user or tenant), if known."""
        return self.context.caller if self.context is not None else None

    def header(self, name: bytes) -> str | None:
        """A header of the incoming request (lower-case name), if there is one."""
        return self.context.header(name) if self.context is not None else None

    def output_tokens(self, deployment: Deployment) -> int:
        """The output bound used for cost estimates on `deployment`."""
        if self.max_tokens is not None:
            return self.max_tokens
        return deployment.entry.max_output_tokens or DEFAULT_OUTPUT_TOKENS

    def cost(self, deployment: Deployment) -> float | None:
        """The most this call may cost on `deployment` (None when its price is unknown)."""
        costs = self._costs
        cost: float | None = costs.get(deployment.id, _UNSET)
        if cost is _UNSET:
            price = deployment.price
            cost = costs[deployment.id] = (
                None if price is None
                else price.estimate(self.prompt_tokens, self.output_tokens(deployment))
            )
        return cost
