"""One gateway call: its routing decision, the guards before it, single flight, the walk
along its plan (`_attempts`) and the settling after it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._attempts import chat_attempt, walk
from .errors import LimitError
from .results import Attempt, ChatResult
from .routing._health import breaker_keys
from .routing._router import Decision
from .state import Writes

if TYPE_CHECKING:
    from ._context import RoutingContext
    from ._registry import Deployment
    from .chat._model import ToolCall
    from .gateway import Gateway
    from .limits import CacheMode, Limit, Ticket
    from .policy import RoutePolicy
    from .providers import ChatRequest
    from .routing._health import Admission

__all__ = ["Call"]


class Call:
    """One `Gate.chat`: the chain of deployments and everything learnt while walking it."""

    __slots__ = (
        "_routing", "admission", "cache_mode", "context", "deadline", "decision", "gateway", "plan",
        "policy", "request", "request_id", "route", "started", "ticket", "writes",
    )

    def __init__(
        self, gateway: Gateway, context: RoutingContext, policy: RoutePolicy, route: str,
        request: ChatRequest, plan: Sequence[Deployment] | None = None, *,
        models: tuple[str, ...] | None = None, max_cost_usd: float | None = None,
        stream: bool = False, cache: CacheMode = "use",
    ) -> None:
        """Without `plan`, the route's strategy makes one (`decide`) before the first
        attempt; `models` then replaces the policy's chain and `max_cost_usd` its limit."""
        self.gateway = gateway
        self.context = context
        self.policy = policy
        self.route = route
        self.request = request
        # Read once: the context's property would look it up at each use (-2k instructions).
        self.request_id = context.request_id
        self.plan: Sequence[Deployment] = () if plan is None else plan
        # How the plan was made (strategy, exclusions, experiment arm), for spans and errors.
        self.decision = None if plan is None else Decision(plan, policy, "explicit", stream=stream)
        self._routing = (models, max_cost_usd, stream)
        self.deadline = context.deadline_for(policy)
        self.started = 0.0
        self.cache_mode: CacheMode = cache
        self.ticket: Ticket | None = None
        #: What the call learnt for shared state, sent in one round trip when it ends.
        self.writes = Writes()
        #: The breaker's admission of the attempt in progress; a stream reports its outcome
        #: against it when it ends.
        self.admission: Admission | None = None

    def route_attributes(self) -> dict[str, Any]:
        """The route span's attributes: the route, the request and the decision."""
        attributes: dict[str, Any] = {"gate.route": self.route, "gate.request_id": self.request_id}
        if self.decision is not None:
            attributes.update(self.decision.span_attributes())
        if self.gateway.router.store.degraded:
            attributes["gate.state.degraded"] = True
        ticket = self.ticket
        if ticket is not None and ticket.cache_key is not None:
            attributes["gate.cache"] = "hit" if ticket.cache_entry is not None else "miss"
        return attributes

    def metric_attributes(self) -> dict[str, Any] | None:
        """Per-call metric attributes (the experiment arm), if any."""
        decision = self.decision
        # Most calls are in no experiment: no call then.
        return None if decision is None or decision.arm is None else decision.metric_attributes()

    async def prepare(self) -> ChatResult | None:
        """Before the first attempt: the routing decision (plan, strategy, experiment arm),
        made once; then, in one store round trip, reserve budgets and rate limits (raising
        `BudgetExceeded` or `RateLimited`), read the breakers of the plan and look the
        request up in the cache. A cache hit is returned. (One coroutine for both: a call
        awaits a layer less, -1k instructions.)"""
        decision = self.decision
        if decision is None:
            models, max_cost_usd, stream = self._routing
            decision = self.decision = await self.gateway.router.decide(
                self.policy, self.route, self.context, self.request, models=models,
                max_cost_usd=max_cost_usd, stream=stream,
            )
            self.plan = decision.deployments
            if decision.policy is not self.policy:  # an experiment arm's policy
                self.policy = decision.policy
                self.deadline = self.context.deadline_for(decision.policy)
        gateway, context = self.gateway, self.context
        policy = decision.policy
        # The cache key names the plan: only a route with a cache needs it.
        identity = () if policy.cache is None else (
            policy.models, decision.strategy, decision.arm, self._routing[0]
        )
        reads = decision.reads
        if reads is None:  # a plan made for this call: its breakers are found now
            reads = breaker_keys(decision.deployments)
        try:
            ticket = self.ticket = await gateway.guard.before(
                policy, self.route, context.caller, self.request, decision.deployments,
                reads=reads, identity=identity, cache_mode=self.cache_mode,
                stream=decision.stream, request_id=self.request_id,
            )
        except LimitError as refused:
            calls = context.calls_made()
            if not decision.stream:  # a stream records itself when it fails to open
                calls.record((), None)
            calls.headers.append((b"retry-after", str(refused.retry_after).encode()))
            raise
        if ticket.downgraded:
            decision = self.decision = gateway.router.downgrade(decision, self.request)
            self.plan = decision.deployments
        if ticket.taken:
            context.calls_made().headers.extend(gateway.guard.headers(ticket))
        if ticket.cache_key is None:
            return None
        calls = context.calls_made()
        hit = gateway.guard.hit(
            ticket, request_id=self.request_id, latency_s=perf_counter() - self.started, arm=decision.arm
        )
        calls.headers.append((b"x-gate-cache", b"hit" if hit else b"miss"))
        gateway.telemetry.cache_lookup(self.route, hit is not None)
        return hit

    def deployment_limits(self) -> dict[str, list[Limit]] | None:
        """The limits each deployment of the plan has on this route, if any has."""
        decision = self.decision
        assert decision is not None
        usage = decision.strategy == "usage"
        if not usage and not self.policy.limits and not self.gateway.guard.rules:
            return None
        guard = self.gateway.guard
        found = {d.id: guard.deployment_rules(self.policy, d, usage) for d in self.plan}
        return {key: rules for key, rules in found.items() if rules} or None

    async def settle(self, result: ChatResult | None, *, ok: bool | None = None) -> None:
        """Account the finished call: tokens and arm figures for routing, settled budgets
        and limits, the cache; in one round trip. `result` is what was paid for (None:
        nothing); `ok` says whether the call succeeded (default: a result)."""
        latency = perf_counter() - self.started
        ok = result is not None if ok is None else ok
        writes = self.writes
        gateway = self.gateway
        decision = self.decision
        if decision is not None:
            gateway.router.settle(decision, result, writes, ok=ok)
        ticket = self.ticket
        if ticket is not None:
            cache = self.policy.cache
            gateway.guard.settle(ticket, writes, result, ok=ok, ttl=cache.ttl if cache else None)
        # Report counters go with the rest when they share the store (on Redis).
        store = gateway.router.store
        insights = gateway.insights
        pending = insights.count(
            self.route, self.context.caller, decision, result, ok, latency,
            writes if insights.counters.store is store else None,
        )
        if pending is not None:
            await pending
        if writes:  # in a memory store, most calls have nothing left to write
            self.writes = Writes()
            await store.write(writes)

    def release_soon(self) -> None:
        """A cancelled call (the client left) cannot wait on the store: give back what it
        reserved from a task of its own."""
        ticket, writes = self.ticket, self.writes
        if ticket is not None:
            self.gateway.guard.settle(ticket, writes, None, ok=False, ttl=None)
        if writes:
            self.writes = Writes()
            self.gateway.guard.spawn(self.gateway.router.store.write(writes))

    async def run(self) -> ChatResult:
        """Walk the chain until a deployment answers; raise a typed error otherwise."""
        attempts: list[Attempt] = []
        result: ChatResult | None = None
        self.started = perf_counter()
        hit = await self.prepare()
        if hit is not None:
            with self.gateway.telemetry.route_span(self.route, self.route_attributes):
                self.context.calls_made().record((), hit)
            await self.settle(hit)
            return hit
        # Only a cached route collapses misses: the others spare the call (-0.8k instructions).
        flight = None if self.policy.cache is None else self._flight()
        if isinstance(flight, asyncio.Future):
            return await self._follow(flight)
        try:
            with self.gateway.telemetry.route_span(self.route, self.route_attributes) as span:
                # A partial, not a method: one Python frame less per attempt.
                result = await walk(self, attempts, partial(chat_attempt, self))
                if span.is_recording():
                    span.set_attributes(
                        {"gate.deployment": result.deployment, "gate.attempts": len(attempts)}
                    )
        except BaseException as exc:
            if flight is not None:
                self.gateway.guard.land(self.ticket, flight[0], None, exc)  # type: ignore[arg-type]
            if isinstance(exc, Exception):
                await self.settle(None)
            else:
                self.release_soon()
            raise
        finally:
            self.context.calls_made().record(tuple(attempts), result)
        assert result is not None
        await self.settle(result)
        if flight is not None:
            self.gateway.guard.land(self.ticket, flight[0], result, None)  # type: ignore[arg-type]
        return result

    def _flight(self) -> asyncio.Future[ChatResult] | tuple[asyncio.Future[ChatResult]] | None:
        """Single flight: an identical call's future to follow, or (as a 1-tuple) the
        future this call leads; None when the route does not collapse misses."""
        cache, ticket, guard = self.policy.cache, self.ticket, self.gateway.guard
        if cache is None or not cache.single_flight or ticket is None or ticket.cache_key is None:
            return None
        leader = guard.flight(ticket)
        if leader is not None:
            return leader
        led = guard.lead(ticket)
        return None if led is None else (led,)

    async def _follow(self, leader: asyncio.Future[ChatResult]) -> ChatResult:
        """Wait for the identical call in flight; its answer costs this call nothing."""
        try:
            answer = await asyncio.shield(leader)
        except Exception:
            await self.settle(None)
            raise
        result = dataclasses.replace(
            answer, cost_usd=0.0, cached=True, attempts=(), request_id=self.request_id,
            latency_s=perf_counter() - self.started,
        )
        self.context.calls_made().record((), result)
        await self.settle(result)
        return result

    def parse(self, text: str, tool_calls: Sequence[ToolCall]) -> Any:
        """The answer validated against the call's `output=` (None without one, or when
        the model called tools instead); `UpstreamError(invalid_output)` if it fails."""
        output = self.request.output
        if output is None or tool_calls:
            return None
        return output.parse(text)
