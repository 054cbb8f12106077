"""Prices and cost: genai-prices as the source, exact lookups, per-entry overrides, cache reads
and writes, tiers, upstream-billed cost, unknown never zero."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from hypothesis import given
from hypothesis import strategies as st

from _apps import anthropic_entry, build_app, make_gateway, openai_entry, serve
from conftest import Telemetry
from gate_mw import Price, PriceTable, Usage, pricing
from gate_mw.providers._base import billed_cost
from gate_mw.providers._prices import genai_lookup
from gate_mw.testing import FakeUpstream, Reply

BUNDLED = PriceTable.bundled()

# 21 popular current models, by the genai-prices provider id gate_mw's presets look them up with.
POPULAR = [
    ("openai", "gpt-5"), ("openai", "gpt-5-mini"), ("openai", "gpt-5-nano"), ("openai", "gpt-5.1"),
    ("openai", "o3"), ("openai", "o3-pro"), ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-opus-4-1"), ("anthropic", "claude-opus-4-5"), ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash"), ("google", "gemini-3-pro-preview"),
    ("google", "gemini-3-flash-preview"),
    ("deepseek", "deepseek-chat"), ("deepseek", "deepseek-reasoner"),
    ("x-ai", "grok-4"), ("x-ai", "grok-3"),
    ("mistral", "mistral-large-latest"),
]


def _source_cost(provider: str, model: str, usage: Usage) -> Decimal:
    reported = genai_prices.Usage(
        input_tokens=usage.input_tokens, cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens, output_tokens=usage.output_tokens,
    )
    return genai_prices.calc_price(reported, model, provider_id=provider).total_price


@pytest.mark.parametrize(("provider", "model"), POPULAR)
@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=12_000, output_tokens=800, cached_tokens=3_000, cache_write_tokens=2_000),
        # Past the 200k long-context threshold of the tiered models (Gemini 2.5 Pro, Sonnet 4.5).
        Usage(input_tokens=250_000, output_tokens=4_000, cached_tokens=50_000, reasoning_tokens=1_000),
    ],
    ids=["short", "long"],
)
def test_popular_models_cost_what_the_price_source_says(provider: str, model: str, usage: Usage) -> None:
    price = BUNDLED.price(model, provider)
    assert price is not None, model
    assert price.cost(usage) == pytest.approx(float(_source_cost(provider, model, usage)), rel=1e-9)


def test_o3_pro_is_not_priced_as_o3() -> None:
    o3, o3_pro = BUNDLED.price("o3", "openai"), BUNDLED.price("o3-pro", "openai")
    assert o3 is not None
    assert o3_pro is not None
    assert o3_pro.input > o3.input
    assert BUNDLED.price("o3-pro-2025-06-10", "openai") == o3_pro  # a dated snapshot is the model


@pytest.mark.parametrize(
    ("model", "provider"),
    [("my-private-finetune", None), ("gpt-4ox", "openai"), ("openrouter/auto", "openrouter"), ("", None)],
)
def test_an_unknown_model_is_unknown_not_zero(model: str, provider: str | None) -> None:
    assert BUNDLED.price(model, provider) is None
    assert BUNDLED.context_window(model, provider) is None


def test_provider_prefixed_ids_and_snapshots_are_the_source_s_to_match() -> None:
    assert BUNDLED.price("openai/gpt-4o", "openrouter") is not None
    assert BUNDLED.price("gpt-4o-2024-08-06", "openai") == BUNDLED.price("gpt-4o", "openai")
    assert BUNDLED.context_window("gpt-4o", "openai") == 128_000


def test_a_cache_write_is_priced_at_its_own_rate() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = Usage(input_tokens=10_000, output_tokens=100, cached_tokens=4_000, cache_write_tokens=5_000)
    assert price.cost(usage) == (1_000 * 3.0 + 4_000 * 0.3 + 5_000 * 3.75 + 100 * 15.0) / 1_000_000
    # No write price: writes cost as much as any input token.
    assert Price(3.0, 15.0, 0.3).cost(usage) == (6_000 * 3.0 + 4_000 * 0.3 + 100 * 15.0) / 1_000_000
    claude = BUNDLED.price("claude-sonnet-4-5", "anthropic")
    assert claude is not None
    assert claude.cache_write is not None
    assert claude.cache_write > claude.input


def test_cost_prices_cached_tokens_apart_and_bounds_odd_counts() -> None:
    price = Price(input=2.5, output=10.0, cached_input=1.25)
    usage = Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)
    assert price.cost(usage) == (600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1_000_000
    assert Price(2.5, 10.0).cost(usage) == (1000 * 2.5 + 200 * 10.0) / 1_000_000
    odd = Usage(input_tokens=10, output_tokens=0, cached_tokens=50, cache_write_tokens=50)
    assert price.cost(odd) == 10 * 1.25 / 1_000_000


def test_tiers_charge_a_long_prompt_wholly_at_the_tier_price() -> None:
    price = Price(1.0, 2.0, tiers=((200_000, Price(2.0, 4.0)),))
    assert price.cost(Usage(input_tokens=200_000, output_tokens=10)) == (200_000 * 1.0 + 10 * 2.0) / 1e6
    assert price.cost(Usage(input_tokens=200_001, output_tokens=10)) == (200_001 * 2.0 + 10 * 4.0) / 1e6
    assert price.estimate(300_000, 0) == 300_000 * 2.0 / 1e6


def test_custom_entries_match_exactly_then_the_source() -> None:
    table = PriceTable({"house-model": {"input": 1, "output": 3, "context_window": 4096}}, as_of="x")
    assert table.price("HOUSE-model") == Price(1.0, 3.0)
    assert table.price("acme/house-model-20250101") is None  # no prefix guessing
    assert table.context_window("house-model") == 4096
    assert table.price("gpt-4o", "openai") is not None
    assert PriceTable({"x": Price(1, 1)}, genai_prices=False).price("gpt-4o", "openai") is None


def test_a_price_that_changes_by_the_hour_says_when() -> None:
    # DeepSeek's off-peak discount: the lookup says when to look again.
    price, _, until = genai_lookup("deepseek-chat", "deepseek")
    assert price is not None
    assert until is not None
    _, _, fixed = genai_lookup("gpt-4o", "openai")
    assert fixed is None


@given(st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.dictionaries(st.just("cost"), st.one_of(st.floats(), st.text(max_size=10), st.none())),
    st.lists(st.integers(), max_size=2),
))
def test_billed_cost_is_a_finite_non_negative_number_or_none(value: Any) -> None:
    cost = billed_cost(value)
    assert cost is None or (cost >= 0 and cost != float("inf"))
    strict = billed_cost(value, free=False)
    assert strict is None or strict > 0


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
    assert "gate.cost.source" not in span.attributes
    assert span.attributes["gen_ai.usage.input_tokens"] == 500
    assert telemetry.points("gate.cost") == []


@pytest.mark.anyio
async def test_per_entry_price_overrides_the_table(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(input_tokens=1000, output_tokens=100, cached_tokens=200))
    entry = openai_entry(
        up, "negotiated", "gpt-4o",
        input_cost_per_mtok=2.0, output_cost_per_mtok=8.0, cached_input_cost_per_mtok=0.5,
    )
    gateway = make_gateway([entry], telemetry=telemetry.config)
    async with serve(build_app(gateway, {"models": ["negotiated"]})) as client:
        response = await client.post("/chat", json={})
    expected = (800 * 2.0 + 200 * 0.5 + 100 * 8.0) / 1_000_000  # not the table's 2.5/1.25/10
    assert response.json()["cost_usd"] == expected
    assert response.headers["x-gate-cost-usd"] == f"{expected:.6f}"
    [span] = telemetry.spans("chat ")
    assert span.attributes["gate.cost.source"] == "override"


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
async def test_cached_tokens_priced_from_the_table(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(input_tokens=1000, output_tokens=0, cached_tokens=1000))
    gateway = make_gateway([openai_entry(up, "gpt", "gpt-4o")], telemetry=telemetry.config)
    async with serve(build_app(gateway, {"models": ["gpt"]})) as client:
        body = (await client.post("/chat", json={})).json()
    assert body["cost_usd"] == 1000 * 1.25 / 1_000_000  # every input token read from cache
    [span] = telemetry.spans("chat ")
    assert span.attributes["gate.cost.source"] == "price_table"


@pytest.mark.anyio
async def test_anthropic_cache_writes_priced_at_the_write_rate(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.set_default("claude-sonnet-4-5", Reply(
        input_tokens=100, output_tokens=10, cached_tokens=1000, cache_write_tokens=2000,
    ))
    gateway = make_gateway([anthropic_entry(up, "claude", "claude-sonnet-4-5")], telemetry=telemetry.config)
    async with gateway:
        result = await gateway.client().chat([{"role": "user", "content": "hi"}])
    assert result.usage == Usage(3100, 10, cached_tokens=1000, cache_write_tokens=2000)
    source = _source_cost("anthropic", "claude-sonnet-4-5", result.usage)
    assert result.cost_usd == pytest.approx(float(source))
    assert result.cost_usd == pytest.approx((100 * 3 + 1000 * 0.3 + 2000 * 3.75 + 10 * 15) / 1e6)
    [span] = telemetry.spans("chat ")
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 2000


def test_lookups_stay_bounded_whatever_models_an_upstream_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pricing, "_MAX_CACHED", 50)
    table = PriceTable()
    snapshot = data_snapshot.get_snapshot()

    def sizes() -> tuple[int, ...]:
        return tuple(map(len, (table._found, snapshot._lookup_cache, snapshot._provider_cache,
                               snapshot._provider_misses)))

    table.price("gpt-4o", "openai")
    before = sizes()[1:]
    for n in range(120):
        assert table.price(f"made-up-model-{n}", "openai") is None
        assert table.price(f"gpt-4o-made-up-{n}") is None
    assert sizes()[0] <= 50
    assert sizes()[1:] == before  # genai-prices' own caches did not grow either
    assert table.price("gpt-4o", "openai") is not None


def test_a_price_past_its_change_is_looked_up_again() -> None:
    table = PriceTable()
    current = table.price("deepseek-chat", "deepseek")
    key = ("deepseek", "deepseek-chat")
    assert table._found[key].until is not None
    table._found[key] = pricing._Found(Price(99.0, 99.0), None, until=1.0)  # changed long ago
    assert table.price("deepseek-chat", "deepseek") == current
