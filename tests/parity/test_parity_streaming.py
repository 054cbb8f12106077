"""Streamed answers (`sse_response`, `text_event_stream`) behave the same in every framework."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from _parity_apps import BACKUP, PRIMARY, Framework, Telemetry, build, serve_http

from gate_mw import Gateway
from gate_mw.testing import FakeUpstream, Fault, Reply, Stream, ToolUse

pytestmark = pytest.mark.anyio

TEXT = "Hello brave new world"


def sse_data(body: str) -> list[str]:
    """The `data:` payloads of an event stream, in order."""
    return [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]


def chunks(body: str) -> list[dict[str, Any]]:
    return [json.loads(data) for data in sse_data(body) if data != "[DONE]"]


async def test_sse_streams_openai_chunks_with_gate_headers(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(PRIMARY, Stream(text=TEXT, input_tokens=17, output_tokens=5))
    response = await client.post("/stream", json={}, headers={"x-request-id": "req-stream-1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert (response.headers["cache-control"], response.headers["x-accel-buffering"]) == ("no-cache", "no")
    assert (response.headers["x-gate-model"], response.headers["x-gate-attempts"]) == ("primary", "1")
    assert response.headers["x-request-id"] == "req-stream-1"
    events = chunks(response.text)
    assert {event["id"] for event in events} == {"chatcmpl-req-stream-1"}
    text = "".join(choice["delta"].get("content", "") for event in events for choice in event["choices"])
    assert text == TEXT
    usage = events[-1]
    assert (usage["usage"]["prompt_tokens"], usage["usage"]["completion_tokens"]) == (17, 5)
    # (17 * 2 + 5 * 8) USD per 1M tokens
    assert usage["gate"]["cost_usd"] == pytest.approx(74e-6)
    assert sse_data(response.text)[-1] == "[DONE]"
    assert fake_upstream.requests[0].stream


async def test_text_event_stream_sends_the_text_then_done(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(PRIMARY, Stream(text=TEXT))
    response = await client.post("/events", json={})
    assert response.status_code == 200
    data = sse_data(response.text)
    assert "".join(data[:-1]) == TEXT
    assert "event: done" in response.text
    done = json.loads(data[-1])
    assert (done["model"], done["finish_reason"]) == ("primary", "stop")


async def test_a_model_failing_before_its_first_token_falls_back_unseen(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(PRIMARY, Fault(503))
    fake_upstream.set_default(BACKUP, Stream(text=TEXT))
    response = await client.post("/events", json={})
    assert response.status_code == 200
    assert (response.headers["x-gate-model"], response.headers["x-gate-attempts"]) == ("backup", "2")
    assert "".join(sse_data(response.text)[:-1]) == TEXT
    assert (fake_upstream.calls(PRIMARY), fake_upstream.calls(BACKUP)) == (1, 1)


async def test_a_stream_failing_everywhere_answers_the_json_error(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(PRIMARY, Fault(500))
    fake_upstream.set_default(BACKUP, Fault(500))
    response = await client.post("/stream", json={}, headers={"x-request-id": "req-stream-2"})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["request_id"]) == ("all_attempts_failed", "req-stream-2")
    assert [a["outcome"] for a in error["attempts"]] == ["server_error", "server_error"]
    assert response.headers["x-gate-attempts"] == "2"


async def test_a_failure_after_the_first_token_ends_the_stream_with_an_error_event(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(PRIMARY, Stream(text=TEXT, error_after=2))
    sse = await client.post("/stream", json={})
    events = await client.post("/events", json={})
    assert (sse.status_code, events.status_code) == (200, 200)
    assert "[DONE]" not in sse.text
    assert chunks(sse.text)[-1]["error"]["type"] == "stream_interrupted"
    assert "event: error" in events.text
    assert "event: done" not in events.text
    assert fake_upstream.calls(BACKUP) == 0  # committed to primary at its first token


async def test_a_client_leaving_mid_stream_closes_the_upstream_call(
    framework: Framework, gateway: Gateway, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.set_default(PRIMARY, Stream(text=TEXT, stall_after=2))
    async with serve_http(build(framework, gateway)) as base_url:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=5) as client,
            client.stream("POST", "/events", json={}) as response,
        ):
            assert response.status_code == 200
            with anyio.fail_after(5):
                assert await anext(response.aiter_lines()) == "data: Hello"
            # Leaving the block hangs up while the upstream stalls after two chunks.
        assert await fake_upstream.wait_for_disconnect_async(timeout=5)
    # The server has shut down: every span is ended.
    [attempt] = telemetry.spans("chat ")
    assert (attempt.attributes or {})["error.type"] == "client_disconnect"


async def test_sse_forwards_tool_call_chunks(client: httpx.AsyncClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script(PRIMARY, Reply("Checking.", tool_calls=[
        ToolUse("get_weather", {"city": "Paris"}, id="c1"), ToolUse("get_time", {}, id="c2"),
    ]))
    response = await client.post("/stream", json={})
    assert response.status_code == 200
    events = chunks(response.text)
    calls: dict[int, dict[str, str]] = {}
    for event in events:
        for choice in event["choices"]:
            for piece in choice["delta"].get("tool_calls", ()):
                call = calls.setdefault(piece["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] += piece.get("id", "")
                call["name"] += piece["function"].get("name", "")
                call["arguments"] += piece["function"]["arguments"]
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == [
        ("c1", "get_weather", {"city": "Paris"}), ("c2", "get_time", {}),
    ]
    finishes = [choice["finish_reason"] for event in events for choice in event["choices"]]
    assert [reason for reason in finishes if reason] == ["tool_calls"]
