"""`configure()`: traces, metrics and logs exported over OTLP (HTTP or gRPC) or to the
console, set up from the standard `OTEL_*` environment variables.

    from gate_mw.telemetry import configure

    telemetry = configure("my-service")  # OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL, ... from env

OTLP needs the `otlp` extra: `pip install 'gate_mw[otlp]'`.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as _log_export
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from .._optional import MissingDependency
from ..errors import ConfigError
from ._spans import TelemetryConfig

__all__ = ["DEFAULT_SERVICE_NAME", "TelemetryHandle", "configure"]

DEFAULT_SERVICE_NAME = "gate_mw"
Exporter = Literal["otlp", "console", "none"]
_SIGNALS = ("traces", "metrics", "logs")
_EXPORTERS = {"otlp", "console", "none"}
# Exporter class per (protocol, signal): modules of the OTLP exporter packages.
_OTLP = {
    "http/protobuf": ("opentelemetry-exporter-otlp-proto-http", "opentelemetry.exporter.otlp.proto.http"),
    "grpc": ("opentelemetry-exporter-otlp-proto-grpc", "opentelemetry.exporter.otlp.proto.grpc"),
}
_CLASSES = {
    "traces": ("trace_exporter", "OTLPSpanExporter"),
    "metrics": ("metric_exporter", "OTLPMetricExporter"),
    "logs": ("_log_exporter", "OTLPLogExporter"),
}
_log = logging.getLogger("gate_mw")


@dataclass(slots=True)
class TelemetryHandle:
    """What `configure()` set up. `shutdown()` flushes and stops it (the SDK also does at
    exit); `config` passes its providers to a `Gateway` explicitly."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    #: The signals left to providers the application had already set.
    kept: tuple[str, ...] = ()

    @property
    def config(self) -> TelemetryConfig:
        return TelemetryConfig(
            self.tracer_provider, self.meter_provider, logger_provider=self.logger_provider
        )

    def _providers(self) -> list[Any]:
        return [p for p in (self.tracer_provider, self.meter_provider, self.logger_provider) if p]

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export what is buffered now, waiting about `timeout_s` at most; True if all went."""
        providers = self._providers()
        share = max(1, int(timeout_s * 1000 / max(1, len(providers))))
        return all(bool(provider.force_flush(share)) for provider in providers)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush (bounded by `timeout_s`) and stop the providers; safe more than once."""
        self.force_flush(timeout_s)
        for provider in self._providers():
            provider.shutdown()


def _protocol(signal_name: str, env: Mapping[str, str]) -> str:
    value = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal_name.upper()}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if value not in _OTLP:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {value!r} is not supported; use 'grpc' or 'http/protobuf'"
        )
    return value


def _otlp_exporter(signal_name: str, env: Mapping[str, str]) -> Any:
    """The OTLP exporter of `signal_name`, which reads its endpoint, headers, timeout,
    compression, certificates and temporality from the environment itself."""
    protocol = _protocol(signal_name, env)
    package, base = _OTLP[protocol]
    module_name, class_name = _CLASSES[signal_name]
    try:
        module = importlib.import_module(f"{base}.{module_name}")
    except ImportError:
        raise MissingDependency(
            f"OTLP over {protocol} needs {package}, which is not installed: pip install 'gate_mw[otlp]'"
        ) from None
    return getattr(module, class_name)()


def _exporters(signal_name: str, exporter: Exporter | None, env: Mapping[str, str]) -> list[Any]:
    names = [exporter] if exporter else [
        name.strip() for name in env.get(f"OTEL_{signal_name.upper()}_EXPORTER", "otlp").split(",")
    ]
    found: list[Any] = []
    for name in names:
        if name not in _EXPORTERS:
            raise ConfigError(
                f"OTEL_{signal_name.upper()}_EXPORTER: {name!r} is not one of otlp, console, none"
            )
        if name == "otlp":
            found.append(_otlp_exporter(signal_name, env))
        elif name == "console":
            # ConsoleLogRecordExporter is the newer SDKs' name of ConsoleLogExporter.
            console_logs = (
                getattr(_log_export, "ConsoleLogRecordExporter", None) or _log_export.ConsoleLogExporter
            )
            console = {"traces": ConsoleSpanExporter, "metrics": ConsoleMetricExporter,
                       "logs": console_logs}[signal_name]
            found.append(console())
    return found


