"""OpenAI-compatible and Anthropic providers: what reaches the wire, and how replies are read."""

from __future__ import annotations

import httpx
import pytest

from _apps import (
    ANTHROPIC_SECRET,
    ENV,
    MESSAGES,
    SECRET,
    anthropic_entry,
    build_app,
    make_gateway,
    openai_entry,
    serve,
)
from conftest import Telemetry
from gate_mw import AllAttemptsFailed, ModelEntry
from gate_mw.testing import Drop, FakeUpstream, Reply

pytestmark = pytest.mark.anyio


async def test_openai_request_on_the_wire(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway([openai_entry(up, "gpt", "gpt-4o")])
    async with serve(build_app(gateway, {"models": ["gpt"], "temperature": 0.3})) as client:
        response = await client.post("/chat", json={"max_tokens": 64})
    assert response.status_code == 200
    [request] = up.requests
    assert request.path == "/v1/chat/completions"
    assert request.api == "openai"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.json == {
        "model": "gpt-4o", "messages": MESSAGES, "max_tokens": 64, "temperature": 0.3,
    }


async def test_openrouter_extra_headers_reach_upstream(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    entry = openai_entry(
        up, "router", "openai/gpt-4o", provider="openrouter",
        headers={"HTTP-Referer": "https://app.example", "X-Title": "Example App"},
    )
    gateway = make_gateway([entry], telemetry=telemetry.config)
    async with serve(build_app(gateway, {"models": ["router"]})) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    assert response.json()["provider"] == "openrouter"
    [request] = up.requests
    assert request.model == "openai/gpt-4o"
    assert request.headers["http-referer"] == "https://app.example"
    assert request.headers["x-title"] == "Example App"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    [span] = telemetry.spans("chat ")
    assert span.attributes["gen_ai.provider.name"] == "openrouter"


async def test_secret_headers_are_read_from_env(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    entry = openai_entry(up, "gpt", secret_headers={"x-org-token": "ORG_TOKEN"})
    gateway = make_gateway([entry], env={**ENV, "ORG_TOKEN": "org-secret-value"})
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        assert (await client.post("/chat", json={})).status_code == 200
    assert up.requests[0].headers["x-org-token"] == "org-secret-value"


async def test_openai_usage_and_finish_reason(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default(
        "gpt",
        Reply(
            text="cut", input_tokens=40, output_tokens=7, cached_tokens=16, reasoning_tokens=3,
            finish_reason="length", model="gpt-2099",
        ),
    )
    gateway = make_gateway([openai_entry(up, "gpt")])
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        body = (await client.post("/chat", json={})).json()
    assert body["usage"] == {
        "input_tokens": 40, "output_tokens": 7, "cached_tokens": 16, "estimated": False,
    }
    assert body["finish_reason"] == "length"
    assert body["provider_model"] == "gpt-2099"


async def test_openai_reply_without_usage_is_estimated(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.set_default("gpt", Reply(text="twelve chars", usage=False))
    gateway = make_gateway([openai_entry(up, "gpt")], telemetry=telemetry.config)
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        body = (await client.post("/chat", json={})).json()
    usage = body["usage"]
    assert usage["estimated"] is True
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] == 3  # 12 characters at 4 per token
    [span] = telemetry.spans("chat ")
    assert span.attributes["gate.usage.estimated"] is True


async def test_anthropic_request_on_the_wire(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway([anthropic_entry(up, "claude", "claude-sonnet-4")])
    async with serve(build_app(gateway, {"models": ["claude"]})) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    [request] = up.requests
    assert request.path == "/v1/messages"
    assert request.api == "anthropic"
    assert request.headers["x-api-key"] == ANTHROPIC_SECRET
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    # The system prompt goes apart from the turns, and max_tokens is always sent.
    assert request.json == {
        "model": "claude-sonnet-4",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 1024,
    }


async def test_anthropic_max_tokens_follows_call_and_policy(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway([anthropic_entry(up, "claude")])
    async with serve(build_app(gateway, {"models": ["claude"], "max_tokens": 200})) as client:
        await client.post("/chat", json={})
        await client.post("/chat", json={"max_tokens": 50})
    assert [request.json["max_tokens"] for request in up.requests] == [200, 50]


async def test_anthropic_usage_and_finish_reason(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default(
        "claude",
        Reply(
            text="Paris", input_tokens=100, cached_tokens=30, output_tokens=9,
            finish_reason="length", model="claude-sonnet-4-20250514",
        ),
    )
    gateway = make_gateway([anthropic_entry(up, "claude")])
    async with serve(build_app(gateway, {"models": ["claude"]})) as client:
        body = (await client.post("/chat", json={})).json()
    assert body["text"] == "Paris"
    assert body["provider"] == "anthropic"
    assert body["provider_model"] == "claude-sonnet-4-20250514"
    # stop_reason "max_tokens" comes back as the OpenAI-style "length".
    assert body["finish_reason"] == "length"
    # Cache reads are reported apart from input_tokens by Anthropic, and counted into input here.
    assert body["usage"] == {
        "input_tokens": 130, "output_tokens": 9, "cached_tokens": 30, "estimated": False,
    }


async def test_anthropic_end_turn_maps_to_stop(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("claude", Reply(text="done", finish_reason="stop"))
    gateway = make_gateway([anthropic_entry(up, "claude")])
    async with gateway:
        result = await gateway.client().chat([{"role": "user", "content": "hi"}])
    assert result.finish_reason == "stop"
    assert "system" not in up.requests[0].json


async def test_provider_repr_hides_the_key(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    gateway = make_gateway([openai_entry(up, "gpt"), anthropic_entry(up, "claude")])
    async with gateway:
        for deployment in gateway.registry.deployments:
            assert deployment.provider is not None
            text = repr(deployment.provider)
            assert SECRET not in text
            assert ANTHROPIC_SECRET not in text


def test_plain_auth_headers_are_refused_without_echoing_the_key() -> None:
    with pytest.raises(ValueError, match="api_key_env") as caught:
        ModelEntry(name="gpt", provider="openai", headers={"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in str(caught.value)


async def test_dropped_and_refused_connections_are_connection_errors(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt", Drop())
    closed = FakeUpstream().start()
    dead_base = closed.openai_base
    closed.stop()  # nothing listens on its port any more
    entries = [openai_entry(up, "gpt"), openai_entry(up, "dead", api_base=dead_base)]
    gateway = make_gateway(entries, default_policy={"retries": 0})
    async with gateway:
        with pytest.raises(AllAttemptsFailed) as caught:
            await gateway.client().chat(MESSAGES)
    assert [(a.model, a.outcome, a.status) for a in caught.value.attempts] == [
        ("gpt", "connection", None),
        ("dead", "connection", None),
    ]
    assert "disconnected" in (caught.value.attempts[0].error or "").lower()


async def test_timeout_of_a_plain_httpx_client_is_a_timeout(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.hold("gpt")
    async with httpx.AsyncClient(timeout=0.2) as http_client:
        gateway = make_gateway(
            [openai_entry(up, "gpt")], http_client=http_client, default_policy={"retries": 0}
        )
        try:
            async with gateway:
                with pytest.raises(AllAttemptsFailed) as caught:
                    await gateway.client().chat(MESSAGES)
        finally:
            up.release("gpt")
    assert [a.outcome for a in caught.value.attempts] == ["timeout"]
