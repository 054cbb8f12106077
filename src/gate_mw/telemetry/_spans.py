"""OpenTelemetry spans and metrics per the GenAI semantic conventions.

One parent span per `Gate.chat` or `Gate.stream` holds the routing decision; each attempt
is a child span `chat {model}` of kind CLIENT (a streamed one stays open until its stream
ends). With no tracer provider set (no SDK) no span is started at all: the API would hand
back the current span, so the gateway skips the attributes nobody would read.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, metrics, trace
from opentelemetry import context as otel_context
from opentelemetry.metrics import CallbackOptions, Histogram, Observation
from opentelemetry.trace import (
    INVALID_SPAN,
    ProxyTracer,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

from .._version import __version__
from ._content import input_attributes, output_messages
from ._current import CurrentSpan, attach

if TYPE_CHECKING:
    from .._registry import Deployment
    from ..errors import UpstreamError
    from ..providers import ChatRequest, ProviderReply

__all__ = ["Telemetry", "TelemetryConfig"]

_log = logging.getLogger("gate_mw")

# Bucket boundaries from the GenAI metrics conventions.
_TOKEN_BUCKETS = [4.0**n for n in range(14)]  # 1, 4, 16, ... 67108864
_DURATION_BUCKETS = [0.01 * 2**n for n in range(14)]  # 0.01, 0.02, ... 81.92
# Series kept for reuse and for the cost counter; the SDK's default cardinality limit.
_MAX_SERIES = 2000
_OVERFLOW = {"otel.metric.overflow": True}


# Asks whether a global tracer provider is set: the API's proxy hands out proxy tracers
# until one is. `get_tracer_provider()` would look OTEL_PYTHON_TRACER_PROVIDER up in
# os.environ at each call while none is set (-4k instructions a call); that variable is
# read when the Telemetry is made (`trace.get_tracer`).
_GLOBAL = ProxyTracerProvider()
# Without tracing, the route "span": nothing is made current, the call's context flows on.
_NO_SPAN: contextlib.nullcontext[Span] = contextlib.nullcontext(INVALID_SPAN)

_EXCEPTION_EVENT = "gen_ai.client.operation.exception"
_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Where spans, metrics and log events go, and what is recorded.

    The providers default to the global ones (see `gate_mw.telemetry.configure`).
    `capture_content` puts prompts and answers on the spans; `record_estimated_tokens`
    lets token counts the upstream never reported (estimates) into
    `gen_ai.client.token.usage`, marked `gate.usage.estimated=true`.
    """

    tracer_provider: trace.TracerProvider | None = None
    meter_provider: metrics.MeterProvider | None = None
    capture_content: bool = False
    logger_provider: _logs.LoggerProvider | None = None
    record_estimated_tokens: bool = False


def _capture_from_env(env: Mapping[str, str]) -> bool:
    """Content capture asked for the way OpenTelemetry's GenAI instrumentations read it:
    only under `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`."""
    opted = {v.strip() for v in env.get(_OPT_IN, "").split(",")}
    mode = env.get(_CAPTURE_ENV, "").strip().lower()
    return "gen_ai_latest_experimental" in opted and mode in ("true", "span_only", "span_and_event")


class _Series:
    """The metric attributes of one (deployment, response model, arm), built once, and
    the USD spent under them (None until a priced reply), which the cost counter reports."""

    __slots__ = ("attributes", "cost", "estimated_input", "estimated_output", "input", "output")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.input = {**attributes, "gen_ai.token.type": "input"}
        self.output = {**attributes, "gen_ai.token.type": "output"}
        self.estimated_input = {**self.input, "gate.usage.estimated": True}
        self.estimated_output = {**self.output, "gate.usage.estimated": True}
        self.cost: float | None = None


