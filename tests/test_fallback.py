"""The fallback chain end to end: FastAPI app -> gateway -> real HTTP -> FakeUpstream."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from _apps import MESSAGES, SECRET, build_app, make_gateway, openai_entry, serve
from conftest import Telemetry
from gate_mw import RequestRejected
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

FAST_BACKOFF = {"initial": 0.01, "maximum": 0.02}


def two_models(up: FakeUpstream, **fields: Any) -> list[Any]:
    return [openai_entry(up, "fb-a", **fields), openai_entry(up, "fb-b", **fields)]


def outcomes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(attempt["model"], attempt["outcome"]) for attempt in body["attempts"]]


def received(up: FakeUpstream, model: str) -> list[float]:
    return [request.received_at for request in up.requests if request.model == model]


async def test_server_error_then_success_on_fallback_model(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("fb-a", Fault(500))
    up.set_default("fb-b", Reply(text="from b"))
    gateway = make_gateway(two_models(up))
    app = build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 0})
    async with serve(app) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "from b"
    assert body["model"] == "fb-b"
    assert outcomes(body) == [("fb-a", "server_error"), ("fb-b", "ok")]
    assert body["attempts"][0]["status"] == 500
    assert (up.calls("fb-a"), up.calls("fb-b")) == (1, 1)
    assert response.headers["x-gate-attempts"] == "2"
    assert response.headers["x-gate-model"] == "fb-b"


async def test_retry_answers_on_the_same_model(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("fb-a", Fault(500), Reply(text="second try"))
    gateway = make_gateway(two_models(up))
    app = build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 1, "backoff": FAST_BACKOFF})
    async with serve(app) as client:
        response = await client.post("/chat", json={})
    body = response.json()
    assert response.status_code == 200
    assert body["text"] == "second try"
    assert outcomes(body) == [("fb-a", "server_error"), ("fb-a", "ok")]
    assert (up.calls("fb-a"), up.calls("fb-b")) == (2, 0)


async def test_retry_after_is_honoured(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("fb-a", Fault.rate_limited(retry_after=0.2), Reply(text="after waiting"))
    gateway = make_gateway(two_models(up))
    app = build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 1, "backoff": FAST_BACKOFF})
    async with serve(app) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    assert response.json()["text"] == "after waiting"
    first, retry = received(up, "fb-a")
    # Backoff alone would wait at most 0.01 s; only the Retry-After header explains 0.2 s.
    assert retry - first >= 0.2
    assert up.calls("fb-b") == 0


async def test_retry_after_above_cap_moves_on_without_waiting(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("fb-a", Fault.rate_limited(retry_after=30))
    gateway = make_gateway(two_models(up))
    policy = {"models": ["fb-a", "fb-b"], "retries": 2, "backoff": {"retry_after_cap": 1.0}}
    async with serve(build_app(gateway, policy)) as client:
        response = await client.post("/chat", json={})
    body = response.json()
    assert response.status_code == 200
    assert outcomes(body) == [("fb-a", "rate_limit"), ("fb-b", "ok")]
    assert body["attempts"][0]["status"] == 429
    assert up.calls("fb-a") == 1
    [asked_a], [asked_b] = received(up, "fb-a"), received(up, "fb-b")
    assert asked_b - asked_a < 1.0  # neither the 30 s asked for nor the 1 s cap was waited


async def test_timeout_moves_to_next_model(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    up = fake_upstream
    up.hold("fb-a")  # fb-a never answers until released
    gateway = make_gateway(two_models(up), telemetry=telemetry.config)
    app = build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 0, "timeout": 0.2})
    try:
        async with serve(app) as client:
            response = await client.post("/chat", json={})
    finally:
        up.release("fb-a")
    body = response.json()
    assert response.status_code == 200
    assert outcomes(body) == [("fb-a", "timeout"), ("fb-b", "ok")]
    assert body["attempts"][0]["status"] is None
    assert body["attempts"][0]["latency_ms"] >= 200
    timed_out, answered = sorted(telemetry.spans("chat "), key=lambda s: s.attributes["gate.attempt"])
    assert timed_out.name == "chat fb-a"
    assert timed_out.attributes["error.type"] == "timeout"
    assert timed_out.attributes["gate.error.kind"] == "timeout"
    assert timed_out.status.status_code is StatusCode.ERROR
    assert answered.attributes["gate.fallback.reason"] == "timeout"


async def test_deadline_stops_the_chain_with_504(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.hold("fb-a")
    entries = [*two_models(up), openai_entry(up, "fb-c")]
    gateway = make_gateway(entries)
    app = build_app(gateway, {"models": ["fb-a", "fb-b", "fb-c"], "deadline": 0.3})
    try:
        async with serve(app) as client:
            response = await client.post("/chat", json={})
    finally:
        up.release("fb-a")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "deadline_exceeded"
    assert [(a["model"], a["outcome"]) for a in error["attempts"]] == [("fb-a", "timeout")]
    assert error["request_id"] == response.headers["x-request-id"]
    assert (up.calls("fb-b"), up.calls("fb-c")) == (0, 0)


async def test_auth_error_skips_model_without_retry_and_logs_once(
    fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    up = fake_upstream
    up.set_default("fb-a", Fault(401, message=f"Incorrect API key provided: {SECRET}"))
    gateway = make_gateway(two_models(up))
    app = build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 2, "backoff": FAST_BACKOFF})
    with caplog.at_level(logging.INFO, logger="gate_mw"):
        async with serve(app) as client:
            first = await client.post("/chat", json={})
            second = await client.post("/chat", json={})
    for response in (first, second):
        assert response.status_code == 200
        assert outcomes(response.json()) == [("fb-a", "auth"), ("fb-b", "ok")]
    assert up.calls("fb-a") == 2  # once per request: never retried
    reports = [r for r in caplog.records if r.name == "gate_mw" and r.levelno >= logging.ERROR]
    assert len(reports) == 1
    assert "fb-a" in reports[0].getMessage()
    assert "api_key_env" in reports[0].getMessage()
    assert SECRET not in caplog.text


async def test_context_length_error_picks_a_bigger_window(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("ctx-small", Fault.context_length(8_000))
    entries = [
        openai_entry(up, "ctx-small", context_window=8_000),
        openai_entry(up, "ctx-same", context_window=8_000),
        openai_entry(up, "ctx-smaller", context_window=4_000),
        openai_entry(up, "ctx-big", context_window=32_000),
    ]
    gateway = make_gateway(entries)
    policy = {"models": ["ctx-small", "ctx-same", "ctx-smaller", "ctx-big"], "retries": 2}
    async with serve(build_app(gateway, policy)) as client:
        response = await client.post("/chat", json={})
    body = response.json()
    assert response.status_code == 200
    assert outcomes(body) == [("ctx-small", "context_length"), ("ctx-big", "ok")]
    assert (up.calls("ctx-small"), up.calls("ctx-same"), up.calls("ctx-smaller")) == (1, 0, 0)
    assert up.calls("ctx-big") == 1


async def test_bad_request_is_returned_without_retry(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("fb-a", Fault(400, message="messages.0.role: unknown role 'robot'"))
    gateway = make_gateway(two_models(up))
    app = build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 2, "backoff": FAST_BACKOFF})
    async with serve(app) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "request_rejected"
    assert "unknown role" in error["message"]
    assert [(a["model"], a["outcome"], a["status"]) for a in error["attempts"]] == [
        ("fb-a", "bad_request", 400)
    ]
    assert (up.calls("fb-a"), up.calls("fb-b")) == (1, 0)


async def test_bad_request_raises_request_rejected_to_the_caller(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("fb-a", Fault(422, message="temperature: must be at most 2"))
    gateway = make_gateway(two_models(up), default_policy={"models": ["fb-a", "fb-b"], "retries": 2})
    async with gateway:
        with pytest.raises(RequestRejected) as caught:
            await gateway.client().chat(MESSAGES)
    assert caught.value.status_code == 422
    assert [a.outcome for a in caught.value.attempts] == ["bad_request"]
    assert (up.calls("fb-a"), up.calls("fb-b")) == (1, 0)


def _span_texts(telemetry: Telemetry) -> list[str]:
    texts: list[str] = []
    for span in telemetry.spans():
        texts.append(span.name)
        texts.append(span.status.description or "")
        texts.extend(str(value) for value in (span.attributes or {}).values())
        for event in span.events:
            texts.extend(str(value) for value in (event.attributes or {}).values())
    return texts


async def test_all_failed_gives_502_listing_attempts_without_the_key(
    fake_upstream: FakeUpstream, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    up = fake_upstream
    up.set_default("fb-a", Fault(401, message=f"Incorrect API key provided: {SECRET}"))
    up.set_default("fb-b", Fault(500, message=f"upstream broke while using key {SECRET}"))
    up.set_default("fb-c", Fault(503))
    entries = [*two_models(up), openai_entry(up, "fb-c")]
    gateway = make_gateway(entries, telemetry=telemetry.config)
    policy = {"models": ["fb-a", "fb-b", "fb-c"], "retries": 1, "backoff": FAST_BACKOFF}
    with caplog.at_level(logging.DEBUG):
        async with serve(build_app(gateway, policy)) as client:
            response = await client.post("/chat", json={})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "all_attempts_failed"
    assert [(a["model"], a["outcome"], a["status"]) for a in error["attempts"]] == [
        ("fb-a", "auth", 401),
        ("fb-b", "server_error", 500),
        ("fb-b", "server_error", 500),
        ("fb-c", "server_error", 503),
        ("fb-c", "server_error", 503),
    ]
    for attempt in error["attempts"]:
        assert attempt["latency_ms"] >= 0
    assert "[redacted]" in error["attempts"][0]["error"]
    assert response.headers["x-gate-attempts"] == "5"
    assert "x-gate-model" not in response.headers
    # The key appears nowhere: body, headers, spans, logs.
    assert SECRET not in response.text
    assert all(SECRET not in value for value in response.headers.values())
    assert len(telemetry.spans("chat ")) == 5
    assert not [text for text in _span_texts(telemetry) if SECRET in text]
    assert SECRET not in caplog.text


# -- routing: default policy, per-call model, max_tokens cap -------------------------------------


async def test_route_without_policy_uses_default_policy(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway(two_models(up), default_policy={"models": ["fb-b"], "max_tokens": 50})
    async with serve(build_app(gateway)) as client:
        response = await client.post("/default", json={"max_tokens": 500})
    assert response.status_code == 200
    assert response.json()["model"] == "fb-b"
    [request] = up.requests
    assert request.model == "fb-b"
    assert request.json["max_tokens"] == 50


async def test_model_override_per_call(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway(two_models(up))
    async with serve(build_app(gateway, {"models": ["fb-a"]})) as client:
        response = await client.post("/chat", json={"model": "fb-b"})
        chained = await client.post("/chat", json={"model": ["fb-b", "fb-a"]})
    assert response.json()["model"] == "fb-b"
    assert chained.json()["model"] == "fb-b"
    assert (up.calls("fb-a"), up.calls("fb-b")) == (0, 2)


async def test_max_tokens_capped_by_policy(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway(two_models(up))
    async with serve(build_app(gateway, {"models": ["fb-a"], "max_tokens": 100})) as client:
        await client.post("/chat", json={"max_tokens": 5000})
        await client.post("/chat", json={"max_tokens": 20})
        await client.post("/chat", json={})
    assert [request.json["max_tokens"] for request in up.requests] == [100, 20, 100]


async def test_route_span_is_the_parent_of_attempt_spans(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.script("fb-a", Fault(503))
    gateway = make_gateway(two_models(up), telemetry=telemetry.config)
    async with serve(build_app(gateway, {"models": ["fb-a", "fb-b"], "retries": 0})) as client:
        assert (await client.post("/chat", json={})).status_code == 200
    [route] = telemetry.spans("gate.route")
    attempts = telemetry.spans("chat ")
    assert route.kind is SpanKind.INTERNAL
    assert [span.parent.span_id for span in attempts if span.parent] == [route.context.span_id] * 2
