"""OpenTelemetry spans and metrics per the GenAI semantic conventions.

One parent span per `Gate.chat` or `Gate.stream` holds the routing decision; each attempt
is a child span `chat {model}` of kind CLIENT (a streamed one stays open until its stream
ends). With no SDK configured every span is non-recording and no attribute work is done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ._version import __version__

if TYPE_CHECKING:
    from ._registry import Deployment
    from .errors import UpstreamError
    from .providers import ChatRequest, ProviderReply

__all__ = ["Telemetry", "TelemetryConfig", "attempt_cancelled", "span_failed"]

# Bucket boundaries from the GenAI metrics conventions.
_TOKEN_BUCKETS = [4.0**n for n in range(14)]  # 1, 4, 16, ... 67108864
_DURATION_BUCKETS = [0.01 * 2**n for n in range(14)]  # 0.01, 0.02, ... 81.92
# Series kept for reuse and for the cost counter; the SDK's default cardinality limit.
_MAX_SERIES = 2000
_OVERFLOW = {"otel.metric.overflow": True}


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Where spans and metrics go, and whether prompt and completion text is recorded.

    The providers default to the global ones set up by the OpenTelemetry SDK.
    """

    tracer_provider: trace.TracerProvider | None = None
    meter_provider: metrics.MeterProvider | None = None
    capture_content: bool = False


class _Series:
    """The metric attributes of one (deployment, response model, arm), built once, and
    the USD spent under them (None until a priced reply), which the cost counter reports."""

    __slots__ = ("attributes", "cost", "input", "output")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.input = {**attributes, "gen_ai.token.type": "input"}
        self.output = {**attributes, "gen_ai.token.type": "output"}
        self.cost: float | None = None


