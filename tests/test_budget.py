"""Budget-aware downgrade: once a caller has spent a share of its budget, cheaper first."""

from __future__ import annotations

import pytest

from _apps import make_gateway
from _routing import FakeClock, priced
from conftest import Telemetry
from gate_mw import Budget, Gateway, RoutePolicy, StreamInterrupted
from gate_mw.routing import MemoryStore
from gate_mw.testing import FakeUpstream, Reply, Stream

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]
# 1,000 tokens in and out: bg-dear costs $0.04 a call, bg-cheap $0.0005.
POLICY = RoutePolicy(
    models=("bg-dear", "bg-cheap"), budget=Budget(limit_usd=0.1, downgrade_at=0.5, window=3600)
)


def budget_gateway(up: FakeUpstream, clock: FakeClock, telemetry: Telemetry) -> Gateway:
    up.set_default(None, Reply(input_tokens=1_000, output_tokens=1_000))
    return make_gateway(
        [priced(up, "bg-dear", 10.0, 30.0, quality=4), priced(up, "bg-cheap", 0.1, 0.4, quality=1)],
        state=MemoryStore(clock=clock), telemetry=telemetry.config,
    )


async def answered_by(gateway: Gateway, caller: str | None) -> str:
    return (await gateway.client(POLICY, caller=caller).chat(MESSAGES)).model


async def test_a_caller_over_the_threshold_is_routed_cheapest_first(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    clock = FakeClock()
    gateway = budget_gateway(fake_upstream, clock, telemetry)
    async with gateway:
        # $0.04, then $0.08: the threshold ($0.05) is crossed by the second call.
        assert [await answered_by(gateway, "alice") for _ in range(2)] == ["bg-dear", "bg-dear"]
        assert await gateway.router.state.spend("alice", 3600) == pytest.approx(0.08)
        assert await answered_by(gateway, "alice") == "bg-cheap"
        span = telemetry.spans("gate.route")[-1]
        assert span.attributes is not None
        assert span.attributes["gate.budget.downgraded"] is True
        assert span.attributes["gate.candidates"] == ("bg-cheap", "bg-dear")  # dear stays as fallback

        assert await answered_by(gateway, "bob") == "bg-dear"  # spend is per caller
        assert await answered_by(gateway, None) == "bg-dear"  # no caller key: no budget

        clock.advance(3600)  # a new window
        assert await answered_by(gateway, "alice") == "bg-dear"
    assert "gate.budget.downgraded" not in (telemetry.spans("gate.route")[-1].attributes or {})


async def test_spend_is_counted_once_some_route_has_a_budget(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    gateway = budget_gateway(fake_upstream, FakeClock(), telemetry)
    plain = RoutePolicy(models=("bg-dear",))
    async with gateway:
        await gateway.client(plain, caller="carol").chat(MESSAGES)
        assert await gateway.router.state.spend("carol", 3600) == 0.0
        gateway.validate_policy(POLICY, "budgeted")  # as app startup does for each route
        await gateway.client(plain, caller="carol").chat(MESSAGES)
        assert await gateway.router.state.spend("carol", 3600) == pytest.approx(0.04)


async def test_a_stream_cut_after_its_first_tokens_still_counts_as_spend(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    gateway = budget_gateway(fake_upstream, FakeClock(), telemetry)
    fake_upstream.script("bg-dear", Stream(text="one two three four five six", cut_after=3))
    async with gateway:
        stream = gateway.client(POLICY, caller="dave").stream(MESSAGES)
        with pytest.raises(StreamInterrupted) as raised:
            async for _ in stream:
                pass
        partial = raised.value.partial
        assert partial is not None
        assert partial.cost_usd
        assert await gateway.router.state.spend("dave", 3600) == pytest.approx(partial.cost_usd)
