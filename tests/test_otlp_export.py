"""Spans leave the process over real OTLP/HTTP: a protobuf receiver on 127.0.0.1 decodes them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gate_mw import Gateway, ModelEntry, TelemetryConfig
from gate_mw._optional import MissingDependency
from gate_mw.otel import configure_otlp
from gate_mw.testing import FakeUpstream, Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-otlp-123456"


class Receiver:
    """A minimal OTLP/HTTP trace receiver: stores each decoded POST /v1/traces."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.raw: list[bytes] = []
        self.paths: list[str] = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.paths.append(self.path)
                receiver.raw.append(body)
                receiver.exports.append(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                receiver.received.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """(resource attributes, span) for every span received."""
        return [
            (_attributes(resource_spans.resource.attributes), span)
            for export in self.exports
            for resource_spans in export.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.mark.anyio
async def test_chat_span_arrives_on_the_wire(receiver: Receiver, fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default("gpt-4o", Reply("hello", input_tokens=12, output_tokens=3))
    provider = configure_otlp("gate-mw-test", endpoint=receiver.url + "/", set_global=False)
    entry = ModelEntry(name="gpt-4o", provider="openai", api_base=fake_upstream.openai_base, api_key_env="K")
    try:
        async with Gateway(
            [entry], env={"K": KEY}, telemetry=TelemetryConfig(tracer_provider=provider)
        ) as gateway:
            result = await gateway.client(route="otlp-test").chat([{"role": "user", "content": "hi"}])
        assert provider.force_flush()
    finally:
        provider.shutdown()

    assert receiver.paths == ["/v1/traces"] * len(receiver.paths)
    spans = {span.name: (resource, span) for resource, span in receiver.spans()}
    resource, chat = spans["chat gpt-4o"]
    _, route = spans["gate.route otlp-test"]
    assert resource["service.name"] == "gate-mw-test"
    assert chat.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert (chat.trace_id, chat.parent_span_id) == (route.trace_id, route.span_id)
    attributes = _attributes(chat.attributes)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.response.model"] == result.provider_model
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (12, 3)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(result.cost_usd)
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == fake_upstream.port
    assert "gen_ai.input.messages" not in attributes  # capture_content is off
    assert not any(KEY.encode() in body for body in receiver.raw)


def test_endpoint_and_service_name_come_from_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    provider = configure_otlp(set_global=False)
    try:
        provider.get_tracer("t").start_span("probe").end()
        assert provider.force_flush()
    finally:
        provider.shutdown()

    ((resource, span),) = receiver.spans()
    assert (span.name, resource["service.name"]) == ("probe", "from-env")
    assert receiver.paths == ["/v1/traces"]


def test_missing_exporter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)

    with pytest.raises(MissingDependency, match=r"pip install 'gate_mw\[otlp\]'"):
        configure_otlp(set_global=False)


_EXAMPLE_CALL = """
import asyncio, httpx
from asgi_lifespan import LifespanManager
from opentelemetry import trace
from examples.fastapi_app.app import app

async def main():
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(manager.app), base_url="http://example"
    ) as client:
        response = await client.post("/classify", json={"text": "t", "labels": ["a", "b"]})
        assert response.status_code == 200, response.text

asyncio.run(main())
trace.get_tracer_provider().shutdown()
"""


def test_example_app_exports_when_the_endpoint_is_set(receiver: Receiver) -> None:
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "OPENROUTER_", "GATE_"))
    }
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    # A process of its own: the example sets the global tracer provider, once per process.
    done = subprocess.run(
        [sys.executable, "-c", _EXAMPLE_CALL], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )

    assert done.returncode == 0, done.stderr
    names = {span.name: resource for resource, span in receiver.spans()}
    assert names["chat gpt-4o-mini"]["service.name"] == "gate-mw-example"
    assert "gate.route /classify" in names
