"""Runs one gateway call along its fallback chain: attempts, retries, backoff, deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from ._backoff import retry_delay
from ._tokens import estimate_messages
from .errors import (
    AllAttemptsFailed,
    DeadlineExceeded,
    ErrorKind,
    RequestRejected,
    UpstreamError,
)
from .results import Attempt, ChatResult
from .telemetry import attempt_cancelled

if TYPE_CHECKING:
    from ._context import RoutingContext
    from ._registry import Deployment
    from .gateway import Gateway
    from .policy import RoutePolicy
    from .providers import ChatRequest, ProviderReply

__all__ = ["Call"]

_T = TypeVar("_T")
_AttemptFn = Callable[["Deployment", dict[str, Any], list[Attempt]], Awaitable[_T]]

logger = logging.getLogger("gate_mw")

# Kinds after which this deployment is left at once for the next model.
_NEXT_MODEL = frozenset({ErrorKind.AUTH, ErrorKind.NOT_FOUND, ErrorKind.CONTEXT_LENGTH})


class Call:
    """One `Gate.chat`: the chain of deployments and everything learnt while walking it."""

    __slots__ = (
        "context", "deadline", "gateway", "plan", "policy", "request", "route", "started",
    )

    def __init__(
        self, gateway: Gateway, context: RoutingContext, policy: RoutePolicy, route: str,
        request: ChatRequest, plan: Sequence[Deployment],
    ) -> None:
        self.gateway = gateway
        self.context = context
        self.policy = policy
        self.route = route
        self.request = request
        self.plan = plan
        self.deadline = context.deadline_for(policy)
        self.started = 0.0

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - perf_counter()

    def _timeout(self, deployment: Deployment) -> float | None:
        limits = [
            limit for limit in (self.policy.timeout, deployment.entry.timeout, self._remaining())
            if limit is not None
        ]
        return min(limits) if limits else None

    def _route_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gate.route": self.route,
            "gate.strategy": self.policy.strategy,
            "gate.request_id": self.context.request_id,
            "gate.candidates": tuple(deployment.id for deployment in self.plan),
        }
        if self.context.arm is not None:
            attributes["gate.experiment.arm"] = self.context.arm
        return attributes

    async def run(self) -> ChatResult:
        """Walk the chain until a deployment answers; raise a typed error otherwise."""
        attempts: list[Attempt] = []
        result: ChatResult | None = None
        self.started = perf_counter()
        try:
            with self.gateway.telemetry.route_span(self.route, self._route_attributes()) as span:
                result = await self._walk(attempts, self._attempt)
                if span.is_recording():
                    span.set_attribute("gate.deployment", result.deployment)
                    span.set_attribute("gate.attempts", len(attempts))
                return result
        finally:
            self.context.record(tuple(attempts), result)

    async def _walk(self, attempts: list[Attempt], attempt: _AttemptFn[_T]) -> _T:
        """Try `attempt` on each deployment of the plan, with retries, until one succeeds.

        Shared by plain and streamed calls: `attempt` raises `UpstreamError` on failure,
        appending to `attempts` either way.
        """
        policy = self.policy
        fallback_reason: str | None = None
        too_small: int | None = None  # context windows at most this size cannot hold the prompt
        for position, deployment in enumerate(self.plan, start=1):
            window = deployment.context_window
            if too_small is not None and window is not None and window <= too_small:
                continue
            for retry in range(policy.retries + 1):
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    raise self._deadline_error(attempts)
                routing = {
                    "gate.route": self.route,
                    "gate.deployment": deployment.id,
                    "gate.chain.position": position,
                    "gate.attempt": len(attempts) + 1,
                }
                if fallback_reason is not None:
                    routing["gate.fallback.reason"] = fallback_reason
                try:
                    return await attempt(deployment, routing, attempts)
                except UpstreamError as error:
                    fallback_reason = error.kind.value
                    if error.kind is ErrorKind.BAD_REQUEST:
                        raise RequestRejected(
                            str(error), attempts, request_id=self.context.request_id,
                            status=error.status or 400,
                        ) from None
                    if error.kind in _NEXT_MODEL:
                        if error.kind is ErrorKind.CONTEXT_LENGTH:
                            too_small = window or estimate_messages(self.request.messages)
                        else:
                            self.gateway.report_misconfigured(deployment, error)
                        break
                    if self.deadline is not None and perf_counter() >= self.deadline:
                        raise self._deadline_error(attempts) from None
                    if retry == policy.retries:
                        break
                    delay = retry_delay(policy.backoff, retry, error.retry_after, self.gateway.rng)
                    remaining = self._remaining()
                    if delay is None or (remaining is not None and delay >= remaining):
                        break
                    await asyncio.sleep(delay)
        raise AllAttemptsFailed(
            f"all {len(attempts)} attempts failed" if attempts else "no deployment could take the call",
            attempts, request_id=self.context.request_id,
        )

    def _deadline_error(self, attempts: list[Attempt]) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"deadline of {self.policy.deadline}s exceeded after {len(attempts)} attempts",
            attempts, request_id=self.context.request_id,
        )

    async def _attempt(
        self, deployment: Deployment, routing: dict[str, Any], attempts: list[Attempt]
    ) -> ChatResult:
        telemetry = self.gateway.telemetry
        provider = deployment.provider
        assert provider is not None, "the gateway builds providers before any call"
        timeout = self._timeout(deployment)
        span = telemetry.start_attempt(deployment, self.request, routing)
        started = perf_counter()
        try:
            async with asyncio.timeout(timeout):
                reply = await provider.chat(deployment.upstream_model, self.request)
        except UpstreamError as error:
            self._failed(deployment, span, error, started, attempts)
            raise
        except TimeoutError:
            timed_out = UpstreamError(ErrorKind.TIMEOUT, f"no answer within {timeout:.3g}s")
            self._failed(deployment, span, timed_out, started, attempts)
            raise timed_out from None
        except BaseException:
            attempt_cancelled(span)
            raise
        latency = perf_counter() - started
        cost = deployment.price.cost(reply.usage) if deployment.price else None
        telemetry.attempt_succeeded(span, deployment, reply, cost, latency)
        attempts.append(
            Attempt(deployment.alias, deployment.id, provider.system, "ok", latency, status=200)
        )
        return self._result(deployment, reply, cost, attempts)

    def _failed(
        self, deployment: Deployment, span: Any, error: UpstreamError, started: float,
        attempts: list[Attempt],
    ) -> None:
        latency = perf_counter() - started
        self.gateway.telemetry.attempt_failed(span, deployment, error, latency)
        attempts.append(Attempt(
            deployment.alias, deployment.id, deployment.system, error.kind.value, latency,
            status=error.status, error=str(error),
        ))

    def _result(
        self, deployment: Deployment, reply: ProviderReply, cost: float | None,
        attempts: list[Attempt],
    ) -> ChatResult:
        return ChatResult(
            text=reply.text,
            model=deployment.alias,
            deployment=deployment.id,
            provider=deployment.system,
            provider_model=reply.model,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            cost_usd=cost,
            latency_s=perf_counter() - self.started,
            attempts=tuple(attempts),
            request_id=self.context.request_id,
            response_id=reply.response_id,
            arm=self.context.arm,
        )