def _resource(service_name: str | None, env: Mapping[str, str]) -> Resource:
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the name given in code.
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    return Resource.create({} if named else {SERVICE_NAME: service_name or DEFAULT_SERVICE_NAME})


def _already_set(signal_name: str) -> bool:
    """Whether the application set a global provider of this signal (not a proxy/no-op)."""
    provider = {"traces": trace.get_tracer_provider, "metrics": metrics.get_meter_provider,
                "logs": _logs.get_logger_provider}[signal_name]()
    return not type(provider).__name__.startswith(("Proxy", "_Proxy", "NoOp", "_NoOp"))


def configure(
    service_name: str | None = None, *, exporter: Exporter | None = None,
    set_global: bool = True, flush_on_sigterm: bool = True,
) -> TelemetryHandle:
    """Export traces, metrics and logs (the GenAI log events, such as
    `gen_ai.client.operation.exception`; Python logging stays as the application set it).

    Everything follows the standard variables, signal-specific ones first:
    `OTEL_{TRACES,METRICS,LOGS}_EXPORTER` (`otlp`, `console`, `none`),
    `OTEL_EXPORTER_OTLP[_{SIGNAL}]_{PROTOCOL,ENDPOINT,HEADERS,TIMEOUT,COMPRESSION,...}`,
    `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`,
    `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` (these two win over `service_name`).
    `exporter` overrides the `*_EXPORTER` variables (`"console"` for a demo).
    `OTEL_SDK_DISABLED=true` sets up nothing. The variables are read from `os.environ`,
    where the SDK and exporters read theirs.

    With `set_global`, a signal whose global provider the application already set is left
    alone (logged; its data goes to the application's provider). With `flush_on_sigterm`,
    SIGTERM first flushes what is buffered (at most ~5 s), then does what it did before.
    """
    env = os.environ
    handle = TelemetryHandle()
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        _log.info("gate_mw.telemetry: OTEL_SDK_DISABLED is set; no telemetry is exported")
        return handle
    wanted = [s for s in _SIGNALS if not (set_global and _already_set(s))]
    handle.kept = tuple(s for s in _SIGNALS if s not in wanted)
    if handle.kept:
        _log.info(
            "gate_mw.telemetry: the application already set providers for %s; leaving them alone",
            ", ".join(handle.kept),
        )
    exporters = {name: found for name in wanted if (found := _exporters(name, exporter, env))}
    resource = _resource(service_name, env)
    if "traces" in exporters:
        tracer_provider = handle.tracer_provider = TracerProvider(resource=resource)
        for span_exporter in exporters["traces"]:
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    if "metrics" in exporters:
        handle.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(e) for e in exporters["metrics"]],
        )
    if "logs" in exporters:
        logger_provider = handle.logger_provider = LoggerProvider(resource=resource)
        for log_exporter in exporters["logs"]:
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    if set_global:
        if handle.tracer_provider is not None:
            trace.set_tracer_provider(handle.tracer_provider)
        if handle.meter_provider is not None:
            metrics.set_meter_provider(handle.meter_provider)
        if handle.logger_provider is not None:
            _logs.set_logger_provider(handle.logger_provider)
    if flush_on_sigterm:
        _flush_on_sigterm(handle)
    return handle


def _flush_on_sigterm(handle: TelemetryHandle) -> None:
    """Chain a SIGTERM handler that flushes `handle` before the previous behaviour (a
    server's graceful stop, or the default exit). Only the main thread may set one."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        handle.force_flush(5.0)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    handler: Callable[[int, FrameType | None], Any] = on_sigterm
    signal.signal(signal.SIGTERM, handler)
