"""The FastAPI example app and its demo, driven in-process and over a real uvicorn server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from examples import _demo
from examples._config import OPENROUTER_CONFIG, SEED, SIMULATED_CONFIG, config_path
from examples.fastapi_app.app import create_app, load_gateway
from fastapi import FastAPI

from conftest import Telemetry
from gate_mw import Gateway, ModelEntry, PriceTable, Usage
from gate_mw.config import load_config
from gate_mw.testing import FakeUpstream, Reply

pytestmark = pytest.mark.anyio

PRICES = PriceTable.bundled()
ARTICLE = {"text": "The council extended the night bus network after a successful trial."}
LABELS = {"text": "The parcel arrived broken.", "labels": ["complaint", "praise"]}


def _cost(upstream_model: str, tokens: dict[str, int]) -> float:
    price = PRICES.price(upstream_model)
    assert price is not None
    return price.cost(Usage(tokens["input"], tokens["output"]))


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(manager.app), base_url="http://example"
    ) as client:
        yield client


@pytest.fixture
async def simulated(telemetry: Telemetry) -> AsyncIterator[httpx.AsyncClient]:
    gateway = Gateway.from_file(SIMULATED_CONFIG, seed=SEED, telemetry=telemetry.config)
    async for client in _client(create_app(gateway)):
        yield client


async def test_summarise_falls_back_along_its_chain(simulated: httpx.AsyncClient) -> None:
    response = await simulated.post("/summarise", json=ARTICLE)

    assert response.status_code == 200
    body = response.json()
    # claude-sonnet fails its first two calls (fail_first: 2): the call and its one retry.
    assert [(f["model"], f["outcome"], f["status"]) for f in body["fallbacks"]] == [
        ("claude-sonnet", "server_error", 503), ("claude-sonnet", "server_error", 503),
    ]
    assert (body["model"], body["upstream_model"], body["attempts"]) == ("gpt-4o", "gpt-4o", 3)
    assert body["tokens"]["output"] > 0
    assert body["cost_usd"] == pytest.approx(_cost("gpt-4o", body["tokens"]))
    assert response.headers["x-gate-model"] == "gpt-4o"
    assert response.headers["x-gate-attempts"] == "3"
    assert response.headers["x-gate-cost-usd"] == f"{body['cost_usd']:.6f}"
    assert response.headers["x-request-id"]


async def test_summarise_spans_show_each_attempt(
    simulated: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    await simulated.post("/summarise", json=ARTICLE)

    (route,) = telemetry.spans("gate.route")
    assert route.name == "gate.route /summarise"
    attempts = telemetry.spans("chat ")
    assert [span.name for span in attempts] == ["chat claude-sonnet-4"] * 2 + ["chat gpt-4o"]
    assert all(span.parent is not None and span.parent.span_id == route.context.span_id for span in attempts)
    assert [span.attributes.get("error.type") for span in attempts if span.attributes] == ["503", "503", None]
    answered = attempts[-1].attributes or {}
    assert answered["gate.fallback.reason"] == "server_error"
    assert answered["gen_ai.provider.name"] == "gate_mw.simulated"


async def test_classify_uses_the_cheap_model_within_its_token_cap(simulated: httpx.AsyncClient) -> None:
    response = await simulated.post("/classify", json=LABELS)

    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["attempts"], body["fallbacks"]) == ("gpt-4o-mini", 1, [])
    assert 0 < body["tokens"]["output"] <= 5  # the policy's max_tokens
    assert body["cost_usd"] == pytest.approx(_cost("gpt-4o-mini", body["tokens"]))
    assert response.headers["x-gate-model"] == "gpt-4o-mini"
    assert "label" in body


async def test_ask_follows_the_default_policy_of_the_file(simulated: httpx.AsyncClient) -> None:
    first = await simulated.post("/summarise", json=ARTICLE)  # as in the demo, gpt-4o answers once
    assert first.json()["model"] == "gpt-4o"

    response = await simulated.post("/ask", json={"question": "What does a gateway do?"})

    assert response.status_code == 200
    body = response.json()
    # gpt-4o's next simulated call hangs; its entry's 0.5 s timeout cuts it and the default
    # policy (gpt-4o -> gemini-pro, no retries) moves on.
    assert [(f["model"], f["outcome"]) for f in body["fallbacks"]] == [("gpt-4o", "timeout")]
    assert body["model"] == "gemini-pro"
    assert body["upstream_model"] == "gemini-2.5-pro"
    assert body["cost_usd"] == pytest.approx(_cost("gemini-2.5-pro", body["tokens"]))


async def test_health_makes_no_model_call(simulated: httpx.AsyncClient) -> None:
    response = await simulated.get("/health")

    assert response.json() == {"status": "ok"}
    assert not [name for name in response.headers if name.startswith("x-gate-")]


async def test_every_model_failing_answers_502_with_the_attempts() -> None:
    config = load_config(SIMULATED_CONFIG)
    always_fail = {"error_rate": 1.0, "latency": 0.0}
    failing = [
        entry.model_copy(update={"simulation": entry.simulation.model_copy(update=always_fail)})
        for entry in config.models
    ]
    gateway = Gateway(failing, default_policy=config.default_policy, seed=SEED)
    async for client in _client(create_app(gateway)):
        response = await client.post("/summarise", json=ARTICLE)

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "all_attempts_failed"
    assert error["request_id"] == response.headers["x-request-id"]
    assert [a["model"] for a in error["attempts"]] == [
        "claude-sonnet", "claude-sonnet", "gpt-4o", "gpt-4o", "gemini-pro", "gemini-pro",
    ]


async def test_openrouter_config_sends_ids_key_and_attribution(fake_upstream: FakeUpstream) -> None:
    config = load_config(OPENROUTER_CONFIG)
    entries: Sequence[ModelEntry] = [
        entry.model_copy(update={"api_base": fake_upstream.openai_base}) for entry in config.models
    ]
    fake_upstream.set_default("openai/gpt-4o-mini", Reply("complaint", input_tokens=40, output_tokens=2))
    gateway = Gateway(
        entries, default_policy=config.default_policy, env={"OPENROUTER_API_KEY": "sk-or-test-123"}
    )
    async for client in _client(create_app(gateway)):
        response = await client.post("/classify", json=LABELS)

    assert response.status_code == 200
    body = response.json()
    assert (body["label"], body["model"]) == ("complaint", "gpt-4o-mini")
    assert body["cost_usd"] == pytest.approx(_cost("gpt-4o-mini", {"input": 40, "output": 2}))
    (sent,) = fake_upstream.requests
    assert sent.model == "openai/gpt-4o-mini"
    assert sent.headers["authorization"] == "Bearer sk-or-test-123"
    assert sent.headers["x-title"] == "gate_mw example"
    assert sent.headers["http-referer"].startswith("http")
    assert sent.json["max_tokens"] == 5


def test_config_is_chosen_from_the_environment() -> None:
    assert config_path({}) == SIMULATED_CONFIG
    assert config_path({"OPENROUTER_API_KEY": "sk-or-x"}) == OPENROUTER_CONFIG
    assert str(config_path({"OPENROUTER_API_KEY": "sk-or-x", "GATE_CONFIG": "/etc/g.yaml"})) == "/etc/g.yaml"
    assert load_gateway({}).registry.source == str(SIMULATED_CONFIG)
    # Both files define the aliases the routes' policies name.
    for path in (SIMULATED_CONFIG, OPENROUTER_CONFIG):
        aliases = {entry.name for entry in load_config(path).models}
        assert aliases == {"claude-sonnet", "gpt-4o", "gemini-pro", "gpt-4o-mini"}


async def test_demo_serves_the_app_over_http_and_reports_each_request() -> None:
    app = create_app(Gateway.from_file(SIMULATED_CONFIG, seed=SEED))

    base_url, outcomes = await _demo.serve(app)

    assert base_url.startswith("http://127.0.0.1:")
    assert [o.path for o in outcomes] == [r.path for r in _demo.REQUESTS]
    assert all(o.status == 200 and o.model for o in outcomes)
    first: Any = outcomes[0]
    assert (first.model, first.attempts, len(first.failed)) == ("gpt-4o", 3, 2)
    table = _demo.render(outcomes, wall_s=1.0).splitlines()
    assert table[3].split() == ["fell", "back:", "claude-sonnet", "server_error", "503", "x2"]
    total = sum(o.cost_usd or 0.0 for o in outcomes)
    assert f"cost USD {total:.6f}" in table[-1]


async def test_the_example_is_an_openai_compatible_proxy_at_v1(simulated: httpx.AsyncClient) -> None:
    models = (await simulated.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == [
        "reliable", "fast", "claude-sonnet", "gpt-4o", "gemini-pro", "gpt-4o-mini",
    ]
    response = await simulated.post(
        "/v1/chat/completions", json={"model": "reliable", "messages": [{"role": "user", "content": "Hi"}]}
    )

    assert response.status_code == 200
    body = response.json()
    # claude-sonnet fails its first two calls: the policy falls back, and only the headers say so.
    assert body["model"] == "reliable"
    assert body["choices"][0]["message"]["content"].startswith("[gpt-4o]")
    assert (response.headers["x-gate-model"], response.headers["x-gate-attempts"]) == ("gpt-4o", "3")
