"""Send the gateway's spans to an OTLP/HTTP endpoint (Jaeger, Tempo, an OTel Collector).

    from gate_mw.otel import configure_otlp

    configure_otlp()  # OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME from the environment

Needs the `otlp` extra: `pip install 'gate_mw[otlp]'`.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ._optional import MissingDependency

__all__ = ["DEFAULT_SERVICE_NAME", "configure_otlp"]

DEFAULT_SERVICE_NAME = "gate_mw"
_TRACES_PATH = "/v1/traces"


def configure_otlp(
    service_name: str | None = None, *, endpoint: str | None = None, set_global: bool = True
) -> TracerProvider:
    """A tracer provider exporting spans in batches over OTLP/HTTP (protobuf).

    `endpoint` is the collector's base URL, like `OTEL_EXPORTER_OTLP_ENDPOINT`
    (`http://localhost:4318`); `/v1/traces` is appended. Without it the exporter reads the
    standard `OTEL_EXPORTER_OTLP_*` variables. The service name is `service_name`, else
    `OTEL_SERVICE_NAME`, else "gate_mw". With `set_global` the provider becomes the global
    one, which a `Gateway` without an explicit `TelemetryConfig.tracer_provider` uses.
    Call `shutdown()` on it to flush at exit (the SDK also does so when the process ends).
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingDependency(
            "gate_mw.otel needs opentelemetry-exporter-otlp-proto-http, which is not installed: "
            "pip install 'gate_mw[otlp]'"
        ) from None
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + _TRACES_PATH if endpoint else None)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
