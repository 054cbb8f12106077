"""Spans name the same routes and carry the same routing facts in every framework."""

from __future__ import annotations

import httpx
import pytest
from _parity_apps import BACKUP, PRIMARY, Telemetry
from opentelemetry.trace import SpanKind

from gate_mw.testing import FakeUpstream, Fault

pytestmark = pytest.mark.anyio


async def test_one_route_span_parents_the_attempt_span(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    response = await client.post("/chat", json={}, headers={"x-request-id": "req-span-1"})
    assert response.status_code == 200
    [route] = telemetry.spans("gate.route")
    [attempt] = telemetry.spans("chat ")
    assert route.name == "gate.route /chat"
    assert route.attributes is not None
    assert attempt.attributes is not None
    assert (route.attributes["gate.route"], route.attributes["gate.request_id"]) == ("/chat", "req-span-1")
    assert (attempt.name, attempt.kind) == (f"chat {PRIMARY}", SpanKind.CLIENT)
    assert attempt.parent is not None
    assert route.context is not None
    assert attempt.parent.span_id == route.context.span_id
    assert attempt.attributes["gate.route"] == "/chat"


async def test_route_spans_are_named_by_path_template_or_policy_name(
    client: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    for path in ("/items/7", "/items/8", "/named", "/default"):
        assert (await client.post(path, json={})).status_code == 200
    assert [span.name for span in telemetry.spans("gate.route")] == [
        "gate.route /items/{item_id}",
        "gate.route /items/{item_id}",
        "gate.route summarise",
        "gate.route /default",
    ]


async def test_a_fallback_shows_as_a_second_attempt_span(
    client: httpx.AsyncClient, telemetry: Telemetry, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(PRIMARY, Fault(500))
    await client.post("/chat", json={})
    attempts = telemetry.spans("chat ")
    assert [span.name for span in attempts] == [f"chat {PRIMARY}", f"chat {BACKUP}"]
    first, second = (span.attributes or {} for span in attempts)
    assert (first["error.type"], first["gate.attempt"]) == ("500", 1)
    assert (second["gate.fallback.reason"], second["gate.attempt"]) == ("server_error", 2)
    assert "error.type" not in second