class Telemetry:
    """Creates the gateway's spans and records its metrics."""

    def __init__(self, config: TelemetryConfig) -> None:
        self.capture_content = config.capture_content
        self.tracer = trace.get_tracer("gate_mw", __version__, tracer_provider=config.tracer_provider)
        meter = metrics.get_meter("gate_mw", __version__, meter_provider=config.meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        # Cost is summed here and read when metrics are collected: an observable counter
        # reports the same monotonic sum as a counter without an SDK call per reply.
        self._series: dict[tuple[str, str, tuple[Any, ...] | None], _Series] = {}
        self.cache = meter.create_counter(
            "gate.cache", unit="{request}", description="Response cache lookups by result (hit, miss)"
        )
        self._overflow = _Series(_OVERFLOW)
        meter.create_observable_counter(
            "gate.cost", callbacks=[self._observe_cost], unit="USD",
            description="Cost of GenAI calls made through the gateway.",
        )

    def _observe_cost(self, options: CallbackOptions) -> Iterator[Observation]:
        # Runs on the metric reader's thread: the values are copied in one step first.
        for series in [*self._series.values(), self._overflow]:
            if series.cost is not None:
                yield Observation(series.cost, series.attributes)

    def _series_of(
        self, deployment: Deployment, model: str, extra: Mapping[str, Any] | None
    ) -> tuple[_Series, _Series]:
        """The series of a reply, and the one its cost is added to (the same, unless there
        are more than `_MAX_SERIES`: then the overflow series)."""
        key = (deployment.id, model, tuple(extra.items()) if extra else None)
        series = self._series.get(key)
        if series is not None:
            return series, series
        series = _Series({**deployment.metric_attributes, "gen_ai.response.model": model, **(extra or {})})
        if len(self._series) >= _MAX_SERIES:
            return series, self._overflow
        self._series[key] = series
        return series, series

    def cache_lookup(self, route: str, hit: bool) -> None:
        """Count a response cache lookup (`gate.cache`, by result)."""
        self.cache.add(1, {"gate.route": route, "gate.cache.result": "hit" if hit else "miss"})

    def route_span(self, route: str, attributes: Mapping[str, Any]) -> _CurrentSpan:
        """The parent span of one gateway call (a context manager making it current)."""
        return _CurrentSpan(self.start_route(route, attributes))

    def start_route(self, route: str, attributes: Mapping[str, Any]) -> Span:
        """The parent span of a streamed call, which outlives the code that starts it."""
        return self.tracer.start_span(
            f"gate.route {route}", kind=SpanKind.INTERNAL, attributes=attributes
        )

    def start_attempt(
        self, deployment: Deployment, request: ChatRequest, routing: Mapping[str, Any],
        *, stream: bool = False,
    ) -> Span:
        """A CLIENT span for one attempt; sampling-relevant attributes are set at start."""
        attributes: dict[str, Any] = {**deployment.metric_attributes, **routing}
        if stream:  # conditionally required: set only for streams, one attribute less per call
            attributes["gen_ai.request.stream"] = True
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.top_p is not None:
            attributes["gen_ai.request.top_p"] = request.top_p
        span = self.tracer.start_span(
            f"chat {deployment.upstream_model}", kind=SpanKind.CLIENT, attributes=attributes
        )
        if self.capture_content and span.is_recording():
            span.set_attribute("gen_ai.input.messages", _messages_json(request.messages))
        return span

    def first_chunk(
        self, span: Span, deployment: Deployment, seconds: float, *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """A stream's first text arrived `seconds` after its attempt started."""
        if span.is_recording():
            span.set_attribute("gen_ai.response.time_to_first_chunk", seconds)
        attributes = deployment.metric_attributes
        self.time_to_first_chunk.record(seconds, {**attributes, **extra} if extra else attributes)

    def attempt_succeeded(
        self, span: Span, deployment: Deployment, reply: ProviderReply, cost: float | None,
        duration: float, *, extra: Mapping[str, Any] | None = None, cost_source: str | None = None,
    ) -> None:
        attributes = self.record_reply(span, deployment, reply, cost, extra=extra, cost_source=cost_source)
        span.end()
        self.duration.record(duration, attributes)

    def record_reply(
        self, span: Span, deployment: Deployment, reply: ProviderReply, cost: float | None,
        *, extra: Mapping[str, Any] | None = None, cost_source: str | None = None,
    ) -> dict[str, Any]:
        """Put what a reply (or the part of a stream received) used and cost on `span` and
        into the token and cost metrics; returns the metric attributes. `extra` adds
        per-call metric attributes (the experiment arm); `cost_source` says where the cost
        came from ("upstream", "price_table" or "override")."""
        usage = reply.usage
        if span.is_recording():
            reported: dict[str, Any] = {
                "gen_ai.response.model": reply.model,
                "gen_ai.response.finish_reasons": (reply.finish_reason or "unknown",),
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
            }
            # Each attribute costs the SDK ~10k instructions: zero counts are left out.
            if usage.cached_tokens:
                reported["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
            if usage.cache_write_tokens:
                reported["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            if usage.reasoning_tokens:
                reported["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            if reply.response_id:
                reported["gen_ai.response.id"] = reply.response_id
            if cost is not None:
                reported["gen_ai.usage.cost"] = cost
                reported["gate.cost.source"] = cost_source or "price_table"
            if usage.estimated:
                reported["gate.usage.estimated"] = True
            if self.capture_content:
                reported["gen_ai.output.messages"] = _messages_json(
                    [{"role": "assistant", "content": reply.text}]
                )
            span.set_attributes(reported)  # one call: the SDK takes its lock once
        series, priced = self._series_of(deployment, reply.model, extra)
        self.token_usage.record(usage.input_tokens, series.input)
        self.token_usage.record(usage.output_tokens, series.output)
        if cost is not None:
            priced.cost = (priced.cost or 0.0) + cost
        return series.attributes

    def attempt_failed(
        self, span: Span, deployment: Deployment, error: UpstreamError, duration: float,
        *, extra: Mapping[str, Any] | None = None,
    ) -> None:
        error_type = str(error.status) if error.status else error.kind.value
        if span.is_recording():
            span.set_attribute("gate.error.kind", error.kind.value)
        span_failed(span, error_type, str(error))
        attributes = {**deployment.metric_attributes, "error.type": error_type}
        if extra:
            attributes.update(extra)
        self.duration.record(duration, attributes)


class _CurrentSpan:
    """`span`, current inside the block and ended after it, with an escaping exception
    recorded on it as `start_as_current_span` does. One small object where that makes three
    generator-based context managers, which a call holds for as long as its upstream takes."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._token)
        span = self.span
        # Like the SDK, only Exception: GeneratorExit and cancellation are not errors.
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()


def _messages_json(messages: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([dict(message) for message in messages], default=str)


_CANCELLED = {"cancelled": "cancelled by the caller", "client_disconnect": "the client disconnected"}


def attempt_cancelled(span: Span, reason: str = "cancelled") -> None:
    """End a span whose caller went away: `reason` is "cancelled" (outer timeout, task
    cancelled, stream closed early) or "client_disconnect"."""
    span_failed(span, reason, _CANCELLED.get(reason, reason))


def span_failed(span: Span, error_type: str, message: str) -> None:
    """End `span` with an error status and `error.type`."""
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message))
    span.end()
