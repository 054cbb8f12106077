"""Where a call's cost comes from: the upstream's own bill wins (OpenRouter `usage.cost`,
LiteLLM `x-litellm-response-cost`); otherwise the price of the model that actually answered."""

from __future__ import annotations

import pytest

from _apps import answer
from conftest import Telemetry
from gate_mw import Gateway, ModelEntry, PriceTable
from gate_mw.testing import FakeUpstream, Reply, Stream

pytestmark = pytest.mark.anyio

KEY = "sk-cost-test-555"
MESSAGES = [{"role": "user", "content": "hi"}]


def _entry(up: FakeUpstream, provider: str, model: str) -> ModelEntry:
    base = f"{up.url}/api/v1" if provider == "openrouter" else up.openai_base
    return ModelEntry(name="m", provider=provider, model=model, api_base=base, api_key_env="KEY")


@pytest.mark.parametrize("streamed", [False, True])
async def test_openrouter_billed_cost_wins_and_the_span_says_so(
    fake_upstream: FakeUpstream, telemetry: Telemetry, streamed: bool
) -> None:
    up = fake_upstream
    behaviour = Stream(text="a b", cost=0.004321) if streamed else Reply(text="a b", cost=0.004321)
    up.set_default("openai/gpt-4o", behaviour)
    gateway = Gateway([_entry(up, "openrouter", "openai/gpt-4o")], env={"KEY": KEY},
                      telemetry=telemetry.config)
    async with gateway:
        result = await answer(gateway.client(), MESSAGES, streamed=streamed)
    assert up.requests[0].json["usage"] == {"include": True}
    assert result.cost_usd == 0.004321
    assert result.cost_source == "upstream"
    (span,) = telemetry.spans("chat ")
    assert span.attributes["gen_ai.usage.cost"] == 0.004321
    assert span.attributes["gate.cost.source"] == "upstream"


@pytest.mark.parametrize(("header", "source"), [("0.0125", "upstream"), ("0", "price_table")])
async def test_litellm_response_cost_header_wins_unless_zero(
    fake_upstream: FakeUpstream, header: str, source: str
) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(input_tokens=1000, output_tokens=100,
                                   headers={"x-litellm-response-cost": header}))
    async with Gateway([_entry(up, "litellm", "gpt-4o")], env={"KEY": KEY}) as gateway:
        result = await gateway.client().chat(MESSAGES)
    assert result.cost_source == source
    # LiteLLM says 0 for models it has no price for: that is not taken as free.
    assert result.cost_usd == (0.0125 if source == "upstream" else (1000 * 2.5 + 100 * 10) / 1e6)


@pytest.mark.parametrize("streamed", [False, True])
async def test_openrouter_auto_is_priced_by_the_model_that_answered(
    fake_upstream: FakeUpstream, streamed: bool
) -> None:
    up = fake_upstream
    up.set_default("openrouter/auto", Reply(model="anthropic/claude-sonnet-4.5", input_tokens=2000,
                                            output_tokens=300))
    gateway = Gateway([_entry(up, "openrouter", "openrouter/auto")], env={"KEY": KEY})
    assert gateway.registry.deployments[0].price is None  # no price for a router, no guess
    async with gateway:
        first = await answer(gateway.client(), MESSAGES, streamed=streamed)
        again = await answer(gateway.client(), MESSAGES, streamed=streamed)
    price = PriceTable.bundled().price("anthropic/claude-sonnet-4.5", "openrouter")
    assert price is not None
    assert first.provider_model == "anthropic/claude-sonnet-4.5"
    assert first.cost_usd == price.cost(first.usage)
    assert first.cost_source == "price_table"
    assert again.cost_usd == first.cost_usd


async def test_an_unknown_answering_model_keeps_the_deployment_price(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Reply(model="gpt-4o-some-new-snapshot", input_tokens=1000, output_tokens=0))
    async with Gateway([_entry(up, "openai", "gpt-4o")], env={"KEY": KEY}) as gateway:
        result = await gateway.client().chat(MESSAGES)
    assert result.cost_usd == 1000 * 2.5 / 1e6


async def test_an_unknown_answer_from_a_router_stays_unknown(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("openrouter/auto", Reply(model="someone/new-model", input_tokens=1000))
    async with Gateway([_entry(up, "openrouter", "openrouter/auto")], env={"KEY": KEY}) as gateway:
        result = await gateway.client().chat(MESSAGES)
    assert result.cost_usd is None
    assert result.cost_source is None
