"""GatewayMiddleware: routing context per request, x-gate-* headers, gate errors as JSON."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from _apps import build_app, make_gateway, openai_entry, serve
from gate_mw import AllAttemptsFailed, Gateway, GatewayMiddleware, current_context, route_policy
from gate_mw.fastapi import GateClient
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

GATE_HEADERS = ("x-gate-model", "x-gate-attempts", "x-gate-cost-usd", "x-request-id")


async def test_response_headers_describe_the_call(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(input_tokens=1000, output_tokens=100))
    gateway = make_gateway([openai_entry(up, "gpt", "gpt-4o")])
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        response = await client.post("/chat", json={}, headers={"x-request-id": "req-abc-123"})
    assert response.status_code == 200
    assert response.headers["x-gate-model"] == "gpt"
    assert response.headers["x-gate-attempts"] == "1"
    # 1000 * 2.5 + 100 * 10 USD per 1M tokens
    assert response.headers["x-gate-cost-usd"] == "0.003500"
    assert response.headers["x-request-id"] == "req-abc-123"
    assert response.json()["request_id"] == "req-abc-123"


async def test_request_id_is_generated_when_absent(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "gpt")])
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        first = await client.post("/chat", json={})
        second = await client.post("/chat", json={})
    ids = [response.headers["x-request-id"] for response in (first, second)]
    assert ids[0] != ids[1]
    assert all(len(request_id) == 24 and int(request_id, 16) >= 0 for request_id in ids)
    assert first.json()["request_id"] == ids[0]


async def test_route_without_a_call_gets_no_gate_headers(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "gpt")])
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        response = await client.get("/plain", headers={"x-request-id": "req-plain"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not [name for name in GATE_HEADERS if name in response.headers]
    assert fake_upstream.calls() == 0


async def test_handled_gate_error_keeps_the_handlers_response(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt", Fault(503))
    gateway = make_gateway([openai_entry(up, "gpt")])
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.post("/chat")
    @route_policy(models=["gpt"], retries=0)
    async def chat(gate: GateClient) -> Any:
        try:
            await gate.chat([{"role": "user", "content": "hi"}])
        except AllAttemptsFailed as exc:
            return JSONResponse({"fallback": True, "attempts": len(exc.attempts)}, status_code=200)
        raise AssertionError("the upstream always fails")

    async with serve(app) as client:
        response = await client.post("/chat")
    assert response.status_code == 200
    assert response.json() == {"fallback": True, "attempts": 1}
    assert response.headers["x-gate-attempts"] == "1"
    assert "x-gate-model" not in response.headers


async def test_context_is_current_inside_the_handler(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "gpt")])
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.get("/who")
    async def who() -> dict[str, str | None]:
        context = current_context()
        assert context is not None
        return {"request_id": context.request_id, "caller": context.caller}

    async with serve(app) as client:
        response = await client.get("/who", headers={"x-request-id": "r-1", "x-gate-caller": "tenant-7"})
    assert response.json() == {"request_id": "r-1", "caller": "tenant-7"}
    assert current_context() is None


async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": "lifespan.startup.complete"})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = GatewayMiddleware(inner, gateway=Gateway())
    for kind in ("lifespan", "websocket"):
        scope: dict[str, Any] = {"type": kind, "headers": []}
        await middleware(scope, receive, send)
        assert seen[-1] is scope
        assert "gate_mw.context" not in scope
    assert sent == [{"type": "lifespan.startup.complete"}] * 2


async def test_lifespan_runs_through_the_middleware(fake_upstream: FakeUpstream) -> None:
    # The app's lifespan reaches the gateway through the middleware: providers get built.
    gateway = make_gateway([openai_entry(fake_upstream, "gpt")])
    async with serve(build_app(gateway, {"models": ["gpt"]})):
        assert all(d.provider is not None for d in gateway.registry.deployments)


async def test_gate_without_middleware_fails_clearly() -> None:
    gateway = Gateway()
    app = FastAPI(lifespan=gateway.lifespan)

    @app.get("/chat")
    async def chat(gate: GateClient) -> str:
        return "unreachable"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        with pytest.raises(RuntimeError, match="add GatewayMiddleware"):
            await client.get("/chat")
