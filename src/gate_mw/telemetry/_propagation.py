"""W3C trace context across the gateway: continued from an incoming request when no server
instrumentation did so, and sent upstream on every attempt from the attempt's span."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

__all__ = ["continue_trace", "end_continued", "outgoing"]

_INCOMING = {b"traceparent": "traceparent", b"tracestate": "tracestate", b"baggage": "baggage"}


def outgoing(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers` plus the current context's `traceparent`, `tracestate` and `baggage` (as
    the configured propagators write them); `headers` itself when there is nothing to add."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {**headers, **carrier} if carrier else headers


def continue_trace(scope: MutableMapping[str, Any]) -> object | None:
    """Make the request's incoming trace context current, unless a span already is (server
    instrumentation such as OpenTelemetry's ASGI middleware made one). Returns a token
    for `end_continued`, or None when nothing was attached."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] | None = None
    for name, value in scope.get("headers", ()):
        key = _INCOMING.get(name)
        if key is not None:
            if carrier is None:
                carrier = {}
            carrier[key] = value.decode("latin-1")
    if carrier is None or "traceparent" not in carrier:
        return None
    return otel_context.attach(propagate.extract(carrier))


def end_continued(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
