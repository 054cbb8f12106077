"""Property: whatever JSON-like messages and parameters a caller sends, over real HTTP the
gate either calls a model or answers a typed 4xx: never a 500, never a breaker moved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _apps import anthropic_entry, make_gateway, openai_entry, serve_thread
from _strategies import json_like, text
from gate_mw import Gateway, GatewayMiddleware
from gate_mw.chat import ChatOptions
from gate_mw.fastapi import GateClient
from gate_mw.responses import sse_response
from gate_mw.testing import FakeUpstream

# Strings with what breaks encoders: lone surrogates, NUL, newlines, non-Latin text.
roles = st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "bogus"]), json_like)
content = st.one_of(
    text,
    json_like,
    st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]), "text": json_like})),
)
message = st.one_of(st.fixed_dictionaries({"role": roles, "content": content}), json_like)
messages = st.one_of(st.lists(message, max_size=3), json_like)
# Keyword arguments of gate.chat a JSON body could carry: its options (`ChatOptions`; an
# unknown keyword is a programming error, a TypeError, not a caller's). `model` and
# `max_cost_usd` are the developer's (a route's code), `output` a type: left out.
param_names = st.sampled_from(sorted(set(ChatOptions.__annotations__) - {"output"}))
extra_body = st.dictionaries(st.sampled_from(["stream", "model", "top_k", "x"]), json_like, max_size=2)
params = st.one_of(
    st.dictionaries(param_names, json_like, max_size=3),
    st.fixed_dictionaries({"extra_body": extra_body}),
)


def boundary_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.post("/chat")
    async def chat(request: Request, gate: GateClient) -> dict[str, Any]:
        body = json.loads(await request.body())
        result = await gate.chat(body["messages"], **body["params"])
        return {"text": result.text}

    @app.post("/stream")
    async def stream(request: Request, gate: GateClient) -> Any:
        body = json.loads(await request.body())
        return sse_response(gate.stream(body["messages"], **body["params"]))

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Gateway, httpx.Client]]:
    with FakeUpstream() as up:
        gateway = make_gateway(
            [openai_entry(up, "primary", "up-primary"), anthropic_entry(up, "backup", "up-backup")],
            default_policy={"models": ["primary", "backup"], "retries": 0},
        )
        with serve_thread(boundary_app(gateway)) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield gateway, client


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=messages, params=params, streamed=st.booleans())
def test_any_request_is_answered_or_refused_with_a_typed_4xx(
    server: tuple[Gateway, httpx.Client], messages: Any, params: dict[str, Any], streamed: bool
) -> None:
    gateway, client = server
    body = json.dumps({"messages": messages, "params": params})  # NaN and surrogates included
    response = client.post(
        "/stream" if streamed else "/chat", content=body, headers={"content-type": "application/json"}
    )
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["type"] == "request_rejected"
    elif streamed:
        assert "stream_interrupted" not in response.text
    states = asyncio.run(gateway.cooldowns())  # the memory store never suspends: safe here
    assert {(s.state, s.consecutive_failures) for s in states} == {("closed", 0)}
