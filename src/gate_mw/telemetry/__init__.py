"""Telemetry: GenAI spans and metrics, trace propagation, and `configure()` for export.

    from gate_mw.telemetry import configure

    configure("my-service")  # traces, metrics, logs over OTLP as OTEL_* variables say
"""

from typing import TYPE_CHECKING, Any

from ._spans import Telemetry, TelemetryConfig

if TYPE_CHECKING:
    from ._configure import DEFAULT_SERVICE_NAME, TelemetryHandle, configure

__all__ = ["DEFAULT_SERVICE_NAME", "Telemetry", "TelemetryConfig", "TelemetryHandle", "configure"]


def __getattr__(name: str) -> Any:
    # The SDK's providers and exporters load only when export is set up (~0.1 s of import).
    if name in ("DEFAULT_SERVICE_NAME", "TelemetryHandle", "configure"):
        from . import _configure

        return getattr(_configure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
