"""How a committed stream ends: completed, interrupted or abandoned, its usage, cost,
spans and routing outcome are settled exactly once, whichever way it ends.

`StreamEnds` is the part of `GateStream` that runs after the commit point: it holds the
state that settling reads, and `GateStream` sets it while opening and reading."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._attempts import chat_result
from .errors import StreamInterrupted
from .providers._base import ProviderReply, StreamEnd, estimated_usage
from .results import Attempt
from .telemetry._current import attempt_cancelled, span_failed

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._chain import Call
    from ._registry import Deployment
    from ._stream_timer import StreamTimer
    from .errors import UpstreamError
    from .providers._base import StreamEvent
    from .results import ChatResult
    from .routing._health import Admission

__all__ = ["NO_END", "DONE", "StreamEnds"]

#: The state of a stream that has ended (or never opened).
DONE = 3
#: The end of a stream that never reached its end event.
NO_END = StreamEnd(None, None, None, None)


class StreamEnds:
    """Settling a committed stream (see the module docstring)."""

    __slots__ = (
        "_admission", "_attempts", "_call", "_cost_source", "_deployment", "_disconnected", "_error",
        "_events", "_parts", "_route_span", "_span", "_spent", "_started", "_state", "_timer", "_ttfc",
        "result",
    )

    _call: Call
    _state: int
    _attempts: list[Attempt]
    _parts: list[str]
    _events: AsyncGenerator[StreamEvent, None] | None
    _deployment: Deployment | None
    _span: Span | None
    _route_span: Span | None
    _started: float
    _admission: Admission | None
    _ttfc: float
    _error: UpstreamError | None
    _timer: StreamTimer | None
    _spent: ChatResult | None
    _cost_source: str | None
    _disconnected: bool
    result: ChatResult | None

    def _extra(self) -> dict[str, Any] | None:
        """Per-call metric attributes (an experiment arm's)."""
        decision = self._call.decision
        return None if decision is None else decision.metric_attributes()

    def _cancel_reason(self) -> str:
        return "client_disconnect" if self._disconnected else "cancelled"

    def _close(self) -> tuple[Deployment, Span, Span]:
        """Leave the open state, exactly once; the caller then ends the spans."""
        self._state = DONE
        if self._timer is not None:
            self._timer.stop()
        deployment, span, route_span = self._deployment, self._span, self._route_span
        assert deployment is not None
        assert span is not None
        assert route_span is not None
        return deployment, span, route_span

    def _settle(
        self, deployment: Deployment, end: StreamEnd, outcome: str, error: UpstreamError | None = None
    ) -> tuple[ProviderReply, float | None, float]:
        """The reply as received (usage estimated if the provider sent none), its cost and
        latency; updates the attempt record and the request's cost accounting."""
        text = "".join(self._parts)
        usage = end.usage or estimated_usage(self._call.request, text)
        reply = ProviderReply(
            text, end.finish_reason, end.model or deployment.upstream_model, end.response_id, usage,
            end.cost, tool_calls=end.tool_calls,
        )
        cost, self._cost_source = deployment.cost(reply)
        latency = perf_counter() - self._started
        self._attempts[-1] = Attempt(
            deployment.alias, deployment.id, deployment.system, outcome, latency,
            status=error.status if error else 200, error=None if error is None else str(error),
        )
        self._call.context.calls_made().add_cost(cost)
        return reply, cost, latency

    def _complete(self, end: StreamEnd) -> None:
        parsed = self._call.parse("".join(self._parts), end.tool_calls)  # before closing: may raise
        deployment, span, route_span = self._close()
        reply, cost, latency = self._settle(deployment, end, "ok")
        self._call.gateway.telemetry.attempt_succeeded(
            span, deployment, reply, cost, latency, extra=self._extra(), cost_source=self._cost_source
        )
        self.result = chat_result(
            self._call, deployment, reply, cost, self._attempts, self._cost_source, parsed
        )
        route_span.end()

    def _interrupt(self, error: UpstreamError, end: StreamEnd = NO_END) -> StreamInterrupted:
        self._error = error
        deployment, span, route_span = self._close()
        reply, cost, latency = self._settle(deployment, end, error.kind.value, error)
        telemetry = self._call.gateway.telemetry
        extra = self._extra()
        telemetry.record_reply(span, deployment, reply, cost, extra=extra, cost_source=self._cost_source)
        telemetry.attempt_failed(span, deployment, error, latency, extra=extra)
        span_failed(route_span, error.kind.value, str(error))
        partial = self._spent = chat_result(
            self._call, deployment, reply, cost, self._attempts, self._cost_source
        )
        return StreamInterrupted(
            f"the stream from {deployment.alias} failed after {len(self._parts)} chunks: {error}",
            self._attempts, request_id=self._call.request_id, kind=error.kind, partial=partial,
        )

    def _abort(self) -> None:
        reason = self._cancel_reason()
        deployment, span, route_span = self._close()
        reply, cost, _ = self._settle(deployment, NO_END, reason)
        self._spent = chat_result(
            self._call, deployment, reply, cost, self._attempts, self._cost_source
        )
        self._call.gateway.telemetry.record_reply(
            span, deployment, reply, cost, extra=self._extra(), cost_source=self._cost_source
        )
        attempt_cancelled(span, reason)
        attempt_cancelled(route_span, reason)

    async def _finish(self) -> None:
        """Close the provider's stream (and so its HTTP response) and account the call for
        routing (a failed stream as failed), once."""
        events, self._events = self._events, None
        if events is not None:
            try:
                await events.aclose()
            finally:
                try:
                    await self._report()
                finally:
                    await self._call.settle(self.result or self._spent, ok=self.result is not None)

    async def _report(self) -> None:
        """Tell the breaker and latency window how the committed stream ended: a cut after
        the first token is a failure; a consumer leaving early says nothing of the model."""
        deployment, admission = self._deployment, self._admission
        if deployment is None or admission is None:
            return
        await self._call.gateway.router.stream_ended(
            deployment.id, admission, self._ttfc, self._error,
            abandoned=self.result is None and self._error is None,
        )
