"""The Redis state store against the in-memory one, on loopback: added median latency and
CPU per call, store round trips per call, and a cache hit's cost against a raw call.

    python bench/bench_state.py [--quick]

Calls go through a guarded route (a caller budget and an rpm limit, breakers) to the fake
upstream on loopback. Targets (ratios and counts from one run, side by side):
added median latency <= 0.5 ms, round trips per call <= 2, a cache hit cheaper than a call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from gate_mw import Budget, Cache, Gateway, Limit, ModelEntry, RoutePolicy
from gate_mw.state import MemoryStore, RedisStore, StateStore
from gate_mw.testing import FakeUpstream

MESSAGES = [{"role": "user", "content": "hello"}]
POLICY = RoutePolicy(
    models=("m",), max_tokens=64,
    budget=Budget(limit_usd=1e9, per="caller", window="month"),
    limits=(Limit(rpm=10**9, per="caller"),),
)


async def per_call(up: FakeUpstream, store: StateStore, policy: RoutePolicy, n: int) -> tuple[float, float]:
    """Median wall seconds and mean CPU seconds per call."""
    entry = ModelEntry(name="m", provider="openai", api_key_env="K", api_base=up.openai_base,
                       input_cost_per_mtok=1.0, output_cost_per_mtok=1.0)
    gateway = Gateway([entry], env={"K": "k"}, state=store)
    times: list[float] = []
    async with gateway:
        for _ in range(20):  # warm up: connections, scripts
            await gateway.client(policy, caller="bench").chat(MESSAGES)
        cpu = time.process_time()
        for _ in range(n):
            started = time.perf_counter()
            await gateway.client(policy, caller="bench").chat(MESSAGES)
            times.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu
    return statistics.median(times), cpu / n


async def main(quick: bool) -> int:
    n = 300 if quick else 2000
    ok = True
    async with FakeUpstream() as up:
        memory_s, memory_cpu = await per_call(up, MemoryStore(), POLICY, n)
        redis = RedisStore("redis://127.0.0.1:6379/0", prefix=f"bench:{uuid.uuid4().hex[:8]}:")
        before = redis.round_trips
        redis_s, redis_cpu = await per_call(up, redis, POLICY, n)
        trips = (redis.round_trips - before - 1) / (n + 20)  # less the one SCRIPT LOAD
        raw_s, _ = await per_call(up, MemoryStore(), RoutePolicy(models=("m",)), n)
        cached = POLICY.model_copy(update={"cache": Cache(ttl=600)})
        hit_s, _ = await per_call(up, MemoryStore(), cached, n)
        redis_hit = RedisStore("redis://127.0.0.1:6379/0", prefix=f"bench:{uuid.uuid4().hex[:8]}:")
        redis_hit_s, _ = await per_call(up, redis_hit, cached, n)
    added = (redis_s - memory_s) * 1000
    print(f"calls per store: {n}")
    print(f"memory store: median {memory_s * 1000:.3f} ms, CPU {memory_cpu * 1e6:.0f} us per call")
    print(f"redis store:  median {redis_s * 1000:.3f} ms, CPU {redis_cpu * 1e6:.0f} us per call")
    checks = [
        ("redis adds <= 0.5 ms at the median", added <= 0.5, f"{added:.3f} ms"),
        ("redis round trips per call <= 2", trips <= 2.0, f"{trips:.2f}"),
        ("memory cache hit cheaper than a raw call", hit_s < raw_s,
         f"hit {hit_s * 1000:.3f} ms vs raw call {raw_s * 1000:.3f} ms ({hit_s / raw_s:.2f}x)"),
        ("redis cache hit cheaper than a raw call", redis_hit_s < raw_s,
         f"hit {redis_hit_s * 1000:.3f} ms vs raw call {raw_s * 1000:.3f} ms ({redis_hit_s / raw_s:.2f}x)"),
    ]
    print(f"redis CPU added per call: {(redis_cpu - memory_cpu) * 1e6:.0f} us")
    for name, passed, figure in checks:
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {name}: {figure}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    raise SystemExit(asyncio.run(main(parser.parse_args().quick)))
