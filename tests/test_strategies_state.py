"""The routing state: the in-memory store (TTL, LRU bound, atomic operations), the latency
window and the complexity classifier."""

from __future__ import annotations

import pytest

from _routing import FakeClock, deployments, request_info, stub_entry
from gate_mw.routing import RoutingState, classify_complexity
from gate_mw.state import MemoryStore

pytestmark = pytest.mark.anyio


async def test_memory_store_expires_keys_after_their_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.set("k", "v", ttl=10)
    await store.set("forever", 1)
    clock.advance(9.9)
    assert await store.get_many(["k", "forever", "absent"]) == ["v", 1, None]
    clock.advance(0.1)
    assert await store.get("k") is None
    assert await store.get("forever") == 1


async def test_memory_store_counters_keep_the_ttl_of_their_creation() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    assert await store.incr({"a": 1, "b": 2.5}, ttl=60) == [1, 2.5]
    clock.advance(30)
    assert await store.incr({"a": 1}, ttl=60) == [2]
    clock.advance(30)  # 60 s after "a" was created: gone, whatever was added since
    assert await store.incr({"a": 1}, ttl=60) == [1]


async def test_memory_store_compare_and_set() -> None:
    store = MemoryStore()
    assert await store.compare_and_set("k", None, ("open", 1))  # absent counts as None
    assert not await store.compare_and_set("k", None, ("open", 2))
    assert await store.compare_and_set("k", ("open", 1), ("closed", 3))
    assert await store.get("k") == ("closed", 3)


async def test_memory_store_is_bounded_dropping_least_recently_used_keys() -> None:
    store = MemoryStore(max_keys=3)
    for key in ("a", "b", "c"):
        await store.set(key, key)
    await store.get("a")  # a is now the most recently used
    await store.set("d", "d")
    assert len(store) == 3
    assert await store.get_many(["a", "b", "c", "d"]) == ["a", None, "c", "d"]
    for i in range(1_000):  # e.g. one spend counter per caller
        await store.incr({f"spend:{i}": 1.0})
    assert len(store) == 3


async def test_latency_window_is_an_ewma_that_decays_with_time() -> None:
    clock = FakeClock()
    state = RoutingState(MemoryStore(clock=clock), alpha=0.5, half_life=10)
    (deployment,) = deployments([stub_entry("d")])
    await state.observe_latency("d", 1.0)
    await state.observe_latency("d", 3.0)  # no time passed: half old, half new
    (stats,) = await state.latency([deployment])
    assert stats is not None
    assert (stats.mean, stats.samples) == (2.0, 2)
    assert stats.p95 == pytest.approx(2.0 + 1.645 * 1.0)  # EW variance 0.5 * (0 + 0.5 * 4)
    clock.advance(10)  # one half-life: the old figure weighs 0.5 * 0.5
    await state.observe_latency("d", 6.0)
    (stats,) = await state.latency([deployment])
    assert stats is not None
    assert stats.mean == pytest.approx(0.25 * 2.0 + 0.75 * 6.0)
    assert await state.latency([deployment], stream=True) == [None]  # streams kept apart


@pytest.mark.parametrize(
    ("prompt", "tier"),
    [
        ("What's the capital of France?", "simple"),
        ("Why is the sky blue?", "medium"),
        ("word " * 600, "medium"),
        ("Explain and compare these two:\n```\na = 1\n```", "complex"),
        ("Prove it. " + "word " * 2_500, "complex"),
    ],
)
def test_complexity_heuristic(prompt: str, tier: str) -> None:
    assert classify_complexity(request_info(prompt=prompt)) == tier

