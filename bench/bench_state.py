"""The Redis state store against the in-memory one, on loopback: added median latency and
CPU per call, store round trips per call, and a cache hit's cost against a raw call.

    python bench/bench_state.py [--quick]

Calls go through a guarded route (a caller budget, an rpm limit, breakers) to the fake
upstream on loopback. The variants are called in turn, call by call, so that other load on
a shared machine falls on all of them alike. Targets: the Redis store adds at most 0.5 ms
at the median and makes at most 2 round trips per call; a cache hit costs less than a call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from gate_mw import Budget, Cache, Gateway, Limit, ModelEntry, RoutePolicy
from gate_mw.state import MemoryStore, RedisStore, StateStore
from gate_mw.testing import FakeUpstream

MESSAGES = [{"role": "user", "content": "hello"}]
GUARDED = RoutePolicy(
    models=("m",), max_tokens=64,
    budget=Budget(limit_usd=1e9, per="caller", window="month"),
    limits=(Limit(rpm=10**9, per="caller"),),
)
CACHED = GUARDED.model_copy(update={"cache": Cache(ttl=600)})
URL = "redis://127.0.0.1:6379/0"


def gateway(up: FakeUpstream, store: StateStore) -> Gateway:
    entry = ModelEntry(name="m", provider="openai", api_key_env="K", api_base=up.openai_base,
                       input_cost_per_mtok=1.0, output_cost_per_mtok=1.0)
    return Gateway([entry], env={"K": "k"}, state=store)


async def main(quick: bool) -> int:
    n = 400 if quick else 3000
    redis = RedisStore(URL, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    redis_cache = RedisStore(URL, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    async with FakeUpstream() as up, contextlib.AsyncExitStack() as stack:
        variants = {
            "memory": (gateway(up, MemoryStore()), GUARDED),
            "redis": (gateway(up, redis), GUARDED),
            "raw call (no guards)": (gateway(up, MemoryStore()), RoutePolicy(models=("m",))),
            "memory cache hit": (gateway(up, MemoryStore()), CACHED),
            "redis cache hit": (gateway(up, redis_cache), CACHED),
        }
        for gw, _ in variants.values():
            await stack.enter_async_context(gw)
        times: dict[str, list[float]] = {name: [] for name in variants}
        floor: list[float] = []  # one bare redis-py GET: what a round trip costs right now
        cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
        for rnd in range(n + 20):
            for name, (gw, policy) in variants.items():
                if rnd == 20 and name == "redis":
                    trips_before = redis.round_trips
                started, cpu_started = time.perf_counter(), time.process_time()
                await gw.client(policy, caller="bench").chat(MESSAGES)
                if rnd >= 20:  # the first calls warm connections, scripts and the cache
                    times[name].append(time.perf_counter() - started)
                    cpu[name] += time.process_time() - cpu_started
            started = time.perf_counter()
            await redis.client.get("bench:floor")
            floor.append(time.perf_counter() - started)
        await redis.flush()
        trips = (redis.round_trips - trips_before) / n
    median = {name: statistics.median(found) * 1000 for name, found in times.items()}
    print(f"calls per variant: {n}, interleaved\n")
    print(f"{'variant':22s} {'median ms':>10s} {'CPU us/call':>12s}")
    for name in variants:
        print(f"{name:22s} {median[name]:10.3f} {cpu[name] / n * 1e6:12.0f}")
    added = median["redis"] - median["memory"]
    added_cpu = (cpu["redis"] - cpu["memory"]) / n * 1e6
    raw = median["raw call (no guards)"]
    checks = [
        ("redis store adds <= 0.5 ms at the median", added <= 0.5, f"{added:+.3f} ms"),
        ("redis store round trips per call <= 2", trips <= 2.0, f"{trips:.2f}"),
        ("memory cache hit costs less than a raw call", median["memory cache hit"] < raw,
         f"{median['memory cache hit'] / raw:.2f}x of {raw:.3f} ms"),
        ("redis cache hit costs less than a raw call", median["redis cache hit"] < raw,
         f"{median['redis cache hit'] / raw:.2f}x of {raw:.3f} ms"),
    ]
    print(f"\ninfo  redis store CPU added per call: {added_cpu:+.0f} us")
    floor_ms = statistics.median(floor) * 1000
    print(f"info  one bare redis-py GET round trip meanwhile: median {floor_ms:.3f} ms")
    for name, passed, figure in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {figure}")
    return 0 if all(passed for _, passed, _ in checks) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    raise SystemExit(asyncio.run(main(parser.parse_args().quick)))