class Telemetry:
    """Creates the gateway's spans and records its metrics."""

    def __init__(self, config: TelemetryConfig, env: Mapping[str, str] = os.environ) -> None:
        self.capture_content = config.capture_content or _capture_from_env(env)
        self.record_estimated = config.record_estimated_tokens
        self.tracer = trace.get_tracer("gate_mw", __version__, tracer_provider=config.tracer_provider)
        self.events = _logs.get_logger("gate_mw", __version__, logger_provider=config.logger_provider)
        self._providers = (config.tracer_provider, config.meter_provider, config.logger_provider)
        self._tracing = config.tracer_provider is not None
        # `Logger.enabled` is recent in the API (a no-op logger says False); without it, emit.
        self._events_enabled: Callable[..., bool] | None = getattr(self.events, "enabled", None)
        meter = metrics.get_meter("gate_mw", __version__, meter_provider=config.meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        def seconds(name: str, description: str) -> Histogram:
            return meter.create_histogram(
                f"gen_ai.client.operation.{name}", unit="s", description=description,
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )

        self.duration = seconds("duration", "GenAI operation duration.")
        self.time_to_first_chunk = seconds(
            "time_to_first_chunk", "Time to receive the first chunk of a streamed response."
        )
        self.time_per_output_chunk = seconds(
            "time_per_output_chunk",
            "Time per output chunk after the first, from the end of the previous chunk.",
        )
        # Cost is summed here and read when metrics are collected: an observable counter
        # reports the same monotonic sum as a counter without an SDK call per reply.
        self._series: dict[tuple[str, str, tuple[Any, ...] | None], _Series] = {}
        self._span_names: dict[str, str] = {}
        self.cache = meter.create_counter(
            "gate.cache", unit="{request}", description="Response cache lookups by result (hit, miss)"
        )
        self._overflow = _Series(_OVERFLOW)
        meter.create_observable_counter(
            "gate.cost", callbacks=[self._observe_cost], unit="{USD}",
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

    def tracing(self) -> bool:
        """Whether spans are made: a tracer provider was given, or the global one is set.
        The API sets the global provider once, so once seen it stays; until then this costs
        one check a call, against the attribute work it spares."""
        if not self._tracing and not isinstance(_GLOBAL.get_tracer("gate_mw"), ProxyTracer):
            self._tracing = True
        return self._tracing

    def route_span(
        self, route: str, attributes: Callable[[], Mapping[str, Any]]
    ) -> CurrentSpan | contextlib.nullcontext[Span]:
        """The parent span of one gateway call (a context manager making it current);
        `attributes` is called only when there is a span to put them on."""
        if not self.tracing():
            return _NO_SPAN
        context = otel_context.get_current()  # given to the SDK, which would look it up thrice
        return CurrentSpan(self.start_route(route, attributes(), context), context)

    def start_route(
        self, route: str, attributes: Mapping[str, Any], context: otel_context.Context | None = None
    ) -> Span:
        """The parent span of a streamed call, which outlives the code that starts it."""
        self.tracing()  # learnt here for the attempts under it
        return self.tracer.start_span(
            f"gate.route {route}", context, SpanKind.INTERNAL, attributes
        )

    def start_attempt(
        self, deployment: Deployment, request: ChatRequest, routing: Mapping[str, Any],
        *, stream: bool = False,
    ) -> Span:
        """A CLIENT span for one attempt; sampling-relevant attributes are set at start.
        Without tracing (as learnt by the route span), `INVALID_SPAN`, which `activate`
        leaves out of the context."""
        if not self._tracing:
            return INVALID_SPAN
        attributes: dict[str, Any] = {**deployment.metric_attributes, **routing}
        if stream:  # conditionally required: set only for streams, one attribute less per call
            attributes["gen_ai.request.stream"] = True
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.top_p is not None:
            attributes["gen_ai.request.top_p"] = request.top_p
        name = self._span_names.get(deployment.id)
        if name is None:  # one per deployment: formatted once
            name = self._span_names[deployment.id] = f"chat {deployment.upstream_model}"
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        if self.capture_content and span.is_recording():
            span.set_attributes(input_attributes(request.messages))
        return span

    def flush(self, timeout_s: float = 5.0) -> None:
        """Push out what the SDK providers hold (spans, metrics, log events), waiting at
        most about `timeout_s` in all: called when the gateway stops."""
        providers = [
            given if given is not None else current()
            for given, current in zip(
                self._providers,
                (trace.get_tracer_provider, metrics.get_meter_provider, _logs.get_logger_provider),
                strict=True,
            )
        ]
        share = max(1, int(timeout_s * 1000 / len(providers)))
        for provider in providers:
            force_flush = getattr(provider, "force_flush", None)
            if force_flush is None:
                continue
            try:
                force_flush(share)
            except Exception:  # an exporter's failure must not break the app's shutdown
                _log.warning("gate_mw: flushing telemetry failed", exc_info=True)

    def next_chunk(self, seconds: float, attributes: Mapping[str, Any]) -> None:
        """A stream's chunk after the first arrived `seconds` after the one before."""
        self.time_per_output_chunk.record(seconds, attributes)

    def chunk_attributes(
        self, deployment: Deployment, extra: Mapping[str, Any] | None
    ) -> Mapping[str, Any]:
        attributes = deployment.metric_attributes
        return {**attributes, **extra} if extra else attributes

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
        if span is not INVALID_SPAN:  # without tracing, nothing to end (-0.5k instructions)
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
        if span is not INVALID_SPAN and span.is_recording():  # spares a call without tracing
            reported: dict[str, Any] = {
                "gen_ai.response.model": reply.model,
                "gen_ai.response.finish_reasons": (reply.finish_reason or "unknown",),
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
            }
            # Each attribute costs the SDK ~10k instructions: zero counts are left out.
            if usage.cached_tokens:
                reported["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
            if usage.reasoning_tokens:
                reported["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            if usage.cache_write_tokens:
                reported["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            if reply.response_id:
                reported["gen_ai.response.id"] = reply.response_id
            if cost is not None:
                reported["gen_ai.usage.cost"] = cost
                reported["gate.cost.source"] = cost_source or "price_table"
            if usage.estimated:
                reported["gate.usage.estimated"] = True
            if self.capture_content:
                reported["gen_ai.output.messages"] = output_messages(
                    reply.text, reply.finish_reason, reply.tool_calls
                )
            span.set_attributes(reported)  # one call: the SDK takes its lock once
        series, priced = self._series_of(deployment, reply.model, extra)
        # The conventions: counts the upstream did not report stay off the token metric
        # unless the user opts in, and are then marked.
        if not usage.estimated:
            self.token_usage.record(usage.input_tokens, series.input)
            self.token_usage.record(usage.output_tokens, series.output)
        elif self.record_estimated:
            self.token_usage.record(usage.input_tokens, series.estimated_input)
            self.token_usage.record(usage.output_tokens, series.estimated_output)
        if cost is not None:
            priced.cost = (priced.cost or 0.0) + cost
        return series.attributes

    def attempt_failed(
        self, span: Span, deployment: Deployment, error: UpstreamError, duration: float,
        *, extra: Mapping[str, Any] | None = None,
    ) -> None:
        error_type = str(error.status) if error.status else error.kind.value
        self._exception_event(span, deployment, error, error_type)
        if span.is_recording():
            span.set_attributes({"gate.error.kind": error.kind.value, "error.type": error_type})
            span.set_status(Status(StatusCode.ERROR, error.detail))
        span.end()
        attributes = {**deployment.metric_attributes, "error.type": error_type}
        if extra:
            attributes.update(extra)
        self.duration.record(duration, attributes)

    def _exception_event(
        self, span: Span, deployment: Deployment, error: UpstreamError, error_type: str
    ) -> None:
        """The conventions' `gen_ai.client.operation.exception` log event, in the context
        of the attempt's span (the message is the redacted one the span carries); nothing
        is put together when no logger provider would take it."""
        if self._events_enabled is not None and not self._events_enabled(
            severity_number=_logs.SeverityNumber.WARN, event_name=_EXCEPTION_EVENT
        ):
            return
        attributes = {
            **deployment.metric_attributes,
            "error.type": error_type,
            "exception.type": type(error).__qualname__,
            "exception.message": str(error),
        }
        self.events.emit(
            event_name=_EXCEPTION_EVENT,
            context=trace.set_span_in_context(span),
            severity_number=_logs.SeverityNumber.WARN,
            severity_text="WARN",
            attributes=attributes,
        )

    @staticmethod
    def activate(span: Span) -> object | None:
        """Make `span` current (its context goes upstream); undo with `deactivate`."""
        return None if span is INVALID_SPAN else attach(span)

    @staticmethod
    def deactivate(token: object | None) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
