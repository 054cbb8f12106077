"""Streamed responses of a FastAPI app served by uvicorn on loopback, read with httpx: the
SSE formats, fallback unseen by the client, errors, headers and client disconnects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from _apps import serve_loopback as _serve
from conftest import Telemetry
from gate_mw import Gateway, GatewayMiddleware, ModelEntry, route_policy
from gate_mw.fastapi import GateClient
from gate_mw.responses import GateStreamingResponse, sse_response, text_event_stream
from gate_mw.testing import FakeUpstream, Fault, Stream

pytestmark = pytest.mark.anyio

WORDS = ("Once", " upon", " a", " time", " there", " was", " a", " gateway.")
MESSAGES = [{"role": "user", "content": "Tell me a story."}]


class Ask(BaseModel):
    messages: list[dict[str, Any]]


def _app(up: FakeUpstream, telemetry: Telemetry) -> FastAPI:
    models = [
        ModelEntry(
            name="gpt", provider="openai", model="gpt-4o", api_base=up.openai_base,
            api_key_env="FAKE_KEY", input_cost_per_mtok=2.0, output_cost_per_mtok=8.0,
        ),
        ModelEntry(
            name="claude", provider="anthropic", model="claude-sonnet-4", api_base=up.anthropic_base,
            api_key_env="FAKE_KEY", input_cost_per_mtok=3.0, output_cost_per_mtok=15.0,
        ),
    ]
    gateway = Gateway(models, env={"FAKE_KEY": "sk-test-123"}, telemetry=telemetry.config)
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    policy = route_policy(models=["gpt", "claude"], retries=0)

    @app.post("/sse")
    @policy
    async def sse(ask: Ask, gate: GateClient) -> GateStreamingResponse:
        return sse_response(gate.stream(ask.messages))

    @app.post("/text")
    @policy
    async def text(ask: Ask, gate: GateClient) -> GateStreamingResponse:
        return text_event_stream(gate.stream(ask.messages))

    @app.post("/own")
    @policy
    async def own(ask: Ask, gate: GateClient) -> StreamingResponse:
        # An app's own StreamingResponse, opening the stream lazily after the head is sent.
        stream = gate.stream(ask.messages)

        async def body() -> AsyncIterator[str]:
            async for delta in stream:
                yield delta

        return StreamingResponse(body(), media_type="text/plain")

    return app


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _data(body: str) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded where they are JSON."""
    found: list[Any] = []
    for line in body.splitlines():
        if line.startswith("data: "):
            payload = line.removeprefix("data: ")
            found.append(payload if payload == "[DONE]" else json.loads(payload))
    return found


async def test_sse_response_sends_openai_chunks_after_an_unseen_fallback(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Fault(500))
    fake_upstream.script("claude-sonnet-4", Stream(chunks=WORDS, input_tokens=100, output_tokens=40))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        response = await client.post("/sse", json={"messages": MESSAGES})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-gate-model"] == "claude"  # the model that answered
    assert response.headers["x-gate-attempts"] == "2"
    assert response.headers["x-gate-cost-usd"] == "unknown"  # known only at the end

    role, *content, finish, usage, done = _data(response.text)
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in content] == list(WORDS)
    assert {c["object"] for c in content} == {"chat.completion.chunk"}
    assert {c["model"] for c in content} == {"claude"}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 100
    assert usage["usage"]["completion_tokens"] == 40
    assert usage["gate"] == {"cost_usd": pytest.approx((100 * 3 + 40 * 15) / 1e6), "usage_estimated": False}
    assert done == "[DONE]"


async def test_sse_response_ends_a_cut_stream_with_an_error_event(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, cut_after=3))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        response = await client.post("/sse", json={"messages": MESSAGES})
    assert response.status_code == 200
    _role, *content, last = _data(response.text)
    assert [c["choices"][0]["delta"]["content"] for c in content] == list(WORDS[:3])
    assert set(last) == {"error"}  # and no [DONE]: the client cannot mistake it for an end
    error = last["error"]
    assert (error["type"], error["code"]) == ("stream_interrupted", "connection")
    assert error["request_id"] == response.headers["x-request-id"]
    assert fake_upstream.calls("claude-sonnet-4") == 0
    (span,) = telemetry.spans("chat ")
    assert span.status.status_code is StatusCode.ERROR
    (route,) = telemetry.spans("gate.route ")
    assert _attributes(route)["error.type"] == "connection"


async def test_text_event_stream(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    chunks = ("Two", " lines:\nfirst", "\r\nsecond")
    fake_upstream.script("gpt-4o", Stream(chunks=chunks, include_usage=False))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        response = await client.post("/text", json={"messages": MESSAGES})
    assert response.status_code == 200
    events = response.text.split("\n\n")
    assert events[:3] == ["data: Two", "data:  lines:\ndata: first", "data: \ndata: second"]
    name, data = events[3].split("\n")
    assert name == "event: done"
    done = json.loads(data.removeprefix("data: "))
    assert (done["model"], done["finish_reason"], done["usage_estimated"]) == ("gpt", "stop", True)
    assert done["usage"]["completion_tokens"] > 0
    assert done["cost_usd"] > 0
    assert events[4:] == [""]


async def test_text_event_stream_error_event(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, error_after=2))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        response = await client.post("/text", json={"messages": MESSAGES})
    *_, error, end = response.text.split("\n\n")
    name, data = error.split("\n")
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: "))["code"] == "server_error"
    assert end == ""


@pytest.mark.parametrize("path", ["/sse", "/own"])
async def test_every_model_failing_before_any_token_is_an_http_error(
    fake_upstream: FakeUpstream, telemetry: Telemetry, path: str
) -> None:
    fake_upstream.script("gpt-4o", Fault(503))
    fake_upstream.script("claude-sonnet-4", Stream(error_after=0))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        response = await client.post(path, json={"messages": MESSAGES})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-gate-attempts"] == "2"
    body = response.json()["error"]
    assert body["type"] == "all_attempts_failed"
    assert [a["outcome"] for a in body["attempts"]] == ["server_error", "server_error"]


async def test_an_apps_own_streaming_response_gets_the_committed_model_in_its_headers(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Stream(error_after=0))
    fake_upstream.script("claude-sonnet-4", Stream(chunks=WORDS))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        response = await client.post("/own", json={"messages": MESSAGES})
    assert response.status_code == 200
    assert response.text == "".join(WORDS)
    assert response.headers["x-gate-model"] == "claude"


@pytest.mark.parametrize("path", ["/sse", "/text"])
async def test_a_client_disconnect_closes_the_upstream_request(
    fake_upstream: FakeUpstream, telemetry: Telemetry, path: str
) -> None:
    # Three chunks, then the upstream stalls: only our hanging up can end its request.
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, stall_after=3))
    async with _serve(_app(fake_upstream, telemetry)) as client:
        async with client.stream("POST", path, json={"messages": MESSAGES}) as response:
            async for line in response.aiter_lines():
                if "upon" in line:
                    break  # leaving the block closes the connection mid-stream
        assert await fake_upstream.wait_for_disconnect_async()
    # The server has stopped, so the request's task has finished and ended its spans.
    (span,) = telemetry.spans("chat ")
    attributes = _attributes(span)
    assert attributes["error.type"] == "client_disconnect"
    assert attributes["gate.usage.estimated"] is True
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.request.stream"] is True
    (route,) = telemetry.spans("gate.route ")
    assert _attributes(route)["error.type"] == "client_disconnect"
    assert fake_upstream.in_flight() == 0
