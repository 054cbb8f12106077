"""Spans and metrics per the GenAI semantic conventions, read from real SDK in-memory exporters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from _apps import MESSAGES, anthropic_entry, build_app, make_gateway, openai_entry, serve
from conftest import Telemetry
from gate_mw import AllAttemptsFailed, Gateway, PriceTable
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

# gpt-4o in the bundled table: USD per 1M tokens.
GPT_4O = {"input": 2.5, "cached_input": 1.25, "output": 10.0}
TOKENS = {"input_tokens": 1000, "cached_tokens": 400, "output_tokens": 200}
# (1000 - 400) * 2.5 + 400 * 1.25 + 200 * 10, per million tokens.
EXPECTED_COST = (600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1_000_000
DURATION_BUCKETS = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]
POLICY = {"models": ["primary", "backup"], "retries": 0, "max_tokens": 300}


def fallback_gateway(up: FakeUpstream, telemetry: Telemetry) -> Gateway:
    """primary (gpt-4o-mini) fails with a 500; backup (gpt-4o) answers with known usage."""
    up.script("gpt-4o-mini", Fault(500))
    up.set_default("gpt-4o", Reply(text="Paris.", model="gpt-4o-2024-08-06", **TOKENS))
    entries = [openai_entry(up, "primary", "gpt-4o-mini"), openai_entry(up, "backup", "gpt-4o")]
    return make_gateway(entries, telemetry=telemetry.config)


def by_attempt(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return sorted(spans, key=lambda span: span.attributes["gate.attempt"])


def test_bundled_gpt_4o_price_is_the_one_expected() -> None:
    price = PriceTable.bundled().price("gpt-4o")
    assert price is not None
    assert (price.input, price.cached_input, price.output) == (
        GPT_4O["input"], GPT_4O["cached_input"], GPT_4O["output"],
    )


async def test_attempt_spans_carry_genai_attributes(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    gateway = fallback_gateway(up, telemetry)
    async with serve(build_app(gateway, POLICY)) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    assert response.json()["cost_usd"] == EXPECTED_COST
    assert response.headers["x-gate-cost-usd"] == f"{EXPECTED_COST:.6f}"

    [route] = telemetry.spans("gate.route")
    assert route.name == "gate.route /chat"
    assert route.kind is SpanKind.INTERNAL
    assert route.attributes["gate.deployment"] == "backup"
    assert route.attributes["gate.attempts"] == 2
    assert route.attributes["gate.candidates"] == ("primary", "backup")
    assert route.attributes["gate.request_id"] == response.headers["x-request-id"]

    failed, answered = by_attempt(telemetry.spans("chat "))
    for span in (failed, answered):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == route.context.span_id

    assert failed.name == "chat gpt-4o-mini"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "500"
    assert failed.attributes["gate.attempt"] == 1
    assert failed.attributes["gate.chain.position"] == 1
    assert "gate.fallback.reason" not in failed.attributes
    assert "gen_ai.usage.input_tokens" not in failed.attributes

    expected: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 400,
        "gen_ai.usage.cost": EXPECTED_COST,
        "gen_ai.request.max_tokens": 300,
        "gen_ai.response.finish_reasons": ("stop",),
        "server.address": "127.0.0.1",
        "server.port": up.port,
        "gate.attempt": 2,
        "gate.chain.position": 2,
        "gate.fallback.reason": "server_error",
    }
    assert answered.name == "chat gpt-4o"
    assert {key: answered.attributes.get(key) for key in expected} == expected
    assert answered.attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert answered.status.status_code is StatusCode.UNSET
    assert "error.type" not in answered.attributes


async def test_anthropic_attempt_span(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    up = fake_upstream
    up.set_default("claude-3-5-sonnet-20241022", Reply(input_tokens=100, cached_tokens=50, output_tokens=10))
    gateway = make_gateway(
        [anthropic_entry(up, "claude", "claude-3-5-sonnet-20241022")], telemetry=telemetry.config
    )
    async with serve(build_app(gateway, {"models": ["claude"]})) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    price = PriceTable.bundled().price("claude-3-5-sonnet")
    assert price is not None
    assert price.cached_input is not None
    cost = (100 * price.input + 50 * price.cached_input + 10 * price.output) / 1_000_000
    [span] = telemetry.spans("chat ")
    assert span.name == "chat claude-3-5-sonnet-20241022"
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    # Anthropic reports cache reads apart; they count into input, as OpenAI counts them.
    assert span.attributes["gen_ai.usage.input_tokens"] == 150
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 50
    assert span.attributes["gen_ai.usage.output_tokens"] == 10
    assert span.attributes["gen_ai.usage.cost"] == pytest.approx(cost, rel=1e-12)


def _attribute_texts(telemetry: Telemetry) -> str:
    return " ".join(
        str(value) for span in telemetry.spans() for value in (span.attributes or {}).values()
    )


async def _answered_span(up: FakeUpstream, telemetry: Telemetry) -> ReadableSpan:
    """The attempt span of one /chat request answered "The answer is Paris."."""
    up.set_default("gpt-4o", Reply(text="The answer is Paris."))
    gateway = make_gateway([openai_entry(up, "gpt-4o")], telemetry=telemetry.config)
    async with serve(build_app(gateway, {"models": ["gpt-4o"]})) as client:
        assert (await client.post("/chat", json={})).status_code == 200
    [span] = telemetry.spans("chat ")
    return span


async def test_prompt_text_is_not_recorded_by_default(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    span = await _answered_span(fake_upstream, telemetry)
    assert "gen_ai.input.messages" not in span.attributes
    assert "gen_ai.output.messages" not in span.attributes
    recorded = _attribute_texts(telemetry)
    assert "capital of France" not in recorded
    assert "The answer is Paris." not in recorded


@pytest.mark.parametrize("telemetry", [True], indirect=True)
async def test_prompt_text_is_recorded_with_capture_content(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    span = await _answered_span(fake_upstream, telemetry)
    # The GenAI JSON schema: system instructions apart, messages as {role, parts}.
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the capital of France?"}]}
    ]
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [{
        "role": "assistant", "parts": [{"type": "text", "content": "The answer is Paris."}],
        "finish_reason": "stop",
    }]


def _points(telemetry: Telemetry, name: str, **attributes: Any) -> list[Any]:
    return [
        point for point in telemetry.points(name)
        if all(point.attributes.get(key) == value for key, value in attributes.items())
    ]


async def test_metrics_follow_genai_conventions(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    up = fake_upstream
    gateway = fallback_gateway(up, telemetry)
    async with serve(build_app(gateway, POLICY)) as client:
        assert (await client.post("/chat", json={})).status_code == 200

    [input_point] = _points(telemetry, "gen_ai.client.token.usage", **{"gen_ai.token.type": "input"})
    [output_point] = _points(telemetry, "gen_ai.client.token.usage", **{"gen_ai.token.type": "output"})
    assert (input_point.sum, input_point.count) == (1000, 1)
    assert (output_point.sum, output_point.count) == (200, 1)
    for point in (input_point, output_point):
        assert point.attributes["gen_ai.request.model"] == "gpt-4o"
        assert point.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
        assert point.attributes["gen_ai.provider.name"] == "openai"
        assert point.attributes["gen_ai.operation.name"] == "chat"

    durations = telemetry.points("gen_ai.client.operation.duration")
    assert len(durations) == 2
    for point in durations:
        assert list(point.explicit_bounds) == DURATION_BUCKETS
        assert point.count == 1
    [failed] = _points(telemetry, "gen_ai.client.operation.duration", **{"error.type": "500"})
    assert failed.attributes["gen_ai.request.model"] == "gpt-4o-mini"

    [cost] = telemetry.points("gate.cost")
    assert cost.value == EXPECTED_COST
    assert cost.attributes["gen_ai.request.model"] == "gpt-4o"


async def test_a_failed_call_ends_its_route_span_with_the_error(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.set_default("gpt-4o", Fault(503))
    gateway = make_gateway([openai_entry(up, "gpt-4o")], telemetry=telemetry.config)
    async with gateway:
        with pytest.raises(AllAttemptsFailed):
            await gateway.client(route="fails").chat(MESSAGES)
    assert not trace.get_current_span().get_span_context().is_valid  # the span is not left current
    [route] = telemetry.spans("gate.route")
    assert route.name == "gate.route fails"
    assert route.status.status_code is StatusCode.ERROR
    assert (route.status.description or "").startswith("AllAttemptsFailed: ")
    [event] = route.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"].endswith("AllAttemptsFailed")
    assert all(span.parent and span.parent.span_id == route.context.span_id
               for span in telemetry.spans("chat "))


async def test_cost_counter_sums_per_series_and_overflows_past_the_limit(
    fake_upstream: FakeUpstream, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gate_mw.telemetry._spans._MAX_SERIES", 1)
    up = fake_upstream
    for model in ("gpt-4o", "gpt-4o-mini"):
        up.set_default(model, Reply(input_tokens=1000, output_tokens=100))
    gateway = make_gateway(
        [openai_entry(up, "gpt-4o"), openai_entry(up, "gpt-4o-mini")], telemetry=telemetry.config
    )
    async with gateway:
        results = [
            await gateway.client().chat(MESSAGES, model=model)
            for model in ("gpt-4o", "gpt-4o", "gpt-4o-mini")
        ]
    costs = [result.cost_usd for result in results]
    assert all(cost for cost in costs)
    first, overflow = telemetry.points("gate.cost")
    assert first.value == pytest.approx(costs[0] + costs[1])  # one series, summed
    assert first.attributes["gen_ai.request.model"] == "gpt-4o"
    # A second series would pass the limit: its cost is kept, under the overflow attribute.
    assert overflow.value == pytest.approx(costs[2])
    assert dict(overflow.attributes) == {"otel.metric.overflow": True}


async def test_works_with_no_sdk_configured(fake_upstream: FakeUpstream) -> None:
    assert not isinstance(trace.get_tracer_provider(), SDKTracerProvider)
    up = fake_upstream
    up.set_default("gpt-4o", Reply(text="fine", input_tokens=10, output_tokens=2))
    gateway = Gateway([openai_entry(up, "gpt-4o")], env={"FAKE_KEY": "sk-test-nosdk-000"})
    async with serve(build_app(gateway, {"models": ["gpt-4o"]})) as client:
        response = await client.post("/chat", json={})
    assert response.status_code == 200
    assert response.json()["text"] == "fine"
    assert response.headers["x-gate-model"] == "gpt-4o"
    span = gateway.telemetry.tracer.start_span("probe")
    assert not span.is_recording()
    span.end()
