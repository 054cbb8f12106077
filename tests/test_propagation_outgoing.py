"""`outgoing` writes exactly what the configured propagators would, on its fast path too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from gate_mw.telemetry._propagation import _is_default, outgoing

HEADERS = {"authorization": "Bearer k", "content-type": "application/json"}


def expected() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {**HEADERS, **carrier}


@pytest.fixture
def attached() -> Iterator[list[object]]:
    tokens: list[object] = []
    yield tokens
    for token in reversed(tokens):
        otel_context.detach(token)  # type: ignore[arg-type]


def span_context(flags: int, state: TraceState | None = None) -> SpanContext:
    return SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(flags), state)


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(None, id="no span"),
        pytest.param(span_context(1), id="sampled"),
        pytest.param(span_context(0), id="not sampled"),
        pytest.param(span_context(1, TraceState([("vendor", "x1"), ("other", "y")])), id="tracestate"),
    ],
)
@pytest.mark.parametrize("with_baggage", [False, True])
def test_default_propagators(
    attached: list[object], context: SpanContext | None, with_baggage: bool
) -> None:
    ctx = otel_context.get_current()
    if context is not None:
        ctx = trace.set_span_in_context(NonRecordingSpan(context), ctx)
    if with_baggage:
        ctx = baggage.set_baggage("tenant", "a b", ctx)
    attached.append(otel_context.attach(ctx))
    found = outgoing(HEADERS)
    assert found == expected()
    if context is None and not with_baggage:
        assert found is HEADERS  # nothing to add: no copy
    else:
        assert found["traceparent" if context is not None else "baggage"]


class _Always(TextMapPropagator):
    """A propagator that writes a header even without a span context."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return context or otel_context.get_current()

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        setter.set(carrier, "x-always", "1")

    @property
    def fields(self) -> set[str]:
        return {"x-always"}


def test_configured_propagators_are_used() -> None:
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([_Always(), *before._propagators]))  # type: ignore[attr-defined]
    try:
        assert outgoing(HEADERS) == {**HEADERS, "x-always": "1"}
    finally:
        propagate.set_global_textmap(before)
    assert outgoing(HEADERS) is HEADERS


def test_the_default_propagators_are_written_without_them() -> None:
    """The fast path is on for OpenTelemetry's default propagators (it found the keys the API
    keeps the span and the baggage under), and off for any other."""
    assert _is_default(propagate.get_global_textmap())
    assert not _is_default(CompositePropagator([_Always()]))
