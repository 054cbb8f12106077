"""Prices and cost: lenient lookup, per-entry overrides, cached tokens, unknown never zero."""

from __future__ import annotations

import pytest

from _apps import build_app, make_gateway, openai_entry, serve
from conftest import Telemetry
from gate_mw import Price, PriceTable, Usage
from gate_mw.testing import FakeUpstream, Reply

BUNDLED = PriceTable.bundled()


@pytest.mark.parametrize(
    ("model_id", "base"),
    [
        ("gpt-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
    ],
)
def test_lenient_lookup_finds_the_base_entry(model_id: str, base: str) -> None:
    found = BUNDLED.price(model_id)
    assert found is not None
    assert found == BUNDLED.price(base)


def test_longest_prefix_wins_and_unknown_is_none() -> None:
    mini, full = BUNDLED.price("gpt-4o-mini"), BUNDLED.price("gpt-4o")
    assert mini is not None
    assert mini != full
    assert BUNDLED.price("gpt-4o-mini-search-preview") == mini
    assert BUNDLED.price("my-private-finetune") is None
    assert BUNDLED.price("gpt-4ox") is None  # a prefix only matches up to a dash
    assert BUNDLED.context_window("gpt-4o-2024-08-06") == 128_000
    assert BUNDLED.as_of


def test_cost_prices_cached_tokens_apart() -> None:
    price = Price(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)
    assert price.cost(usage) == (600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1_000_000
    # No cache price: cached tokens cost as much as any input token.
    assert Price(2.5, 10.0).cost(usage) == (1000 * 2.5 + 200 * 10.0) / 1_000_000
    # A cache count above the input count is bounded by it.
    odd = Usage(input_tokens=10, output_tokens=0, cached_tokens=50)
    assert price.cost(odd) == 10 * 1.25 / 1_000_000


def test_custom_table() -> None:
    table = PriceTable({"house-model": {"input": 1, "output": 3, "context_window": 4096}}, as_of="x")
    assert table.price("acme/house-model-20250101") == Price(1.0, 3.0, None)
    assert table.context_window("house-model") == 4096


@pytest.mark.anyio
async def test_unknown_price_gives_unknown_cost_never_zero(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.set_default("my-private-finetune", Reply(input_tokens=500, output_tokens=50))
    gateway = make_gateway([openai_entry(up, "private", "my-private-finetune")], telemetry=telemetry.config)
    assert gateway.registry.by_alias["private"][0].price is None
    async with serve(build_app(gateway, {"models": ["private"]})) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    assert response.json()["cost_usd"] is None
    assert response.headers["x-gate-cost-usd"] == "unknown"
    [span] = telemetry.spans("chat ")
    assert "gen_ai.usage.cost" not in span.attributes
    assert span.attributes["gen_ai.usage.input_tokens"] == 500
    assert telemetry.points("gate.cost") == []


@pytest.mark.anyio
async def test_per_entry_price_overrides_the_table(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(input_tokens=1000, output_tokens=100, cached_tokens=200))
    entry = openai_entry(
        up, "negotiated", "gpt-4o",
        input_cost_per_mtok=2.0, output_cost_per_mtok=8.0, cached_input_cost_per_mtok=0.5,
    )
    gateway = make_gateway([entry])
    async with serve(build_app(gateway, {"models": ["negotiated"]})) as client:
        response = await client.post("/chat", json={})
    expected = (800 * 2.0 + 200 * 0.5 + 100 * 8.0) / 1_000_000  # not the table's 2.5/1.25/10
    assert response.json()["cost_usd"] == expected
    assert response.headers["x-gate-cost-usd"] == f"{expected:.6f}"


@pytest.mark.anyio
async def test_override_gives_a_price_to_an_unknown_model(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("my-private-finetune", Reply(input_tokens=1_000_000, output_tokens=0))
    entry = openai_entry(
        up, "private", "my-private-finetune", input_cost_per_mtok=0.0, output_cost_per_mtok=1.0
    )
    gateway = make_gateway([entry])
    async with serve(build_app(gateway, {"models": ["private"]})) as client:
        response = await client.post("/chat", json={})
    # A free input price is a known price: zero here is true, not a stand-in for unknown.
    assert response.json()["cost_usd"] == 0.0
    assert response.headers["x-gate-cost-usd"] == "0.000000"


@pytest.mark.anyio
async def test_cached_tokens_priced_from_the_table(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(input_tokens=1000, output_tokens=0, cached_tokens=1000))
    gateway = make_gateway([openai_entry(up, "gpt", "gpt-4o")])
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        body = (await client.post("/chat", json={})).json()
    assert body["cost_usd"] == 1000 * 1.25 / 1_000_000  # every input token read from cache
