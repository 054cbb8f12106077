"""Benchmark of the gateway's own overhead, against the fake upstream on loopback.

(a) Client CPU per call, calls/s and latency of `gate.chat` with tracing on, against the
    raw transport alone (the same httpx client over aiohttp POSTing the same JSON):
    sequential, 32 in flight, and 256 in flight against a 200 ms upstream.
(b) Requests/s of the example app on a route that calls no model, with and without
    `GatewayMiddleware`, driving the ASGI app in-process (no server, no sockets); per
    second of the process's CPU, which is what the middleware costs and which other load
    on a shared machine does not move.

Run: ``python bench/bench_gateway.py [--quick] [--only gateway|middleware]``. It reports
and prints PASS/FAIL per target; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

# Run as a script: make bench/, examples/ and gate_mw (from src/) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Clock, Upstream, fake_upstream, percentile, print_table

from gate_mw import Gateway, GatewayMiddleware, ModelEntry, RoutePolicy
from gate_mw._transport import default_http_client
from gate_mw.telemetry import TelemetryConfig

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

EXAMPLE_APP = "examples.fastapi_app.app"
UPSTREAM_MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
MAX_TOKENS = 16
SLOW_LATENCY = 0.2
NO_SDK = "gate, no SDK"
SDK_FLOOR = "raw + SDK floor"
# The fewest attributes the GenAI metrics require, for the SDK floor's measurements.
FLOOR_ATTRIBUTES = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}

# Targets from the issue.
MIN_IDEAL_FRACTION = 0.90
MAX_P99_FACTOR = 1.5
MAX_CPU_DELTA_US = 150.0
MAX_MIDDLEWARE_COST = 0.05


@dataclass(frozen=True, slots=True)
class Settings:
    """How much to measure: calls per round, rounds per phase (modes alternate within each
    round, and the round with the median CPU per call is reported)."""

    sequential_calls: int
    concurrent_calls: int
    slow_seconds: float
    rounds: int
    slow_rounds: int
    asgi_requests: int
    asgi_rounds: int


FULL = Settings(
    sequential_calls=1000, concurrent_calls=2000, slow_seconds=4.0, rounds=5, slow_rounds=3,
    asgi_requests=10_000, asgi_rounds=15,
)
QUICK = Settings(
    sequential_calls=500, concurrent_calls=1000, slow_seconds=3.0, rounds=1, slow_rounds=1,
    asgi_requests=5_000, asgi_rounds=3,
)


# -- (a) gate.chat against the raw transport ------------------------------------------


class _DiscardExporter(SpanExporter):
    """Takes every batch and drops it: the cost of tracing without an exporter's I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@dataclass(frozen=True, slots=True)
class Run:
    """One measured phase of one mode."""

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


async def _drive(
    call: Callable[[], Awaitable[object]], upstream: Upstream, *, in_flight: int, calls: int
) -> Run:
    """Make `calls` calls from `in_flight` workers; the whole run is measured."""
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
    upstream_cpu = upstream.cpu_seconds() - upstream_cpu
    return Run(len(latencies), clock.wall, clock.cpu, latencies, upstream_cpu, clock.gc)


async def _drive_steady(
    call: Callable[[], Awaitable[object]], upstream: Upstream, *, in_flight: int, seconds: float,
    ramp: float,
) -> Run:
    """Keep `in_flight` calls going and measure a window of `seconds` in the steady state.

    The workers start spread over `ramp` seconds (one upstream latency), as independent
    requests arrive, rather than all at once: replies then do not come back in one burst
    every cycle. The window opens after the ramp and one more second, and closes before the
    last calls drain, so it holds only the steady state.
    """
    finished: list[tuple[float, float]] = []  # (when, latency) of each call
    window = asyncio.Event()

    async def worker(delay: float) -> None:
        await asyncio.sleep(delay)
        while not window.is_set():
            started = perf_counter()
            await call()
            ended = perf_counter()
            finished.append((ended, ended - started))

    gc.collect()
    workers = asyncio.gather(*(worker(ramp * i / in_flight) for i in range(in_flight)))
    await asyncio.sleep(ramp + 1.0)
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


