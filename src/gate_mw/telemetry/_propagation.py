"""W3C trace context across the gateway: continued from an incoming request when no server
instrumentation did so, and sent upstream on every attempt from the attempt's span."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["continue_trace", "end_continued", "outgoing"]

_INCOMING = {b"traceparent": "traceparent", b"tracestate": "tracestate", b"baggage": "baggage"}


_INVALID = trace.INVALID_SPAN_CONTEXT
_W3C = {TraceContextTextMapPropagator, W3CBaggagePropagator}
# The global propagator last seen, and whether it is OpenTelemetry's default (W3C trace
# context and baggage, exactly), whose output `outgoing` can then write without it.
_seen: list[Any] = [None, False]


def _key(context: Context) -> str:
    """The one key `context` holds; "" if it holds more or none."""
    keys = list(context)
    return keys[0] if len(keys) == 1 else ""


# The keys the API files the current span and the baggage under, learnt through the API
# itself, so that `outgoing` reads them with one dict lookup each rather than four calls
# (should a later API store them otherwise, the fast path is off and the propagator writes).
_SPAN_KEY = _key(trace.set_span_in_context(trace.INVALID_SPAN, Context()))
_BAGGAGE_KEY = _key(baggage.set_baggage("_", "_", Context()))


def _is_default(propagator: TextMapPropagator) -> bool:
    inner = getattr(propagator, "_propagators", None)
    return (
        bool(_SPAN_KEY and _BAGGAGE_KEY)
        and type(propagator) is CompositePropagator and isinstance(inner, (list, tuple))
        and {type(p) for p in inner} == _W3C and len(inner) == 2
    )


def outgoing(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers` plus the current context's `traceparent`, `tracestate` and `baggage` (as
    the configured propagators write them); `headers` itself when there is nothing to add."""
    propagator = propagate.get_global_textmap()
    if propagator is not _seen[0]:  # configured anew: look at it once
        _seen[0], _seen[1] = propagator, _is_default(propagator)
    if _seen[1]:
        # The default propagators write nothing without a span context or baggage, and
        # just `traceparent` (and `tracestate`) with a span context: the common cases,
        # written here without the propagation API's per-call carrier and setter.
        current = otel_context.get_current()
        if not current.get(_BAGGAGE_KEY):
            # A `Span` or None; typed as such without `typing.cast`, a Python call.
            span: Any = current.get(_SPAN_KEY)
            if span is None:
                return headers
            span_context = span.get_span_context()
            if span_context == _INVALID:
                return headers
            out = dict(headers)
            # As `TraceContextTextMapPropagator` writes it, in one formatting operation
            # (`%` formats these ints in half the time an f-string's format specs take).
            out["traceparent"] = "00-%032x-%016x-%02x" % (  # noqa: UP031
                span_context.trace_id, span_context.span_id, span_context.trace_flags
            )
            if span_context.trace_state:
                out["tracestate"] = span_context.trace_state.to_header()
            return out
    carrier: dict[str, str] = {}
    propagator.inject(carrier)
    return {**headers, **carrier} if carrier else headers


def continue_trace(scope: MutableMapping[str, Any]) -> object | None:
    """Make the request's incoming trace context current, unless a span already is (server
    instrumentation such as OpenTelemetry's ASGI middleware made one). Returns a token
    for `end_continued`, or None when nothing was attached."""
    headers = scope.get("headers", ())
    # Most requests carry no trace context: one pass for `traceparent` decides, before
    # anything asks OpenTelemetry for the current span.
    for name, _value in headers:
        if name == b"traceparent":
            break
    else:
        return None
    if trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    for name, value in headers:
        key = _INCOMING.get(name)
        if key is not None:
            carrier[key] = value.decode("latin-1")
    return otel_context.attach(propagate.extract(carrier))


def end_continued(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
