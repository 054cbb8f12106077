"""Rate limits with headers, the response cache, and Redis faults (a closed port, fail-open
and fail-closed) through real calls."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from _apps import MESSAGES, make_gateway, openai_entry
from _stores import make_store
from conftest import Telemetry
from gate_mw import (
    Budget,
    Cache,
    ConfigError,
    Limit,
    NoCandidates,
    RateLimited,
    RoutePolicy,
    StateUnavailable,
    StreamInterrupted,
)
from gate_mw.state import RedisStore
from gate_mw.testing import FakeUpstream, Reply, Stream

pytestmark = pytest.mark.anyio
STORES = pytest.mark.parametrize("kind", ["memory", "redis"])


@STORES
async def test_an_rpm_limit_lets_exactly_its_count_through_and_says_when_to_retry(
    fake_upstream: FakeUpstream, kind: str
) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "m")], state=make_store(kind))
    policy = RoutePolicy(models=("m",), limits=(Limit(rpm=5, per="caller"), Limit(rpm=100, per="route")))
    async with gateway:
        gate = gateway.client(policy, route="/limited", caller="carol")
        for _ in range(5):
            await gate.chat(MESSAGES)
        headers = dict(gate.context.response_headers())
        assert headers[b"x-ratelimit-limit-requests"] == b"5"
        assert headers[b"x-ratelimit-remaining-requests"] == b"0"
        assert headers[b"x-ratelimit-reset-requests"].endswith(b"s")
        with pytest.raises(RateLimited) as refused:
            await gate.chat(MESSAGES)
        assert refused.value.limit == "caller:requests"
        assert refused.value.status_code == 429
        assert 1 <= refused.value.retry_after <= 12  # one request refills in 60/5 s
        await gateway.client(policy, route="/limited", caller="dan").chat(MESSAGES)  # per caller


@STORES
async def test_a_cache_hit_costs_nothing_and_keeps_its_model(
    fake_upstream: FakeUpstream, telemetry: Telemetry, kind: str
) -> None:
    gateway = make_gateway(
        [openai_entry(fake_upstream, "m", input_cost_per_mtok=1.0, output_cost_per_mtok=1.0)],
        state=make_store(kind), telemetry=telemetry.config,
    )
    policy = RoutePolicy(models=("m",), cache=Cache(ttl=60))
    async with gateway:
        first = await gateway.client(policy).chat(MESSAGES)
        gate = gateway.client(policy)
        hit = await gate.chat(MESSAGES)
        assert (hit.text, hit.model, hit.cached, hit.cost_usd) == (first.text, "m", True, 0.0)
        assert (b"x-gate-cache", b"hit") in gate.context.response_headers()
        assert not (await gateway.client(policy).chat(MESSAGES, cache="bypass")).cached
        assert not (await gateway.client(policy).chat(MESSAGES, cache="refresh")).cached
        assert not (await gateway.client(policy).chat([{"role": "user", "content": "other"}])).cached
        assert not (await gateway.client(policy).chat(MESSAGES, temperature=0.5)).cached
    assert telemetry.spans("gate.route")[1].attributes["gate.cache"] == "hit"  # type: ignore[index]
    results = sorted(p.attributes["gate.cache.result"] for p in telemetry.points("gate.cache"))  # type: ignore[attr-defined]
    assert results == ["hit", "miss"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_closed_port_fails_open_on_local_state_and_logs_once(
    fake_upstream: FakeUpstream, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.2)
    gateway = make_gateway([openai_entry(fake_upstream, "m")], state=store, telemetry=telemetry.config)
    policy = RoutePolicy(models=("m",), limits=(Limit(rpm=2, per="route"),))
    async with gateway:
        started = time.perf_counter()
        for _ in range(2):
            await gateway.client(policy, route="/open").chat(MESSAGES)
        with pytest.raises(RateLimited):  # the limit still holds, on local state
            await gateway.client(policy, route="/open").chat(MESSAGES)
        assert time.perf_counter() - started < 10
    assert store.degraded
    assert len([r for r in caplog.records if "unreachable" in r.message]) == 1
    assert telemetry.spans("gate.route")[-1].attributes["gate.state.degraded"] is True  # type: ignore[index]


async def test_a_closed_port_fails_closed_with_503(fake_upstream: FakeUpstream) -> None:
    store = RedisStore(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.2, on_error="closed")
    gateway = make_gateway([openai_entry(fake_upstream, "m")], state=store)
    async with gateway:
        policy = RoutePolicy(models=("m",), limits=(Limit(rpm=2, per="global"),))
        with pytest.raises(StateUnavailable) as refused:
            await gateway.client(policy).chat(MESSAGES)
    assert refused.value.status_code == 503


@STORES
async def test_a_deployment_at_its_limit_is_skipped_for_the_next(
    fake_upstream: FakeUpstream, kind: str
) -> None:
    gateway = make_gateway(
        [openai_entry(fake_upstream, "small"), openai_entry(fake_upstream, "big")], state=make_store(kind)
    )
    policy = RoutePolicy(models=("small", "big"), limits=(Limit(rpm=2, per="deployment"),))
    async with gateway:
        models = [(await gateway.client(policy).chat(MESSAGES)).model for _ in range(4)]
        with pytest.raises(NoCandidates, match="small: at its requests limit"):
            await gateway.client(policy).chat(MESSAGES)
    assert models == ["small", "small", "big", "big"]
    assert fake_upstream.calls("small") == 2


@STORES
async def test_a_cached_answer_replays_to_a_stream_in_token_sized_chunks(
    fake_upstream: FakeUpstream, kind: str
) -> None:
    text = "The capital of France is Paris, a city on the Seine."
    fake_upstream.set_default("m", Reply(text), stream=Stream(text))
    gateway = make_gateway([openai_entry(fake_upstream, "m")], state=make_store(kind))
    policy = RoutePolicy(models=("m",), cache=Cache(ttl=60, stream=True))
    async with gateway:
        first = gateway.client(policy).stream(MESSAGES)
        assert "".join([chunk async for chunk in first]) == text
        calls = fake_upstream.calls()
        gate = gateway.client(policy)
        replayed = gate.stream(MESSAGES)
        chunks = [chunk async for chunk in replayed]
        assert "".join(chunks) == text
        assert len(chunks) >= len(text) // 4  # token-sized, not one block
        assert max(len(chunk) for chunk in chunks) <= 5
        assert replayed.result is not None
        assert (replayed.result.cached, replayed.result.cost_usd, replayed.model) == (True, 0.0, "m")
        assert (b"x-gate-cache", b"hit") in gate.context.response_headers()
        hit = await gateway.client(policy).chat(MESSAGES)  # one cache for chat and stream
        assert (hit.text, hit.cached) == (text, True)
        assert fake_upstream.calls() == calls


async def test_a_cut_stream_is_never_cached(fake_upstream: FakeUpstream) -> None:
    fake_upstream.script("m", Stream("one two three four", cut_after=2))
    gateway = make_gateway([openai_entry(fake_upstream, "m")])
    policy = RoutePolicy(models=("m",), cache=Cache(ttl=60, stream=True))
    async with gateway:
        with pytest.raises(StreamInterrupted):
            async for _ in gateway.client(policy).stream(MESSAGES):
                pass
        assert not (await gateway.client(policy).chat(MESSAGES)).cached
    assert len(gateway.guard.cache) == 1  # the chat's answer, not the cut stream


async def test_single_flight_collapses_concurrent_identical_misses(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "m")])
    policy = RoutePolicy(models=("m",), cache=Cache(ttl=60, single_flight=True))
    fake_upstream.hold("m")
    async with gateway:
        calls = [asyncio.create_task(gateway.client(policy).chat(MESSAGES)) for _ in range(5)]
        assert await fake_upstream.wait_for_in_flight_async("m", 1)
        fake_upstream.release("m")
        results = await asyncio.gather(*calls)
    assert fake_upstream.calls("m") == 1
    assert sorted(result.cached for result in results) == [False, True, True, True, True]
    assert len({result.text for result in results}) == 1


async def test_gateway_wide_limits_apply_to_every_route(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway(
        [openai_entry(fake_upstream, "m")],
        limits=[Limit(rpm=3, per="global"), Budget(limit_usd=100, per="caller", window="month")],
    )
    async with gateway:
        for route in ("/a", "/b", "/c"):
            await gateway.client(RoutePolicy(models=("m",)), route=route, caller="hal").chat(MESSAGES)
        with pytest.raises(RateLimited) as refused:
            await gateway.client(RoutePolicy(models=("m",)), route="/d").chat(MESSAGES)
    assert refused.value.limit == "global:requests"


def test_a_bad_gateway_wide_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"limits.*rpm must be positive"):
        make_gateway([], limits=[Limit(rpm=-1)])
