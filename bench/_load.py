"""Load drivers for the benchmarks: a fixed number of calls, or a steady-state window.

- `drive(call, upstream, in_flight=, calls=, flush=)`: `calls` calls from `in_flight` workers,
  all measured.
- `drive_steady(call, upstream, in_flight=, seconds=, ramp=, settle=, settle_max=)`: `in_flight`
  calls kept going; a window of `seconds` in the steady state is measured.
- `Run`: what one of them measured (calls, wall and CPU seconds, GC seconds, latencies, the
  upstream's CPU), with per-call figures as properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter

from bench._common import Clock, Upstream, percentile

__all__ = ["Call", "Run", "drive", "drive_steady"]

#: One chat call through one of the clients compared.
Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Run:
    """One measured round of one client in one phase."""

    calls: int
    wall: float
    cpu: float
    latencies: list[float]
    upstream_cpu: float
    gc: float

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.wall

    @property
    def cpu_us(self) -> float:
        """This process's CPU (every thread: the span exporter's too) per call."""
        return self.cpu / self.calls * 1e6

    @property
    def gc_us(self) -> float:
        return self.gc / self.calls * 1e6

    @property
    def upstream_cpu_us(self) -> float:
        return self.upstream_cpu / self.calls * 1e6

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1e3

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1e3


async def drive(
    call: Call, upstream: Upstream, *, in_flight: int, calls: int, flush: Callable[[], object] | None = None
) -> Run:
    """Make `calls` calls from `in_flight` workers; the whole run is measured, and `flush`
    (finishing the client's background work, such as exporting its spans) is run inside it."""
    latencies: list[float] = []
    budget = [calls]

    async def worker() -> None:
        while budget[0] > 0:
            budget[0] -= 1
            started = perf_counter()
            await call()
            latencies.append(perf_counter() - started)

    gc.collect()
    upstream_cpu = upstream.cpu_seconds()
    with Clock() as clock:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        if flush is not None:
            flush()
    upstream_cpu = upstream.cpu_seconds() - upstream_cpu
    return Run(len(latencies), clock.wall, clock.cpu, latencies, upstream_cpu, clock.gc)


async def drive_steady(
    call: Call, upstream: Upstream, *, in_flight: int, seconds: float, ramp: float, settle: float,
    settle_max: float,
) -> Run:
    """Keep `in_flight` calls going and measure a window of `seconds` in the steady state.

    The workers start spread over `ramp` seconds (one upstream latency), as independent
    requests arrive, rather than all at once: replies then do not come back in one burst
    every cycle. The window opens once every worker has finished a call, and at least `settle`
    seconds after the ramp (at most `settle_max`: a client too slow to get there in time is
    measured anyway). It closes before the last calls drain; a call counts if it ends inside it.
    """
    finished: list[tuple[float, float]] = []  # (when, latency) of each call
    window = asyncio.Event()
    steady = asyncio.Event()
    ready = [0]  # workers that have finished a call

    async def worker(delay: float) -> None:
        await asyncio.sleep(delay)
        first = True
        while not window.is_set():
            started = perf_counter()
            await call()
            ended = perf_counter()
            finished.append((ended, ended - started))
            if first:
                first = False
                ready[0] += 1
                if ready[0] == in_flight:
                    steady.set()

    gc.collect()
    workers = asyncio.gather(*(worker(ramp * i / in_flight) for i in range(in_flight)))
    await asyncio.sleep(ramp + settle)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(steady.wait(), max(0.0, settle_max - settle))
    upstream_cpu = upstream.cpu_seconds()
    with Clock() as clock:
        opened = perf_counter()
        await asyncio.sleep(seconds)
        closed = perf_counter()
    upstream_cpu = upstream.cpu_seconds() - upstream_cpu
    window.set()
    await workers
    latencies = [latency for ended, latency in finished if opened <= ended < closed]
    return Run(len(latencies), clock.wall, clock.cpu, latencies, upstream_cpu, clock.gc)
