"""Shared fixtures: the fake upstream server, the anyio backend, and real OTel SDK readers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import settings
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gate_mw import TelemetryConfig

pytest_plugins = ["gate_mw.testing.pytest_plugin"]

# The same examples on every run, so that a run's outcome depends on the code alone (a
# failure prints the blob that replays it). `HYPOTHESIS_PROFILE=explore` draws new ones.
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Telemetry:
    """SDK tracer, meter and logger providers with in-memory exporters, for asserting on
    spans, metrics and log events."""

    config: TelemetryConfig
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def events(self, name: str) -> list[ReadableLogRecord]:
        return [r for r in self.logs.get_finished_logs() if r.log_record.event_name == name]

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def metrics(self) -> MetricsData | None:
        return self.reader.get_metrics_data()

    def points(self, metric_name: str) -> list[object]:
        """Every data point of `metric_name` across scopes."""
        data = self.reader.get_metrics_data()
        found: list[object] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == metric_name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    capture = bool(getattr(request, "param", False))
    config = TelemetryConfig(
        tracer_provider, meter_provider, capture_content=capture, logger_provider=logger_provider
    )
    yield Telemetry(config, exporter, reader, logs)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()
