"""The Redis store on a real three-node Redis Cluster started on loopback: every operation,
with keys of one operation sharing a hash tag and the others spread over the nodes.

The client is given to the store unopened: the store opens one connection per node before
its first operation (`state/_batch.py: open_cluster`), past redis-py's opening race.
Concurrency is covered by the atomicity suite on a single Redis, including the Cluster
code path."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from _stores import redis_cluster  # noqa: F401 (fixture)
from gate_mw.state import Check, Observation, RedisStore, Writes

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cluster_store(redis_cluster: tuple[str, int]) -> AsyncIterator[RedisStore]:  # noqa: F811
    from redis.asyncio.cluster import RedisCluster

    host, port = redis_cluster
    client = RedisCluster(host=host, port=port)
    store = RedisStore(client=client, prefix=f"test:{uuid.uuid4().hex[:12]}:", timeout=10.0)
    assert store.cluster
    yield store
    await store.aclose()
    await client.aclose()


async def test_reservations_are_all_or_nothing_across_slots(cluster_store: RedisStore) -> None:
    caller = Check("rl:{c:ann}:requests:60", 5, 1, 60, 60)
    route = Check("rl:{r:/x}:requests:day", 100, 1, 86_400, 86_400)
    budget = Check("bud:{g}:day:UTC:2026-01-01", 1.0, 0.3, 0, 600)
    verdicts = [await cluster_store.reserve([caller, route, budget], ["cb:x", "cache:y"]) for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert {v.refused for v in verdicts[3:]} == {2}  # the budget: 0.9 + 0.3 > 1.0
    assert verdicts[0].reads == [None, None]
    assert not cluster_store.degraded
    # The refused calls gave back what the other slots took: 3 requests, not 5.
    (used,) = (await cluster_store.reserve([route._replace(amount=0.0)])).used
    assert used == pytest.approx(3, abs=0.01)
    assert float(await cluster_store.get(budget.key)) == pytest.approx(0.9)


async def test_writes_counters_values_and_samples(cluster_store: RedisStore) -> None:
    writes = Writes()
    writes.add("cbc:x:1", 1, 60)
    writes.add("arm:e:a:calls", 2)
    writes.put("cache:abc", {"text": "hi"}, 60)
    writes.observe("lat:x", Observation(0.2, 0.3, 60.0, 600.0))
    await cluster_store.write(writes)
    await cluster_store.flush()
    found = await cluster_store.get_many(["cache:abc", "cbc:x:1", "arm:e:a:calls"])
    assert found == [{"text": "hi"}, 1, 2]
    mean, _, samples, _ = await cluster_store.get("lat:x")
    assert (mean, samples) == (0.2, 1)
    assert await cluster_store.incr({"report:a": 1, "report:b": 2}) == [1.0, 2.0]
    assert await cluster_store.compare_and_set("cb:x", None, ["open", "r", 1.0, 2.0])
    assert not await cluster_store.compare_and_set("cb:x", None, ["open", "r", 1.0, 2.0])
    assert await cluster_store.get("cb:x") == ["open", "r", 1.0, 2.0]
