"""Per-chunk CPU overhead of streaming through gate_mw, against reading the same SSE raw.

    PYTHONPATH=src python bench/bench_streaming.py [--chunks 1000] [--rounds 30]

The fake upstream (`python -m gate_mw.testing --stream-chunks N`) runs in a subprocess, so
only this process's CPU (`time.process_time`) is measured. Each round streams the same
N-chunk OpenAI-style answer once per way, over the same pooled httpx client:

- raw bytes: `aiter_bytes()` only, the floor of the transport;
- raw parsed: `aiter_lines()` and `json.loads` of each `data:` line, taking its delta's
  content: the least a correct consumer does, and the baseline of the target;
- gate: `gate.stream(...)` iterated for its text deltas (fallback chain, time limits,
  usage, cost and spans included), with no OpenTelemetry SDK;
- gate + SDK: the same with a recording SDK tracer and meter.

Figures are medians over the rounds; the target (issue 14) is at most 5 us per chunk above raw
parsed. It prints PASS or FAIL and always exits 0, like the other scripts in bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gate_mw import Gate, Gateway, ModelEntry, RoutePolicy, TelemetryConfig
from gate_mw.providers.transport._httpx import default_http_client

TARGET_US = 5.0
_KEY = "sk-bench-123"
_MESSAGES = [{"role": "user", "content": "Count to a thousand."}]


def start_upstream(chunks: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gate_mw.testing", "--port", "0", "--stream-chunks", str(chunks)],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("READY "):
        process.kill()
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return process, line.removeprefix("READY ")


async def raw_bytes(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("POST", url, json=_payload(), headers=_headers()) as response:
        async for _ in response.aiter_bytes():
            pass
    return 0


async def raw_parsed(client: httpx.AsyncClient, url: str) -> int:
    count = 0
    async with client.stream("POST", url, json=_payload(), headers=_headers()) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choices = json.loads(line[6:]).get("choices")
                if choices and choices[0]["delta"].get("content"):
                    count += 1
    return count


async def through_gate(gate: Gate) -> int:
    count = 0
    async for _ in gate.stream(_MESSAGES):
        count += 1
    return count


def _payload() -> dict[str, Any]:
    return {
        "model": "bench", "messages": _MESSAGES, "stream": True,
        "stream_options": {"include_usage": True},
    }


def _headers() -> dict[str, str]:
    return {"authorization": f"Bearer {_KEY}"}


def _gate(base: str, client: httpx.AsyncClient, telemetry: TelemetryConfig | None) -> Gateway:
    entry = ModelEntry(
        name="bench", provider="openai", api_base=f"{base}/v1", api_key_env="BENCH_KEY",
        input_cost_per_mtok=1.0, output_cost_per_mtok=2.0,
    )
    return Gateway(
        [entry], http_client=client, env={"BENCH_KEY": _KEY}, telemetry=telemetry,
        default_policy=RoutePolicy(idle_timeout=30, deadline=120),
    )


def _sdk() -> TelemetryConfig:
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return TelemetryConfig(tracer, MeterProvider(metric_readers=[InMemoryMetricReader()]))


async def run(chunks: int, rounds: int, base: str) -> dict[str, list[float]]:
    client = default_http_client(16)
    url = f"{base}/v1/chat/completions"
    plain, sdk = _gate(base, client, None), _gate(base, client, _sdk())
    await plain.start()
    await sdk.start()
    ways: dict[str, Callable[[], Awaitable[int]]] = {
        "raw bytes": lambda: raw_bytes(client, url),
        "raw parsed": lambda: raw_parsed(client, url),
        "gate": lambda: through_gate(plain.client()),
        "gate + SDK": lambda: through_gate(sdk.client()),
    }
    per_chunk: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for round_ in range(rounds + 2):  # two warm-up rounds
            for name, way in ways.items():
                started = time.process_time()
                counted = await way()
                spent = time.process_time() - started
                if counted not in (0, chunks):
                    raise SystemExit(f"{name}: read {counted} chunks, expected {chunks}")
                if round_ >= 2:
                    per_chunk[name].append(spent / chunks * 1e6)
    finally:
        await plain.aclose()
        await sdk.aclose()
        await client.aclose()
    return per_chunk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    process, base = start_upstream(args.chunks)
    try:
        per_chunk = asyncio.run(run(args.chunks, args.rounds, base))
    finally:
        process.terminate()
        process.wait(10)
    medians = {name: statistics.median(values) for name, values in per_chunk.items()}
    baseline = medians["raw parsed"]
    print(f"streaming {args.chunks} chunks x {args.rounds} rounds; client CPU per chunk (median)")
    for name, value in medians.items():
        print(f"  {name:<12} {value:7.2f} us/chunk   ({value - baseline:+6.2f} us vs raw parsed)")
    overhead = medians["gate"] - baseline
    verdict = "PASS" if overhead <= TARGET_US else "FAIL"
    print(f"{verdict}  streaming per chunk over raw parsing: {overhead:+.2f} us "
          f"(target <= {TARGET_US:g} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
