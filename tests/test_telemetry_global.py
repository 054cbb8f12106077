"""Without a tracer provider the gateway makes no spans, yet an incoming trace still goes
upstream; a global SDK set later, after the gateway was made, is used from then on.
A process of its own: the API's global provider can be set once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import asyncio
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from gate_mw import Gateway, ModelEntry, RoutePolicy
from gate_mw.testing import FakeUpstream, Reply

INCOMING = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1))

async def main() -> None:
    with FakeUpstream() as up:
        up.set_default("m-1", Reply("hi"))
        entry = ModelEntry(name="m", provider="openai", model="m-1", api_base=up.url + "/v1",
                           api_key_env="K")
        async with Gateway([entry], env={"K": "sk-test"}) as gateway:
            policy = RoutePolicy(models=("m",))
            await gateway.client(policy).chat([{"role": "user", "content": "no trace"}])
            token = context.attach(trace.set_span_in_context(NonRecordingSpan(INCOMING)))
            try:
                await gateway.client(policy).chat([{"role": "user", "content": "in a trace"}])
            finally:
                context.detach(token)
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            await gateway.client(policy).chat([{"role": "user", "content": "traced"}])
        sent = [r.headers.get("traceparent") for r in up.requests]
    print("no trace:", sent[0])
    print("in a trace:", sent[1])
    print("spans:", sorted(span.name for span in exporter.get_finished_spans()))
    (attempt,) = [s for s in exporter.get_finished_spans() if s.name == "chat m-1"]
    print("traced parent is the attempt:", sent[2].split("-")[2] == f"{attempt.context.span_id:016x}")

asyncio.run(main())
"""


def test_spans_follow_the_global_provider_and_incoming_traces_go_upstream() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False, env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "no trace: None"
    assert lines[1] == "in a trace: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert lines[2] == "spans: ['chat m-1', 'gate.route background']"
    assert lines[3] == "traced parent is the attempt: True"
