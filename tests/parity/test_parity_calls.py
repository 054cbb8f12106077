"""Fallbacks, response headers and error answers behave the same in every framework."""

from __future__ import annotations

import re

import httpx
import pytest
from _parity_apps import BACKUP, PRIMARY

from _apps import ANTHROPIC_SECRET, SECRET
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

GATE_HEADERS = ("x-gate-model", "x-gate-attempts", "x-gate-cost-usd", "x-request-id")


def assert_no_secret(response: httpx.Response) -> None:
    exposed = response.text + repr(response.headers.raw)
    assert SECRET not in exposed
    assert ANTHROPIC_SECRET not in exposed


# -- fallbacks -------------------------------------------------------------------------


async def test_a_failing_model_falls_back_to_the_next(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(PRIMARY, Fault(500))
    response = await client.post("/chat", json={})
    assert response.status_code == 200
    assert (response.json()["model"], response.json()["attempts"]) == ("backup", ["server_error", "ok"])
    assert (response.headers["x-gate-model"], response.headers["x-gate-attempts"]) == ("backup", "2")
    assert (fake_upstream.calls(PRIMARY), fake_upstream.calls(BACKUP)) == (1, 1)


async def test_retries_the_same_model_before_falling_back(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(PRIMARY, Fault(503), Fault(503), Reply(text="third time"))
    response = await client.post("/retry", json={})
    body = response.json()
    assert (body["model"], body["text"]) == ("primary", "third time")
    assert body["attempts"] == ["server_error", "server_error", "ok"]
    assert fake_upstream.calls(BACKUP) == 0


async def test_context_length_moves_on_without_retrying(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(PRIMARY, Fault.context_length())
    response = await client.post("/retry", json={})
    assert response.json()["attempts"] == ["context_length", "ok"]
    assert (fake_upstream.calls(PRIMARY), fake_upstream.calls(BACKUP)) == (1, 1)


# -- headers ---------------------------------------------------------------------------


async def test_headers_describe_the_call(client: httpx.AsyncClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default(PRIMARY, Reply(input_tokens=1000, output_tokens=100))
    response = await client.post("/chat", json={}, headers={"x-request-id": "req-abc-123"})
    assert response.status_code == 200
    # 1000 * 2 + 100 * 8 USD per 1M tokens
    assert {name: response.headers[name] for name in GATE_HEADERS} == {
        "x-gate-model": "primary",
        "x-gate-attempts": "1",
        "x-gate-cost-usd": "0.002800",
        "x-request-id": "req-abc-123",
    }
    assert response.json()["request_id"] == "req-abc-123"
    assert response.headers["content-type"] == "application/json"


async def test_a_request_id_is_made_when_none_is_sent(client: httpx.AsyncClient) -> None:
    first = await client.post("/chat", json={})
    second = await client.post("/chat", json={})
    ids = [response.headers["x-request-id"] for response in (first, second)]
    assert ids[0] != ids[1]
    assert all(re.fullmatch(r"[0-9a-f]{24}", request_id) for request_id in ids)
    assert [first.json()["request_id"], second.json()["request_id"]] == ids


async def test_a_route_that_calls_no_model_gets_no_gate_headers(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.get("/plain", headers={"x-request-id": "req-plain"})
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert [name for name in GATE_HEADERS if name in response.headers] == []
    assert fake_upstream.calls() == 0


# -- errors ----------------------------------------------------------------------------


async def test_all_models_failing_answers_502_with_the_attempts(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(PRIMARY, Fault(500))
    fake_upstream.set_default(BACKUP, Fault(503))
    response = await client.post("/chat", json={}, headers={"x-request-id": "req-fail-1"})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["request_id"]) == ("all_attempts_failed", "req-fail-1")
    assert [(a["model"], a["outcome"], a["status"]) for a in error["attempts"]] == [
        ("primary", "server_error", 500), ("backup", "server_error", 503),
    ]
    assert (response.headers["x-gate-attempts"], response.headers["x-request-id"]) == ("2", "req-fail-1")
    assert "x-gate-model" not in response.headers
    assert_no_secret(response)


async def test_a_rejected_request_answers_its_4xx_without_fallback(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(PRIMARY, Fault(422, message="messages[0].role is invalid"))
    response = await client.post("/chat", json={})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "request_rejected"
    assert [a["outcome"] for a in error["attempts"]] == ["bad_request"]
    assert response.headers["x-gate-attempts"] == "1"
    assert fake_upstream.calls(BACKUP) == 0
    assert_no_secret(response)


async def test_an_exceeded_deadline_answers_504(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.hold(PRIMARY)
    try:
        response = await client.post("/deadline", json={})
    finally:
        fake_upstream.release(PRIMARY)
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["type"] == "deadline_exceeded"
    assert [a["outcome"] for a in error["attempts"]] == ["timeout"]
    assert response.headers["x-gate-attempts"] == "1"
    assert fake_upstream.calls(BACKUP) == 0


async def test_an_unknown_model_in_a_call_answers_a_policy_error(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post("/chat", json={"model": "gpt-nope"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["type"], error["request_id"]) == ("policy_error", response.json()["error"]["request_id"])
    assert "'gpt-nope'" in error["message"]
    assert [name for name in GATE_HEADERS if name in response.headers] == []
    assert fake_upstream.calls() == 0


async def test_a_handled_gate_error_keeps_the_handlers_answer_and_headers(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(PRIMARY, Fault(500))
    response = await client.post("/degrade", json={})
    assert (response.status_code, response.json()) == (
        200, {"degraded": True, "error": "all_attempts_failed"},
    )
    assert response.headers["x-gate-attempts"] == "1"
    assert "x-gate-model" not in response.headers
