"""Exemplars, as docs/observability.md describes them: with the SDK's default filter each
histogram point of a call links to that call's trace; the documented switch turns them off."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _apps import MESSAGES, make_gateway, openai_entry
from gate_mw import TelemetryConfig
from gate_mw.testing import FakeUpstream, Reply

pytestmark = pytest.mark.anyio

_HISTOGRAMS = ("gen_ai.client.token.usage", "gen_ai.client.operation.duration")


async def _exemplars(up: FakeUpstream, meter_provider: MeterProvider, reader: InMemoryMetricReader) -> tuple[
    dict[str, list[Any]], set[int]
]:
    """Each histogram's exemplars after one call, and the trace ids of the call's spans."""
    up.set_default("m", Reply("ok"))
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    config = TelemetryConfig(tracer_provider=tracer_provider, meter_provider=meter_provider)
    async with make_gateway([openai_entry(up, "m")], telemetry=config) as gateway:
        await gateway.client().chat(MESSAGES, model="m")
        # Read before the gateway stops: its flush is a collection, which hands the
        # exemplars out (and a reservoir starts afresh after each).
        data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name in _HISTOGRAMS:
                    found[metric.name] = [e for p in metric.data.data_points for e in p.exemplars]
    return found, {span.context.trace_id for span in spans.get_finished_spans()}


async def test_each_histogram_point_links_to_the_calls_trace(fake_upstream: FakeUpstream) -> None:
    reader = InMemoryMetricReader()
    found, traces = await _exemplars(fake_upstream, MeterProvider(metric_readers=[reader]), reader)
    assert len(traces) == 1  # the route span and its attempt
    assert sorted(found) == sorted(_HISTOGRAMS)
    assert len(found["gen_ai.client.token.usage"]) == 2  # input and output
    assert len(found["gen_ai.client.operation.duration"]) == 1
    assert {e.trace_id for exemplars in found.values() for e in exemplars} == traces


async def test_the_documented_switch_turns_exemplars_off(fake_upstream: FakeUpstream) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    found, _ = await _exemplars(fake_upstream, provider, reader)
    assert sorted(found) == sorted(_HISTOGRAMS)
    assert not any(found.values())
