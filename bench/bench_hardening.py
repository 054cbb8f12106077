"""Benchmark of the hardening targets: bounded memory and CPU against hostile traffic.

(a) Memory: 200,000 distinct callers, each with an 8 KB caller key, call through
    `GatewayMiddleware` under a route with a budget (so spend is kept per caller) while
    one deployment's breaker is open. Target: RSS grows by under 150 MB, and the breaker is
    still open at the end. In process, driving the ASGI app (no sockets), on the
    simulated provider with no latency: the gateway's own state is what is measured.
(b) CPU: a streamed reply whose first SSE line is 48 MB long, from a fake upstream in
    another process, over loopback. Target: refused (the call falls back) in under 0.5 s
    of this process's CPU.
(c) Memory: a 200 MB error body, likewise. Target: RSS grows by under 50 MB.

Run: ``python bench/bench_hardening.py [--quick]`` (quick: 20,000 callers). It reports
figures and PASS/FAIL per target; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import sys
import time
from collections.abc import Iterator, MutableMapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Run as a script: make bench/ and gate_mw (from src/) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate_mw import Breaker, Gateway, GatewayMiddleware, ModelEntry, Simulation
from gate_mw._binding import gate_for_scope
from gate_mw.routing import MemoryStore
from gate_mw.testing import FakeUpstream, Raw

CALLERS = 200_000
CALLER_KEY_BYTES = 8 * 1024
MAX_RSS_GROWTH_MB = 150.0
SSE_LINE_BYTES = 48 * 2**20
MAX_SSE_CPU_S = 0.5
ERROR_BODY_BYTES = 200 * 2**20
MAX_ERROR_RSS_MB = 50.0
MESSAGES = [{"role": "user", "content": "hi"}]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def verdict(ok: bool, text: str) -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {text}")


# -- (a) many callers ------------------------------------------------------------------


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await gate_for_scope(scope).chat(MESSAGES)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def many_callers(callers: int) -> None:
    instant = Simulation(latency=0, ttft=0)
    models = [
        ModelEntry(name="flaky", simulation=Simulation(latency=0, error_rate=1.0),
                   input_cost_per_mtok=1, output_cost_per_mtok=1),
        ModelEntry(name="steady", simulation=instant, input_cost_per_mtok=1, output_cost_per_mtok=1),
    ]
    store = MemoryStore()
    gateway = Gateway(
        models, state=store, breaker=Breaker(cooldown=3600),
        default_policy={"models": ["flaky", "steady"], "retries": 0, "budget": {"limit_usd": 1000.0}},
    )
    app = GatewayMiddleware(_app, gateway)  # type: ignore[arg-type]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    def scope(caller: bytes) -> dict[str, Any]:
        return {"type": "http", "method": "POST", "path": "/", "headers": [(b"x-gate-caller", caller)]}

    pad = b"k" * CALLER_KEY_BYTES
    async with gateway:
        for n in range(5):  # flaky's breaker opens
            await app(scope(b"warm-%d" % n), receive, send)
        for n in range(2000):  # warm up allocators and caches before the baseline
            await app(scope(b"w%d-" % n + pad), receive, send)
        gc.collect()
        before = rss_mb()
        started = time.perf_counter()
        for n in range(callers):
            await app(scope(b"%d-" % n + pad), receive, send)
        elapsed = time.perf_counter() - started
        gc.collect()
        growth = rss_mb() - before
        state = {s.deployment: s.state for s in await gateway.cooldowns()}
    print(
        f"(a) {callers:,} callers with {CALLER_KEY_BYTES // 1024} KB keys: {elapsed:.1f} s, "
        f"RSS +{growth:.1f} MB, caller keys kept {store.counts[1]:,}, "
        f"routing keys {store.counts[0]:,}, breaker of flaky: {state['flaky']}"
    )
    verdict(growth < MAX_RSS_GROWTH_MB, f"RSS growth {growth:.1f} MB (target < {MAX_RSS_GROWTH_MB:g} MB)")
    verdict(state["flaky"] == "open", f"the open breaker survived: {state['flaky']}")


# -- (b, c) hostile upstream -------------------------------------------------------------


def _serve(conn: Connection, kind: str) -> None:
    """In a child process: a fake upstream whose primary model misbehaves as `kind` says."""
    if kind == "sse":
        hostile = Raw.sse(b"data: {\"x\": \"" + b"y" * SSE_LINE_BYTES)
    else:
        hostile = Raw.response(500, b"e" * ERROR_BODY_BYTES, content_type="text/plain")
    with FakeUpstream(record=False) as up:
        up.set_default("hostile", hostile)
        conn.send(up.openai_base)
        conn.recv()


@contextlib.contextmanager
def hostile_upstream(kind: str) -> Iterator[str]:
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, kind), daemon=True)
    process.start()
    try:
        yield str(parent.recv())
    finally:
        parent.send("stop")
        process.join(10)


async def hostile(kind: str) -> tuple[float, float, float, str]:
    """(process CPU s, wall s, RSS growth MB, answering model) of one call."""
    with hostile_upstream(kind) as base:
        models = [
            ModelEntry(name="hostile", provider="openai", api_base=base, api_key_env="KEY"),
            ModelEntry(name="fine", provider="openai", model="fine", api_base=base, api_key_env="KEY"),
        ]
        policy = {"models": ["hostile", "fine"], "retries": 0}
        gateway = Gateway(models, env={"KEY": "sk-bench"}, default_policy=policy)
        async with gateway:
            gate = gateway.client()
            await gate.chat(MESSAGES, model="fine")  # connections and imports warm
            gc.collect()
            before, cpu, wall = rss_mb(), time.process_time(), time.perf_counter()
            if kind == "sse":
                async with gate.stream(MESSAGES) as stream:
                    async for _ in stream:
                        pass
                model = stream.model
            else:
                model = (await gate.chat(MESSAGES)).model
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            growth = rss_mb() - before
    return cpu, wall, growth, str(model)


async def main(quick: bool) -> None:
    await many_callers(CALLERS // 10 if quick else CALLERS)
    cpu, wall, growth, model = await hostile("sse")
    print(f"(b) a {SSE_LINE_BYTES // 2**20} MB SSE line: refused in {cpu:.3f} s CPU ({wall:.3f} s wall), "
          f"RSS +{growth:.1f} MB, answered by {model}")
    target = f"target < {MAX_SSE_CPU_S:g} s"
    verdict(cpu < MAX_SSE_CPU_S and model == "fine", f"refused in {cpu:.3f} s CPU ({target})")
    cpu, wall, growth, model = await hostile("error")
    print(f"(c) a {ERROR_BODY_BYTES // 2**20} MB error body: {cpu:.3f} s CPU ({wall:.3f} s wall), "
          f"RSS +{growth:.1f} MB, answered by {model}")
    target = f"target < {MAX_ERROR_RSS_MB:g} MB"
    verdict(growth < MAX_ERROR_RSS_MB and model == "fine", f"RSS growth {growth:.1f} MB ({target})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20,000 callers instead of 200,000")
    asyncio.run(main(parser.parse_args().quick))
