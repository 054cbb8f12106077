"""`gate_mw.telemetry.configure()` over real OTLP: HTTP and gRPC receivers on 127.0.0.1
decode what arrives with `opentelemetry-proto`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from _otlp import Receiver, attributes, running_receiver
from gate_mw import Gateway, ModelEntry
from gate_mw._optional import MissingDependency
from gate_mw.errors import ConfigError
from gate_mw.telemetry import configure
from gate_mw.testing import FakeUpstream, Fault, Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-otlp-123456"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


def _entry(up: FakeUpstream, name: str) -> ModelEntry:
    return ModelEntry(name=name, provider="openai", api_base=up.openai_base, api_key_env="K")


def _env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.mark.anyio
async def test_one_call_exports_spans_metrics_and_log_events(
    receiver: Receiver, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_upstream.set_default("gpt-4o-mini", Fault(500))
    fake_upstream.set_default("gpt-4o", Reply("hello", input_tokens=12, output_tokens=3))
    _env(monkeypatch, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="gate-mw-test")
    handle = configure(set_global=False, flush_on_sigterm=False)
    try:
        async with Gateway(
            [_entry(fake_upstream, "gpt-4o-mini"), _entry(fake_upstream, "gpt-4o")],
            env={"K": KEY}, telemetry=handle.config,
        ) as gateway:
            result = await gateway.client(route="otlp-test").chat(
                [{"role": "user", "content": "hi"}], model=["gpt-4o-mini", "gpt-4o"]
            )
        assert handle.force_flush()
    finally:
        handle.shutdown()

    assert set(receiver.paths) == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    spans = {span.name: (resource, span) for resource, span in receiver.spans()}
    resource, chat = spans["chat gpt-4o"]
    _, route = spans["gate.route otlp-test"]
    assert resource["service.name"] == "gate-mw-test"
    assert chat.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert (chat.trace_id, chat.parent_span_id) == (route.trace_id, route.span_id)
    chat_attributes = attributes(chat.attributes)
    assert chat_attributes["gen_ai.response.model"] == result.provider_model
    assert chat_attributes["gen_ai.usage.cost"] == pytest.approx(result.cost_usd)
    metrics = {metric.name: metric for metric in receiver.metrics()}
    assert metrics["gen_ai.client.operation.duration"].unit == "s"
    assert metrics["gen_ai.client.token.usage"].unit == "{token}"
    # The failed attempts (the call and its retry) each logged the exception event in their span.
    events = [r for r in receiver.logs() if r.event_name == "gen_ai.client.operation.exception"]
    failed = [s for _, s in receiver.spans() if s.name == "chat gpt-4o-mini"]
    assert len(failed) == 2
    assert {(e.trace_id, e.span_id) for e in events} == {(s.trace_id, s.span_id) for s in failed}
    assert not any(KEY.encode() in body for body in receiver.raw)


def test_signal_specific_variables_are_honoured(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(
        monkeypatch,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # nothing listens: must not be used
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.url + "/v1/traces",
        OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
        OTEL_RESOURCE_ATTRIBUTES="service.name=from-env,deployment.environment=test",
    )
    handle = configure("overridden", set_global=False, flush_on_sigterm=False)
    try:
        assert (handle.meter_provider, handle.logger_provider) == (None, None)
        assert handle.tracer_provider is not None
        handle.tracer_provider.get_tracer("t").start_span("probe").end()
        assert handle.force_flush()
    finally:
        handle.shutdown()
    ((resource, span),) = receiver.spans()
    assert (span.name, resource["service.name"]) == ("probe", "from-env")
    assert resource["deployment.environment"] == "test"


def test_the_sampler_comes_from_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(
        monkeypatch, OTEL_TRACES_SAMPLER="always_off", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
    )
    handle = configure(set_global=False, flush_on_sigterm=False)
    try:
        assert handle.tracer_provider is not None
        handle.tracer_provider.get_tracer("t").start_span("sampled-out").end()
        assert handle.force_flush()
    finally:
        handle.shutdown()
    assert receiver.spans() == []


class _GrpcTraces:
    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []

    def export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
        self.exports.append(request)
        return ExportTraceServiceResponse()


def test_grpc_is_used_when_the_protocol_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    traces = _GrpcTraces()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        traces.export, request_deserializer=ExportTraceServiceRequest.FromString,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}
    )])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _env(
        monkeypatch, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
    )
    handle = configure("grpc-test", set_global=False, flush_on_sigterm=False)
    try:
        assert handle.tracer_provider is not None
        handle.tracer_provider.get_tracer("t").start_span("over-grpc").end()
        assert handle.force_flush()
    finally:
        handle.shutdown()
        server.stop(None)
    names = [
        s.name for e in traces.exports for rs in e.resource_spans for ss in rs.scope_spans for s in ss.spans
    ]
    assert names == ["over-grpc"]


def test_console_exporter_and_disabled_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch)
    handle = configure(exporter="console", set_global=False, flush_on_sigterm=False)
    assert handle.tracer_provider is not None
    assert handle.meter_provider is not None
    handle.shutdown()
    _env(monkeypatch, OTEL_SDK_DISABLED="true")
    off = configure(set_global=False, flush_on_sigterm=False)
    assert (off.tracer_provider, off.meter_provider, off.logger_provider) == (None, None, None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json'"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: 'zipkin'"),
    ],
)
def test_unsupported_settings_fail_naming_the_variable(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, **env)
    with pytest.raises(ConfigError, match=message):
        configure(set_global=False, flush_on_sigterm=False)


def test_missing_exporter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    _env(monkeypatch, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    with pytest.raises(MissingDependency, match=r"pip install 'gate_mw\[otlp\]'"):
        configure(set_global=False, flush_on_sigterm=False)


_APP_PROVIDER = """
import logging, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
mine = TracerProvider()
trace.set_tracer_provider(mine)
from gate_mw.telemetry import configure
handle = configure()
assert trace.get_tracer_provider() is mine and handle.tracer_provider is None
print("kept:", ",".join(handle.kept))
"""


def test_an_application_provider_is_left_alone_and_that_is_logged() -> None:
    # A process of its own: a global provider can be set once per process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    done = subprocess.run(
        [sys.executable, "-c", _APP_PROVIDER], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "already set providers for traces; leaving them alone" in done.stdout
    assert "kept: traces" in done.stdout


_SIGTERM_SCRIPT = """
import os, signal
from gate_mw.telemetry import configure
handle = configure("sigterm-test")
handle.tracer_provider.get_tracer("t").start_span("before-sigterm").end()
os.kill(os.getpid(), signal.SIGTERM)  # no server, no lifespan: only the handler flushes
raise SystemExit("not reached: SIGTERM still ends the process")
"""


def test_sigterm_flushes_then_ends_the_process_as_before(receiver: Receiver) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
    )
    done = subprocess.run(
        [sys.executable, "-c", _SIGTERM_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == -15, done.stderr  # the default action, after the flush
    assert [span.name for _, span in receiver.spans()] == ["before-sigterm"]
