"""Telemetry: GenAI spans and metrics, trace propagation, and `configure()` for export.

    from gate_mw.telemetry import configure

    configure("my-service")  # traces, metrics, logs over OTLP as OTEL_* variables say
"""

from ._configure import DEFAULT_SERVICE_NAME, TelemetryHandle, configure
from ._spans import Telemetry, TelemetryConfig

__all__ = ["DEFAULT_SERVICE_NAME", "Telemetry", "TelemetryConfig", "TelemetryHandle", "configure"]
