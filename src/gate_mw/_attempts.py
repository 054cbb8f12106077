"""Walks a call's plan: one attempt per deployment (with retries, backoff and the deadline)
until one answers, feeding each outcome to the breaker; and what a plain chat attempt does.

Kept flat on purpose: a call in flight awaits `walk` -> the attempt -> the provider ->
the transport, with no wrapper between them, and the breaker's bookkeeping of a success
goes into the call's one write after it rather than a store call of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from ._backoff import retry_delay
from .chat._tokens import estimate_messages
from .errors import (
    AllAttemptsFailed,
    DeadlineExceeded,
    ErrorKind,
    NoCandidates,
    RequestRejected,
    UpstreamError,
)
from .results import Attempt, ChatResult
from .routing._health import UNREAD, Health
from .telemetry._current import attempt_cancelled

if TYPE_CHECKING:
    from ._chain import Call
    from ._registry import Deployment
    from .providers import ProviderReply

__all__ = ["chat_attempt", "chat_result", "record_failure", "timeout_of", "walk"]

_T = TypeVar("_T")
#: One attempt on one deployment: `(deployment, routing span attributes, attempts so far)`;
#: raises `UpstreamError` on failure, appending to the attempts either way.
AttemptFn = Callable[["Deployment", dict[str, Any], list[Attempt]], Awaitable[_T]]

logger = logging.getLogger("gate_mw")

# Kinds after which this deployment is left at once for the next model.
_NEXT_MODEL = frozenset({
    ErrorKind.AUTH, ErrorKind.PAYMENT_REQUIRED, ErrorKind.NOT_FOUND, ErrorKind.CONTEXT_LENGTH,
    ErrorKind.CONTENT_FILTER, ErrorKind.UNSUPPORTED,
})
# Of those, the ones that say nothing about the deployment's configuration.
_NOT_MISCONFIGURED = frozenset({ErrorKind.CONTENT_FILTER, ErrorKind.UNSUPPORTED})


async def walk(call: Call, attempts: list[Attempt], attempt: AttemptFn[_T]) -> _T:
    """Try `attempt` on each deployment of the call's plan, with retries, until one
    succeeds. Shared by plain and streamed calls."""
    decision = call.decision
    assert decision is not None, "prepare() comes first: its decision names the route span"
    policy = call.policy
    gateway = call.gateway
    router = gateway.router
    health = router.health
    stream = decision.stream
    reads = call.ticket.reads if call.ticket is not None else {}
    skipped: dict[str, str] = {}  # deployments not tried, and why (cooling down, limits)
    limited = call.deployment_limits()
    fallback_reason: str | None = None
    too_small: int | None = None  # context windows at most this size cannot hold the prompt
    plan = call.plan
    for index in range(len(plan)):  # no iterator objects: held for as long as the call
        deployment = plan[index]
        position = index + 1
        window = deployment.context_window
        if too_small is not None and window is not None and window <= too_small:
            continue
        breaker_key, failures_key = Health.keys(deployment.id)
        for retry in range(policy.retries + 1):
            if call.deadline is not None and call.deadline <= perf_counter():
                raise _deadline_error(call, attempts)
            if limited and (rules := limited.get(deployment.id)) and call.ticket is not None:
                why = await gateway.guard.take_deployment(call.ticket, deployment, rules)
                if why is not None:
                    skipped[deployment.id] = why
                    break
            known = reads.get(breaker_key, UNREAD)
            admission = health.closed(known)
            if admission is None:  # open, half-open or unread: the breaker decides
                admission = await health.admit(deployment.id, known)
            if admission.reason is not None:
                skipped[deployment.id] = admission.reason
                break
            routing = {
                "gate.route": call.route,
                "gate.deployment": deployment.id,
                "gate.chain.position": position,
                "gate.attempt": len(attempts) + 1,
            }
            if fallback_reason is not None:
                routing["gate.fallback.reason"] = fallback_reason
            call.admission = admission
            # Read once: a route compiled meanwhile must not unbalance the counts.
            counted = router.routes.counted  # `Router.counted`, without the property's call
            if counted is not None:
                await router.begin(deployment.id, counted)
            settled = False
            started = router.timer()
            try:
                result = await attempt(deployment, routing, attempts)
                settled = True
                pending = router.succeeded(
                    deployment.id, admission, stream, call.writes, reads.get(failures_key),
                    router.timer() - started,
                )
                if pending is not None:
                    await pending
                return result
            except UpstreamError as error:
                settled = True
                await health.failed(deployment.id, admission, error.kind)
                failure = error
            finally:
                if not settled and admission.probe:  # left without an outcome: free the slot
                    await health.abandoned(deployment.id, admission)
                if counted is not None and counted[0]:
                    await router.end(deployment.id)
            reads.pop(breaker_key, None)  # what was read before is stale now
            reads.pop(failures_key, None)
            fallback_reason = failure.kind.value
            if failure.kind is ErrorKind.BAD_REQUEST:
                raise RequestRejected(
                    str(failure), attempts, request_id=call.request_id,
                    status=failure.status or 400,
                ) from None
            if failure.kind in _NEXT_MODEL:
                if failure.kind is ErrorKind.CONTEXT_LENGTH:
                    too_small = window or estimate_messages(call.request.messages)
                elif failure.kind not in _NOT_MISCONFIGURED:
                    gateway.report_misconfigured(deployment, failure)
                break
            if call.deadline is not None and perf_counter() >= call.deadline:
                raise _deadline_error(call, attempts) from None
            if retry == policy.retries:
                break
            delay = retry_delay(policy.backoff, retry, failure.retry_after, gateway.rng)
            if delay is None or (call.deadline is not None and delay >= call.deadline - perf_counter()):
                break
            await asyncio.sleep(delay)
    if not attempts:
        reasons = {**decision.reasons, **skipped}
        raise NoCandidates(
            "no deployment could take the call: " + "; ".join(f"{k}: {v}" for k, v in reasons.items())
            if reasons else "no deployment could take the call",
            reasons, request_id=call.request_id,
        )
    raise AllAttemptsFailed(
        f"all {len(attempts)} attempts failed", attempts, request_id=call.request_id,
    )


def _deadline_error(call: Call, attempts: list[Attempt]) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"deadline of {call.policy.deadline}s exceeded after {len(attempts)} attempts",
        attempts, request_id=call.request_id,
    )


def timeout_of(call: Call, deployment: Deployment) -> float | None:
    """The tightest of the policy's and the deployment's timeouts and the time left."""
    limit = call.policy.timeout
    own = deployment.entry.timeout
    if own is not None and (limit is None or own < limit):
        limit = own
    if call.deadline is not None:
        remaining = call.deadline - perf_counter()
        if limit is None or remaining < limit:
            limit = remaining
    return limit


async def chat_attempt(
    call: Call, deployment: Deployment, routing: dict[str, Any], attempts: list[Attempt]
) -> ChatResult:
    """One plain (not streamed) attempt: the provider's answer as the call's result."""
    telemetry = call.gateway.telemetry
    provider = deployment.provider
    assert provider is not None, "the gateway builds providers before any call"
    request = call.request
    timeout = timeout_of(call, deployment)
    span = telemetry.start_attempt(deployment, request, routing)
    started = perf_counter()
    token = telemetry.activate(span)  # its context goes upstream as `traceparent`
    try:
        if timeout is None:  # no limit: spare the timer
            reply = await provider.chat(deployment.upstream_model, request)
        else:
            async with asyncio.timeout(timeout):
                reply = await provider.chat(deployment.upstream_model, request)
    except UpstreamError as error:
        record_failure(call, deployment, span, error, started, attempts)
        raise
    except TimeoutError:
        timed_out = UpstreamError(ErrorKind.TIMEOUT, f"no answer within {timeout:.3g}s")
        record_failure(call, deployment, span, timed_out, started, attempts)
        raise timed_out from None
    except BaseException:
        attempt_cancelled(span)
        raise
    finally:
        telemetry.deactivate(token)
    parsed = None
    if request.output is not None:  # most calls ask for no structured output: no call then
        try:
            parsed = call.parse(reply.text, reply.tool_calls)
        except UpstreamError as error:
            record_failure(call, deployment, span, error, started, attempts)
            raise
    latency = perf_counter() - started
    cost, source = deployment.cost(reply)
    telemetry.attempt_succeeded(
        span, deployment, reply, cost, latency, extra=call.metric_attributes(), cost_source=source
    )
    attempts.append(Attempt(deployment.alias, deployment.id, provider.system, "ok", latency, status=200))
    return chat_result(call, deployment, reply, cost, attempts, source, parsed)


def record_failure(
    call: Call, deployment: Deployment, span: Any, error: UpstreamError, started: float,
    attempts: list[Attempt],
) -> None:
    """End a failed attempt's span, record its metrics and add it to `attempts`."""
    latency = perf_counter() - started
    logger.info("gate_mw: attempt on %s failed: %s", deployment.id, error.detail)
    call.gateway.telemetry.attempt_failed(span, deployment, error, latency, extra=call.metric_attributes())
    attempts.append(Attempt(
        deployment.alias, deployment.id, deployment.system, error.kind.value, latency,
        status=error.status, error=str(error),
    ))


def chat_result(
    call: Call, deployment: Deployment, reply: ProviderReply, cost: float | None,
    attempts: list[Attempt], cost_source: str | None = None, parsed: Any = None,
) -> ChatResult:
    """The call's result from the reply `deployment` gave."""
    return ChatResult(
        text=reply.text,
        model=deployment.alias,
        deployment=deployment.id,
        provider=deployment.system,
        provider_model=reply.model,
        finish_reason=reply.finish_reason,
        usage=reply.usage,
        cost_usd=cost,
        latency_s=perf_counter() - call.started,
        attempts=tuple(attempts),
        request_id=call.request_id,
        response_id=reply.response_id,
        arm=call.context.arm,
        cost_source=cost_source,
        raw=reply.raw,
        tool_calls=reply.tool_calls,
        parsed=parsed,
        choices=reply.choices,
        system_fingerprint=reply.system_fingerprint,
    )
