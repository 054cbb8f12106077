"""Cooldowns (per-deployment circuit breakers): open after failures, skip while open, one
half-open probe, close on success; state readable through `Gateway.cooldowns()`."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from _apps import build_app, make_gateway, openai_entry, serve
from _routing import FakeClock
from gate_mw import Breaker, Gateway, NoCandidates, RoutePolicy
from gate_mw.routing import CooldownState
from gate_mw.state import MemoryStore
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "hi"}]
POLICY = RoutePolicy(models=("cd-a", "cd-b"), retries=0)


def breaker_gateway(up: FakeUpstream, clock: FakeClock, breaker: Breaker | None = None) -> Gateway:
    return make_gateway(
        [openai_entry(up, "cd-a"), openai_entry(up, "cd-b")],
        state=MemoryStore(clock=clock),
        breaker=breaker or Breaker(failures=3, cooldown=30),
    )


async def state_of(gateway: Gateway, deployment: str) -> CooldownState:
    return next(s for s in await gateway.cooldowns() if s.deployment == deployment)


async def tried(gateway: Gateway) -> list[str]:
    result = await gateway.client(POLICY).chat(MESSAGES)
    return [attempt.deployment for attempt in result.attempts]


async def test_opens_after_consecutive_failures_and_is_skipped(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("cd-a", Fault(503))
    clock = FakeClock()
    gateway = breaker_gateway(up, clock)
    async with gateway:
        assert await state_of(gateway, "cd-a") == CooldownState("cd-a", "closed")
        for n in (1, 2):
            assert await tried(gateway) == ["cd-a", "cd-b"]
            assert (await state_of(gateway, "cd-a")).consecutive_failures == n
        assert (await state_of(gateway, "cd-a")).state == "closed"
        assert await tried(gateway) == ["cd-a", "cd-b"]  # the third failure opens it
        opened = await state_of(gateway, "cd-a")
        assert (opened.state, opened.since, opened.until) == ("open", clock.now, clock.now + 30)
        assert opened.reason == "3 consecutive failures (last: server_error)"
        assert (await state_of(gateway, "cd-b")).state == "closed"

        clock.advance(29)
        for _ in range(5):  # while open: never tried, not even first
            assert await tried(gateway) == ["cd-b"]
    assert up.calls("cd-a") == 3


async def test_half_open_lets_exactly_one_probe_through_then_closes(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("cd-a", Fault(500), Fault(500), Fault(500))
    up.set_default("cd-a", Reply(text="recovered"))
    clock = FakeClock()
    gateway = breaker_gateway(up, clock)
    results: list[list[str]] = []

    async def call() -> None:
        results.append(await tried(gateway))

    async with gateway:
        for _ in range(3):
            await tried(gateway)
        assert (await state_of(gateway, "cd-a")).state == "open"
        clock.advance(31)  # the cooldown is over: the next call may probe

        up.hold("cd-a")
        async with anyio.create_task_group() as group:
            group.start_soon(call)  # the probe, held by the upstream
            assert await up.wait_for_in_flight_async("cd-a", 1)
            probing = await state_of(gateway, "cd-a")
            assert (probing.state, probing.since) == ("half_open", clock.now)
            for _ in range(3):  # meanwhile everyone else skips it
                await call()
            assert up.calls("cd-a") == 4  # three failures and one probe
            up.release("cd-a")
        closed = await state_of(gateway, "cd-a")
        assert (closed.state, closed.since, closed.consecutive_failures) == ("closed", clock.now, 0)
        assert await tried(gateway) == ["cd-a"]
    assert sorted(results) == [["cd-a"], ["cd-b"], ["cd-b"], ["cd-b"]]


async def test_a_failed_probe_opens_it_again(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("cd-a", Fault(500))
    clock = FakeClock()
    gateway = breaker_gateway(up, clock)
    async with gateway:
        for _ in range(3):
            await tried(gateway)
        clock.advance(31)
        assert await tried(gateway) == ["cd-a", "cd-b"]  # the probe fails
        reopened = await state_of(gateway, "cd-a")
        assert (reopened.state, reopened.since, reopened.until) == ("open", clock.now, clock.now + 30)
        assert reopened.reason == "half-open probe failed (server_error)"
        assert await tried(gateway) == ["cd-b"]


async def test_a_cancelled_probe_frees_the_slot(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("cd-a", Fault(500), Fault(500), Fault(500))
    clock = FakeClock()
    gateway = breaker_gateway(up, clock)
    async with gateway:
        for _ in range(3):
            await tried(gateway)
        clock.advance(31)
        up.hold("cd-a")
        async with anyio.create_task_group() as group:
            group.start_soon(tried, gateway)
            assert await up.wait_for_in_flight_async("cd-a", 1)
            group.cancel_scope.cancel()
        up.release("cd-a")
        assert (await state_of(gateway, "cd-a")).state == "open"
        assert await tried(gateway) == ["cd-a"]  # the next call probes, and closes it
        assert (await state_of(gateway, "cd-a")).state == "closed"


async def test_opens_on_failure_rate_over_the_window(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("cd-a", Reply(), Fault(500), Reply(), Fault(500), Reply(), Fault(500))
    clock = FakeClock()
    breaker = Breaker(failures=10, failure_rate=0.5, min_calls=6, window=60)
    gateway = breaker_gateway(up, clock, breaker)
    async with gateway:
        for _ in range(5):
            await tried(gateway)
        assert (await state_of(gateway, "cd-a")).state == "closed"  # 2 of 5: too few calls
        await tried(gateway)
        opened = await state_of(gateway, "cd-a")
        assert opened.state == "open"
        assert opened.reason == "3 of 6 calls failed within 60s (last: server_error)"


async def test_the_callers_own_errors_do_not_count(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("cd-a", Fault(400, message="bad temperature"))
    gateway = breaker_gateway(up, FakeClock(), Breaker(failures=1))
    app = build_app(gateway, {"models": ["cd-a", "cd-b"], "retries": 0})
    async with serve(app) as client:
        for _ in range(3):
            assert (await client.post("/chat", json={})).status_code == 400
        assert (await state_of(gateway, "cd-a")).state == "closed"


async def test_nothing_left_to_try_is_a_typed_error_with_reasons(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default(None, Fault(500))
    clock = FakeClock()
    gateway = breaker_gateway(up, clock, Breaker(failures=1, cooldown=30))
    app = build_app(gateway, {"models": ["cd-a", "cd-b"], "retries": 0})
    async with serve(app) as client:
        first = await client.post("/chat", json={})
        assert first.status_code == 502
        response = await client.post("/chat", json={})
    assert response.status_code == 503
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "no_candidates"
    assert set(error["reasons"]) == {"cd-a", "cd-b"}
    assert error["reasons"]["cd-a"].startswith(f"cooling down until {clock.now + 30:.3f}")
    with pytest.raises(NoCandidates):
        await gateway.client(POLICY).chat(MESSAGES)
