"""Atomicity: hundreds of concurrent reservations, settlements and counter additions, with
exact final totals; one suite, run against the memory store and the real Redis."""

from __future__ import annotations

import asyncio
import random

import pytest

from _stores import store  # noqa: F401 (fixture)
from gate_mw.state import Check, StateStore, Writes

pytestmark = pytest.mark.anyio
N = 300


async def test_concurrent_reservations_never_overshoot_a_fixed_counter(store: StateStore) -> None:  # noqa: F811
    check = Check("bud:{c:atom}:day", limit=100.0, amount=1.0, period=0.0, ttl=60.0)
    verdicts = await asyncio.gather(*(store.reserve([check]) for _ in range(N)))
    assert sum(v.allowed for v in verdicts) == 100
    assert float(await store.get(check.key)) == 100.0
    refused = [v for v in verdicts if not v.allowed]
    assert all(v.refused == 0 and v.used == (100.0,) for v in refused)


async def test_reserve_then_settle_gives_exact_totals(store: StateStore) -> None:  # noqa: F811
    rng = random.Random(7)
    actual = [rng.randrange(0, 50) / 100 for _ in range(N)]
    check = Check("bud:{r:/atom}:day", limit=1_000.0, amount=0.5, period=0.0, ttl=60.0)

    async def one(cost: float) -> None:
        verdict = await store.reserve([check])
        assert verdict.allowed
        writes = Writes()
        writes.add(check.key, cost - check.amount, check.ttl)
        await store.write(writes)

    await asyncio.gather(*(one(cost) for cost in actual))
    await store.flush()
    assert float(await store.get(check.key)) == pytest.approx(sum(actual))


async def test_all_or_nothing_across_several_limits(store: StateStore) -> None:  # noqa: F811
    wide = Check("rl:{g}:requests:day", limit=1_000.0, amount=1.0, period=86_400.0, ttl=60.0)
    narrow = Check("rl:{c:atom}:requests:60", limit=10.0, amount=1.0, period=60.0, ttl=60.0)
    verdicts = await asyncio.gather(*(store.reserve([wide, narrow]) for _ in range(N)))
    assert sum(v.allowed for v in verdicts) == 10
    # The refused ones took nothing from the wide limit: exactly 10 of 1,000 used.
    (found,) = (await store.reserve([wide._replace(amount=0.0)])).used
    assert found == pytest.approx(10.0, abs=0.1)  # less what leaked since


async def test_gcra_allows_exactly_its_burst_and_says_when_to_retry(store: StateStore) -> None:  # noqa: F811
    check = Check("rl:{c:gcra}:requests:60", limit=20.0, amount=1.0, period=60.0, ttl=60.0)
    verdicts = await asyncio.gather(*(store.reserve([check]) for _ in range(N)))
    assert sum(v.allowed for v in verdicts) == 20


async def test_incr_and_compare_and_set_keep_their_semantics(store: StateStore) -> None:  # noqa: F811
    results = await asyncio.gather(*(store.incr({"report:{c:x}:n": 1, "report:total": 2}) for _ in range(N)))
    assert max(r[0] for r in results) == N
    assert await store.get_many(["report:{c:x}:n", "report:total", "absent"]) == [N, 2 * N, None]
    wins = await asyncio.gather(*(store.compare_and_set("cb:atom", None, ["open", i]) for i in range(50)))
    assert sum(wins) == 1
    current = await store.get("cb:atom")
    assert await store.compare_and_set("cb:atom", current, ["closed", None], ttl=30)
    assert await store.get("cb:atom") == ["closed", None]


async def test_the_same_suite_covers_writes_with_values(store: StateStore) -> None:  # noqa: F811
    writes = Writes()
    writes.put("cache:{c:w}", {"text": "hi", "n": [1, 2]}, 30)
    writes.add("arm:e:a:calls", 1)
    writes.add("arm:e:a:calls", 2)
    await store.write(writes)
    assert await store.get_many(["cache:{c:w}", "arm:e:a:calls"]) == [{"text": "hi", "n": [1, 2]}, 3]


async def test_concurrent_latency_samples_are_all_counted(store: StateStore) -> None:  # noqa: F811
    from gate_mw.state import Observation

    async def one(seconds: float) -> None:
        writes = Writes()
        writes.observe("lat:atom", Observation(seconds, 0.3, 60.0, 600.0))
        await store.write(writes)

    await asyncio.gather(*(one(0.1 + (i % 3) * 0.1) for i in range(N)))
    await store.flush()
    mean, variance, samples, _ = await store.get("lat:atom")
    assert samples == N  # every sample, none lost to a race
    assert 0.1 <= mean <= 0.3
    assert variance >= 0
