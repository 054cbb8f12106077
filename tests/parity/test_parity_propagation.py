"""Trace context in every framework: an incoming `traceparent` is continued (by the
middleware, or by OpenTelemetry's ASGI instrumentation when present), and each attempt
sends its own span's context upstream."""

from __future__ import annotations

import httpx
import pytest
from _parity_apps import PRIMARY, Framework, Telemetry, build, serve
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan

from gate_mw import Gateway
from gate_mw.testing import FakeUpstream

pytestmark = pytest.mark.anyio

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
INCOMING = {
    "traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01",
    "tracestate": "vendor=opaque",
}


def _ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def _upstream_context(up: FakeUpstream) -> list[tuple[str, str, str]]:
    """(trace id, parent span id, tracestate) sent with each upstream request."""
    found = []
    for request in up.requests:
        _, trace_id, span_id, _ = request.headers["traceparent"].split("-")
        found.append((trace_id, span_id, request.headers.get("tracestate", "")))
    return found


async def test_the_middleware_continues_an_incoming_trace(
    client: httpx.AsyncClient, telemetry: Telemetry, fake_upstream: FakeUpstream
) -> None:
    response = await client.post("/chat", json={}, headers=INCOMING)

    assert response.status_code == 200
    [route] = telemetry.spans("gate.route")
    [attempt] = telemetry.spans("chat ")
    assert route.context is not None
    assert attempt.context is not None
    assert route.context.trace_id == TRACE_ID
    assert route.parent is not None
    assert route.parent.span_id == PARENT_ID
    assert route.parent.is_remote
    # Upstream sees the same trace, parented by the attempt span, with the tracestate kept.
    assert _upstream_context(fake_upstream) == [
        (f"{TRACE_ID:032x}", f"{attempt.context.span_id:016x}", "vendor=opaque")
    ]


async def test_without_an_incoming_trace_each_call_starts_its_own(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    assert (await client.post("/chat", json={})).status_code == 200
    assert (await client.post("/chat", json={})).status_code == 200

    first, second = telemetry.spans("gate.route")
    assert first.parent is None
    assert second.parent is None
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id != second.context.trace_id


async def test_under_the_asgi_instrumentation_its_server_span_is_the_parent(
    framework: Framework, gateway: Gateway, telemetry: Telemetry, fake_upstream: FakeUpstream
) -> None:
    app = OpenTelemetryMiddleware(
        build(framework, gateway), tracer_provider=telemetry.config.tracer_provider
    )
    async with serve(app) as client:
        response = await client.post("/chat", json={}, headers=INCOMING)

    assert response.status_code == 200
    spans = telemetry.spans()
    [route] = telemetry.spans("gate.route")
    [attempt] = telemetry.spans(f"chat {PRIMARY}")
    [server] = [s for s in spans if s.name.startswith("POST") and s.parent is not None and s.parent.is_remote]
    assert route.context is not None
    assert server.context is not None
    assert attempt.context is not None
    # One trace: incoming parent -> the instrumentation's server span -> route -> attempt.
    assert {s.context.trace_id for s in spans if s.context} == {TRACE_ID}
    assert server.parent is not None
    assert server.parent.span_id == PARENT_ID
    assert route.parent is not None
    assert route.parent.span_id == server.context.span_id
    assert _upstream_context(fake_upstream)[0][:2] == (f"{TRACE_ID:032x}", f"{attempt.context.span_id:016x}")
