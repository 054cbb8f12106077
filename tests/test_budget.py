"""Budgets: cheaper models past the downgrade threshold, refusal at the limit, reservations
settled to the actual cost; on the memory store and on Redis."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from _apps import make_gateway
from _routing import FakeClock, priced
from _stores import make_store
from conftest import Telemetry
from gate_mw import (
    Budget,
    BudgetExceeded,
    Gateway,
    GatewayMiddleware,
    RoutePolicy,
    StreamInterrupted,
    route_policy,
)
from gate_mw.testing import FakeUpstream, Fault, Reply, Stream

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]
# 4 tokens in (the prompt estimate of MESSAGES), 1,000 out (max_tokens): estimates are
# exact. bg-dear costs $0.03004 a call, bg-cheap $0.0004004.
POLICY = RoutePolicy(
    models=("bg-dear", "bg-cheap"), max_tokens=1000,
    budget=Budget(limit_usd=0.2, downgrade_at=0.25, window=3600),
)
STORES = pytest.mark.parametrize("kind", ["memory", "redis"])


def budget_gateway(
    up: FakeUpstream, kind: str, clock: FakeClock, telemetry: Telemetry | None = None
) -> Gateway:
    up.set_default(None, Reply(input_tokens=4, output_tokens=1_000))
    return make_gateway(
        [priced(up, "bg-dear", 10.0, 30.0, quality=4), priced(up, "bg-cheap", 0.1, 0.4, quality=1)],
        state=make_store(kind, clock), **({"telemetry": telemetry.config} if telemetry else {}),
    )


async def answered_by(gateway: Gateway, caller: str | None, policy: RoutePolicy = POLICY) -> str:
    return (await gateway.client(policy, caller=caller).chat(MESSAGES)).model


@STORES
async def test_downgrade_first_then_refusal_with_a_typed_error(
    fake_upstream: FakeUpstream, telemetry: Telemetry, kind: str
) -> None:
    clock = FakeClock()
    gateway = budget_gateway(fake_upstream, kind, clock, telemetry)
    async with gateway:
        # $0.03 then $0.06: past the $0.05 threshold after the second call.
        assert [await answered_by(gateway, "alice") for _ in range(2)] == ["bg-dear", "bg-dear"]
        assert await answered_by(gateway, "alice") == "bg-cheap"
        span = telemetry.spans("gate.route")[-1]
        assert span.attributes is not None
        assert span.attributes["gate.budget.downgraded"] is True
        assert await answered_by(gateway, "bob") == "bg-dear"  # per caller
        assert await answered_by(gateway, None) == "bg-dear"  # no caller key: not counted
        # On a route with only the dear model (same caller budget), each call reserves
        # $0.03: refused once that no longer fits.
        dear_only = POLICY.model_copy(update={"models": ("bg-dear",)})
        answered = 0
        refusal: BudgetExceeded | None = None
        for _ in range(10):
            try:
                await answered_by(gateway, "alice", dear_only)
            except BudgetExceeded as exc:
                refusal = exc
                break
            answered += 1
        assert refusal is not None
        error = refusal
        assert error.limit == "caller:budget"
        assert error.limit_value == 0.2
        assert error.used + 0.03004 > 0.2  # the next call would not fit
        assert error.used <= 0.2
        assert error.status_code == 402
        assert 0 < error.reset <= 3600
        assert answered >= 1
        clock.advance(3600)  # a rolling window refills over its length
        assert await answered_by(gateway, "alice") == "bg-dear"


async def test_a_refusal_answers_402_json_naming_the_budget(fake_upstream: FakeUpstream) -> None:
    from fastapi import FastAPI

    gateway = budget_gateway(fake_upstream, "memory", FakeClock())
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.post("/chat")
    @route_policy(models=["bg-dear"], max_tokens=1000, budget=Budget(limit_usd=0.05, per="route", status=429))
    async def chat() -> dict[str, str]:
        from gate_mw import current_context

        context = current_context()
        assert context is not None
        return {"model": (await gateway.bind(context, context.scope).chat(MESSAGES)).model}

    async with gateway.lifespan(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
        assert (await client.post("/chat")).status_code == 200
        response = await client.post("/chat")
    assert response.status_code == 429  # configured; 402 by default
    body = json.loads(response.content)["error"]
    assert body["type"] == "budget_exceeded"
    assert body["limit"] == "route:budget"
    assert body["limit_value"] == 0.05
    assert body["used"] == pytest.approx(0.03004)
    assert body["reset_seconds"] > 0
    assert (body["budget"], body["limit_usd"]) == ("route:budget", 0.05)
    assert body["spent_usd"] == pytest.approx(0.03004)
    assert body["reset_at"].endswith("+00:00")
    assert "retry-after" in response.headers


@STORES
async def test_reservations_settle_to_the_actual_cost_and_failures_release_all(
    fake_upstream: FakeUpstream, kind: str
) -> None:
    gateway = budget_gateway(fake_upstream, kind, FakeClock())
    policy = RoutePolicy(models=("bg-dear",), max_tokens=4000, retries=0,
                         budget=Budget(limit_usd=1.0, window="day", per="global", downgrade_at=None))
    async with gateway:
        await answered_by(gateway, None, policy)
        fake_upstream.script("bg-dear", Fault(500))
        with pytest.raises(Exception, match="attempts failed"):
            await answered_by(gateway, None, policy)
        # One answered call at $0.03; the failed one reserved $0.12 and gave it all back.
        await gateway.guard.flush()  # settlements are written behind the call
        used = await gateway.guard.used(policy, route="background")
        assert used == {"global:budget": pytest.approx(0.03004)}


@STORES
async def test_a_stream_cut_after_its_first_tokens_settles_to_its_partial_cost(
    fake_upstream: FakeUpstream, kind: str
) -> None:
    gateway = budget_gateway(fake_upstream, kind, FakeClock())
    policy = RoutePolicy(models=("bg-dear",), max_tokens=1000,
                         budget=Budget(limit_usd=1.0, window="month", timezone="Europe/Paris"))
    fake_upstream.script("bg-dear", Stream(text="one two three four five six", cut_after=3))
    async with gateway:
        stream = gateway.client(policy, caller="dave").stream(MESSAGES)
        with pytest.raises(StreamInterrupted) as raised:
            async for _ in stream:
                pass
        partial = raised.value.partial
        assert partial.cost_usd
        await gateway.guard.flush()
        used = await gateway.guard.used(policy, route="background", caller="dave")
        assert used == {"caller:budget": pytest.approx(partial.cost_usd)}


async def test_overshoot_under_concurrency_is_bounded_by_calls_in_flight(fake_upstream: FakeUpstream) -> None:
    """500 concurrent calls on a budgeted route: the expensive model is chosen only while
    the threshold is not yet reserved, and spend never passes the limit."""
    gateway = budget_gateway(fake_upstream, "memory", FakeClock())
    limit, threshold = 2.0, 0.5  # $0.03004 a dear call: 16.6 before the threshold, 66.6 to the limit
    policy = RoutePolicy(models=("bg-dear", "bg-cheap"), max_tokens=1000,
                         budget=Budget(limit_usd=limit, downgrade_at=threshold / limit, per="route"))

    async def one() -> str:
        try:
            return await answered_by(gateway, None, policy)
        except BudgetExceeded:
            return "refused"

    async with gateway:
        models = await asyncio.gather(*(one() for _ in range(500)))
    dear = models.count("bg-dear")
    refused = models.count("refused")
    spent = dear * 0.04 + models.count("bg-cheap") * 0.0005
    print(f"dear={dear} cheap={models.count('bg-cheap')} refused={refused} spent=${spent:.4f}")
    # Reservations count calls in flight: the dear model gets the calls that start below
    # the threshold (17), never the 161 of decisions that ignore calls in flight; and with
    # all 500 in flight at once, only those whose reservation fits are let through.
    assert dear <= 17
    assert spent <= limit
    assert refused > 0


@STORES
async def test_a_call_cancelled_mid_flight_gives_its_reservation_back(
    fake_upstream: FakeUpstream, kind: str
) -> None:
    gateway = budget_gateway(fake_upstream, kind, FakeClock())
    policy = RoutePolicy(models=("bg-dear",), max_tokens=1000,
                         budget=Budget(limit_usd=1.0, window="day", per="route", downgrade_at=None))
    fake_upstream.hold("bg-dear")
    async with gateway:
        call = asyncio.create_task(gateway.client(policy, route="/cancel").chat(MESSAGES))
        assert await fake_upstream.wait_for_in_flight_async("bg-dear", 1)
        assert await gateway.guard.used(policy, route="/cancel") == {
            "route:budget": pytest.approx(0.03004)  # reserved while in flight
        }
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await gateway.guard.flush()
        assert await gateway.guard.used(policy, route="/cancel") == {"route:budget": pytest.approx(0.0)}
        fake_upstream.release("bg-dear")
