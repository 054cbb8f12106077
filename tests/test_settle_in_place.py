"""After a call, a `MemoryStore` as it is counts in place (a breaker's success, report rows):
no entry in the call's write. Any other store gets the same counts in the call's write."""

from __future__ import annotations

import pytest

from _stores import store  # noqa: F401 (fixture)
from gate_mw import Breaker
from gate_mw.insights import Insights
from gate_mw.routing._health import Health
from gate_mw.state import MemoryStore, StateStore, Writes

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
WINDOW_KEY = f"cbc:dep:{int(NOW // 60)}"


class _Watched(MemoryStore):
    """A subclass may watch or change operations: it gets the writes."""


async def test_a_success_is_counted_in_place_in_a_memory_store() -> None:
    memory = MemoryStore(clock=lambda: NOW)
    writes = Writes()
    for _ in range(2):
        Health(memory, Breaker(window=60)).success("dep", writes, reset=False)
    assert not writes
    assert await memory.get(WINDOW_KEY) == 2
    # The consecutive-failure count is zeroed in the call's write, as before.
    Health(memory, Breaker(window=60)).success("dep", writes, reset=True)
    assert writes.puts == {"cbf:dep": (0, None)}
    assert not writes.adds


async def test_any_other_store_gets_the_success_in_the_calls_write() -> None:
    watched = _Watched(clock=lambda: NOW)
    writes = Writes()
    Health(watched, Breaker(window=60)).success("dep", writes, reset=True)
    assert writes.adds == {WINDOW_KEY: (1, 60.0)}
    assert writes.puts == {"cbf:dep": (0, None)}
    assert await watched.get(WINDOW_KEY) is None
    await watched.write(writes)
    assert await watched.get(WINDOW_KEY) == 1


async def test_add_refreshes_the_expiry_and_keeps_the_bound() -> None:
    clock = [NOW]
    memory = MemoryStore(max_keys=2, clock=lambda: clock[0])
    memory.add("a", 1, 10.0, NOW)
    memory.add("b", 1, 10.0, NOW)
    memory.add("a", 2, 10.0, NOW + 5)  # "b" is now the least recently used
    memory.add("c", 1, None, NOW + 5)
    assert memory.counts == (2, 0)
    clock[0] = NOW + 12  # past "a"'s first expiry, before its refreshed one
    assert await memory.get_many(["a", "b", "c"]) == [3, None, 1]
    clock[0] = NOW + 16
    assert await memory.get_many(["a", "c"]) == [None, 1]
    memory.add("a", 1, 10.0, clock[0])  # expired: starts again
    assert await memory.get("a") == 1


async def test_an_overflowing_group_counts_as_other_in_every_store(store: StateStore) -> None:  # noqa: F811
    insights = Insights(store, [], max_groups=2)
    for caller in ("a", "b", "c", "b"):
        await insights.record("r", caller, None, None, ok=True, latency_s=0.1)
    await store.flush()
    report = await insights.report("day", by=("caller",))
    assert {row.group["caller"]: row.calls for row in report.rows} == {"a": 1, "(other)": 3}