def _median_run(runs: Sequence[Run]) -> Run:
    """The run with the median CPU per call (the noisiest figure on a shared machine)."""
    return sorted(runs, key=lambda run: run.cpu_us)[len(runs) // 2]


def _median_delta(runs: dict[str, list[Run]], mode: str, base: str) -> float:
    """The median over rounds of `mode`'s CPU per call minus `base`'s in the same round:
    rounds next to each other share the machine's state, so this drifts least."""
    return statistics.median(a.cpu_us - b.cpu_us for a, b in zip(runs[mode], runs[base], strict=True))


@contextlib.asynccontextmanager
async def _modes(url: str) -> AsyncIterator[dict[str, Callable[[], Awaitable[object]]]]:
    """The ways to make one call against the upstream at `url`: raw, through the gate,
    through a gate without an OpenTelemetry SDK (the API's no-op spans and instruments),
    which tells the gateway's own work from the SDK's, and the raw call followed by the
    least SDK work the gate's telemetry could be (the floor under its cost)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_DiscardExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    entry = ModelEntry(
        name="bench", provider="openai", model=UPSTREAM_MODEL, api_base=url + "/v1",
        api_key_env="BENCH_KEY",
    )
    gateway = Gateway(
        [entry], env={"BENCH_KEY": "sk-bench"},
        telemetry=TelemetryConfig(tracer_provider=tracer_provider, meter_provider=meter_provider),
    )
    untraced = Gateway([entry], env={"BENCH_KEY": "sk-bench"})
    policy = RoutePolicy(models=("bench",))
    raw_client = default_http_client(1024)
    endpoint = url + "/v1/chat/completions"
    payload = {"model": UPSTREAM_MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    headers = {"authorization": "Bearer sk-bench"}

    async def raw() -> object:
        response = await raw_client.post(endpoint, json=payload, headers=headers)
        if response.status_code >= 400:
            raise RuntimeError(f"upstream answered {response.status_code}")
        return response.json()

    async def gate() -> object:
        return await gateway.client(policy, route="bench").chat(MESSAGES, max_tokens=MAX_TOKENS)

    async def gate_no_sdk() -> object:
        return await untraced.client(policy, route="bench").chat(MESSAGES, max_tokens=MAX_TOKENS)

    floor_tracer = tracer_provider.get_tracer("bench.floor")
    floor_meter = meter_provider.get_meter("bench.floor")
    tokens = floor_meter.create_histogram("bench.floor.tokens")
    duration = floor_meter.create_histogram("bench.floor.duration")

    async def sdk_floor() -> object:
        """Two spans without attributes and the three histogram measurements of a call."""
        reply = await raw()
        with floor_tracer.start_as_current_span("gate.route floor"):
            floor_tracer.start_span("chat floor", kind=SpanKind.CLIENT).end()
            tokens.record(12, FLOOR_ATTRIBUTES)
            tokens.record(8, FLOOR_ATTRIBUTES)
            duration.record(0.001, FLOOR_ATTRIBUTES)
        return reply

    try:
        async with gateway, untraced:
            yield {"raw": raw, "gate": gate, NO_SDK: gate_no_sdk, SDK_FLOOR: sdk_floor}
    finally:
        await raw_client.aclose()
        tracer_provider.shutdown()
        meter_provider.shutdown()


async def _phase(
    upstream: Upstream, modes: dict[str, Callable[[], Awaitable[object]]], rounds: int, *,
    in_flight: int, calls: int = 0, seconds: float = 0.0,
) -> dict[str, list[Run]]:
    """Warm up each mode (its connections too), then measure them in alternating rounds:
    `calls` calls each, or else a steady-state window of `seconds`."""
    for call in modes.values():
        await _drive(call, upstream, in_flight=in_flight, calls=max(in_flight, 200))
    runs: dict[str, list[Run]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode, call in modes.items():
            runs[mode].append(
                await _drive(call, upstream, in_flight=in_flight, calls=calls) if calls
                else await _drive_steady(
                    call, upstream, in_flight=in_flight, seconds=seconds, ramp=SLOW_LATENCY
                )
            )
    return runs


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def bench_gateway(settings: Settings) -> list[str]:
    """Part (a): prints the table and returns the verdict lines."""
    results: dict[str, dict[str, list[Run]]] = {}
    with fake_upstream(0.0) as fast_upstream, fake_upstream(SLOW_LATENCY) as slow_upstream:
        async with _modes(fast_upstream.url) as modes:
            results["sequential"] = await _phase(
                fast_upstream, modes, settings.rounds, in_flight=1, calls=settings.sequential_calls
            )
            # Measured once, sequentially: they only explain the overhead.
            del modes[NO_SDK], modes[SDK_FLOOR]
            results["32 in flight"] = await _phase(
                fast_upstream, modes, settings.rounds, in_flight=32, calls=settings.concurrent_calls
            )
        async with _modes(slow_upstream.url) as modes:
            del modes[SDK_FLOOR]  # the gate without the SDK stays: does it hold the load?
            results["256 x 200ms"] = await _phase(
                slow_upstream, modes, settings.slow_rounds, in_flight=256, seconds=settings.slow_seconds
            )

    rows: list[list[object]] = []
    for phase, by_mode in results.items():
        for mode, runs in by_mode.items():
            run = _median_run(runs)
            rows.append([
                phase, mode, run.calls, f"{run.calls_per_s:,.0f}", f"{run.cpu_us:,.0f}",
                f"{run.gc_us:,.0f}", f"{run.p50_ms:.2f}", f"{run.p99_ms:.2f}",
                f"{run.upstream_cpu_us:,.0f}",
            ])
    print("(a) gate.chat (tracing on) vs the raw transport, fake upstream on loopback; per mode, "
          "the round with the median CPU per call\n")
    print_table(
        ["phase", "mode", "calls", "calls/s", "CPU us/call", "of it GC", "p50 ms", "p99 ms",
         "upstream CPU us/call"],
        rows, text_columns=2,
    )

    verdicts: list[str] = []
    for phase, by_mode in results.items():
        delta = _median_delta(by_mode, "gate", "raw")
        verdicts.append(
            f"{_verdict(delta <= MAX_CPU_DELTA_US)}  gateway CPU per call, {phase}: "
            f"{delta:+,.0f} us over raw, median of {len(by_mode['raw'])} rounds "
            f"(target <= {MAX_CPU_DELTA_US:.0f} us)"
        )
    sequential = results["sequential"]
    own, sdk = _median_delta(sequential, NO_SDK, "raw"), _median_delta(sequential, "gate", NO_SDK)
    verdicts.append(
        f"info  sequential split: the gateway with no OTel SDK costs {own:+,.0f} us over raw (its "
        f"own work, plus the API's no-op spans); the SDK's spans and metrics add {sdk:+,.0f} us"
    )
    floor = _median_delta(sequential, SDK_FLOOR, "raw")
    verdicts.append(
        f"info  SDK floor: two spans without attributes and three histogram records, made next "
        f"to the raw call, cost {floor:+,.0f} us over it"
    )
    ideal = 256 / SLOW_LATENCY
    p99_limit = SLOW_LATENCY * MAX_P99_FACTOR * 1e3
    for mode, info in (("gate", None), (NO_SDK, "info  without the SDK, ")):
        slow = _median_run(results["256 x 200ms"][mode])
        fraction = slow.calls_per_s / ideal
        checks = [
            (fraction >= MIN_IDEAL_FRACTION,
             f"256 x 200ms calls/s: {slow.calls_per_s:,.0f} = {fraction:.1%} of ideal {ideal:,.0f} "
             f"(target >= {MIN_IDEAL_FRACTION:.0%})"),
            (slow.p99_ms <= p99_limit,
             f"256 x 200ms p99: {slow.p99_ms:.1f} ms (target <= {p99_limit:.0f} ms)"),
        ]
        verdicts += [info + text if info else f"{_verdict(ok)}  {text}" for ok, text in checks]
    return verdicts


# -- (b) the middleware on a route without model calls --------------------------------


def _example_app() -> Any:
    """The example FastAPI app, imported as `uvicorn examples.fastapi_app.app:app` would."""
    return importlib.import_module(EXAMPLE_APP).app


def _stacks(app: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """Switches putting the app's middleware stack with, or without, `GatewayMiddleware` in place.

    Both stacks are built once, from the app's own middleware list, and swapped in between rounds.
    """
    declared = list(app.user_middleware)
    if not any(middleware.cls is GatewayMiddleware for middleware in declared):
        raise SystemExit(f"{EXAMPLE_APP} does not install GatewayMiddleware")
    with_stack = app.build_middleware_stack()
    app.user_middleware = [middleware for middleware in declared if middleware.cls is not GatewayMiddleware]
    without_stack = app.build_middleware_stack()
    app.user_middleware = declared

    def use(stack: Any) -> Callable[[], None]:
        return lambda: setattr(app, "middleware_stack", stack)

    return use(with_stack), use(without_stack)


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run the app's ASGI lifespan around the block; yields its lifespan state."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {started}")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def _http_scope(path: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": state,
        "headers": [(b"host", b"bench.local"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    }


async def _requests_per_s(app: ASGIApp, scope: dict[str, Any], requests: int) -> float:
    statuses: list[int] = []
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    gc.collect()
    with Clock() as clock:
        for _ in range(requests):
            await app({**scope, "state": dict(scope["state"])}, receive, send)
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"the route answered {set(statuses)}, not 200")
    return requests / clock.cpu  # single-threaded and CPU-bound: time descheduled is not counted


async def bench_middleware(settings: Settings, path: str = "/health") -> list[str]:
    """Part (b): prints req/s with and without the middleware; returns the verdict line."""
    app = _example_app()
    use_with, use_without = _stacks(app)
    results: dict[str, list[float]] = {"without": [], "with": []}
    async with _lifespan(app) as state:
        scope = _http_scope(path, state)
        for use in (use_without, use_with):  # warm-up: caches, route policy resolution
            use()
            await _requests_per_s(app, scope, settings.asgi_requests // 10)
        for _ in range(settings.asgi_rounds):
            for name, use in (("without", use_without), ("with", use_with)):
                use()
                results[name].append(await _requests_per_s(app, scope, settings.asgi_requests))
    # Each round pairs the two stacks back to back; the median of the pairs' costs drifts
    # least when the machine's speed does.
    pairs = list(zip(results["with"], results["without"], strict=True))
    cost = statistics.median(1 - with_ / without for with_, without in pairs)
    added = statistics.median(1e6 / with_ - 1e6 / without for with_, without in pairs)
    print(f"\n(b) GET {path} of {EXAMPLE_APP}, in-process ASGI calls, "
          f"{settings.asgi_rounds} rounds x {settings.asgi_requests:,} requests\n")
    print_table(
        ["middleware", "req/s (median)", "us/request", "rounds (thousand req/s)"],
        [
            [name, f"{statistics.median(runs):,.0f}", f"{1e6 / statistics.median(runs):.1f}",
             " ".join(f"{run / 1e3:.1f}" for run in runs)]
            for name, runs in results.items()
        ],
    )
    return [
        f"{_verdict(cost <= MAX_MIDDLEWARE_COST)}  middleware cost on {path}: {cost:.1%} of req/s, "
        f"median of {settings.asgi_rounds} paired rounds ({added:+.1f} us/request; "
        f"target <= {MAX_MIDDLEWARE_COST:.0%})"
    ]


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (~15 s)")
    parser.add_argument("--only", choices=("gateway", "middleware"), help="run one part only")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    verdicts: list[str] = []
    if args.only in (None, "gateway"):
        verdicts += await bench_gateway(settings)
    if args.only in (None, "middleware"):
        verdicts += await bench_middleware(settings)
    print("\nTargets")
    for verdict in verdicts:
        print("  " + verdict)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
