"""The GenAI conventions' finer points, read from real SDK exporters: trace context sent on
every attempt, estimated tokens kept off the token metric, the exception log event,
`error.type` on a failed call, chunk timing, cache writes, cost unit and opt-in capture."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import StatusCode, get_current_span

from _apps import MESSAGES, make_gateway, openai_entry
from conftest import Telemetry
from gate_mw import AllAttemptsFailed, Gateway, TelemetryConfig, Usage
from gate_mw.providers import ProviderReply
from gate_mw.telemetry import Telemetry as GateTelemetry
from gate_mw.telemetry._content import input_attributes
from gate_mw.telemetry._propagation import continue_trace, end_continued
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

def _sent_parents(up: FakeUpstream) -> list[tuple[str, str]]:
    """(trace id, parent span id) of the traceparent each upstream request carried."""
    return [tuple(r.headers["traceparent"].split("-")[1:3]) for r in up.requests]  # type: ignore[misc]


def _ids(span: Any) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


async def test_every_attempt_sends_its_own_span_as_the_parent(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.script("primary", Fault(500), Fault(503))  # the call and its retry fail
    up.set_default("backup", Reply("ok"))
    gateway = make_gateway(
        [openai_entry(up, "primary"), openai_entry(up, "backup")], telemetry=telemetry.config
    )
    async with gateway:
        await gateway.client().chat(MESSAGES, model=["primary", "backup"])

    attempts = sorted(telemetry.spans("chat "), key=lambda s: s.attributes["gate.attempt"])
    assert [s.name for s in attempts] == ["chat primary", "chat primary", "chat backup"]
    assert _sent_parents(up) == [_ids(span) for span in attempts]


async def test_a_streamed_fallback_sends_each_attempts_span(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.set_default("primary", Fault(500))  # the attempt and its retry fail
    up.set_default("backup", Reply("one two three"))
    gateway = make_gateway(
        [openai_entry(up, "primary"), openai_entry(up, "backup")], telemetry=telemetry.config
    )
    async with gateway, gateway.client().stream(MESSAGES, model=["primary", "backup"]) as stream:
        text = "".join([chunk async for chunk in stream])

    assert text == "one two three"
    attempts = sorted(telemetry.spans("chat "), key=lambda s: s.attributes["gate.attempt"])
    assert _sent_parents(up) == [_ids(span) for span in attempts]
    # Chunks after the first are timed, one point each, with the duration buckets.
    [point] = telemetry.points("gen_ai.client.operation.time_per_output_chunk")
    assert point.count == 2  # type: ignore[attr-defined]
    assert point.explicit_bounds[0] == 0.01  # type: ignore[attr-defined]


async def test_estimated_tokens_stay_off_the_token_metric(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.set_default("gpt-4o", Reply("no usage here", usage=False))
    gateway = make_gateway([openai_entry(fake_upstream, "gpt-4o")], telemetry=telemetry.config)
    async with gateway:
        result = await gateway.client().chat(MESSAGES)

    assert result.usage.estimated
    assert telemetry.points("gen_ai.client.token.usage") == []
    [span] = telemetry.spans("chat ")
    assert span.attributes["gate.usage.estimated"] is True
    assert telemetry.points("gen_ai.client.operation.duration")  # the call is still timed


async def test_estimated_tokens_are_recorded_and_marked_when_opted_in(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.set_default("gpt-4o", Reply("no usage here", usage=False))
    config = TelemetryConfig(
        telemetry.config.tracer_provider, telemetry.config.meter_provider, record_estimated_tokens=True
    )
    gateway = make_gateway([openai_entry(fake_upstream, "gpt-4o")], telemetry=config)
    async with gateway:
        await gateway.client().chat(MESSAGES)

    points = telemetry.points("gen_ai.client.token.usage")
    assert len(points) == 2
    assert all(p.attributes["gate.usage.estimated"] is True for p in points)  # type: ignore[attr-defined]


def _failing(up: FakeUpstream, telemetry: Telemetry, status: int) -> Gateway:
    """A gateway whose one model always answers `status`."""
    up.set_default("gpt-4o", Fault(status))
    return make_gateway([openai_entry(up, "gpt-4o")], telemetry=telemetry.config)


async def test_a_failed_attempt_logs_the_exception_event_in_its_span(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    async with _failing(fake_upstream, telemetry, 503) as gateway:
        with pytest.raises(AllAttemptsFailed):
            await gateway.client().chat(MESSAGES)

    attempts = telemetry.spans("chat ")
    events = telemetry.events("gen_ai.client.operation.exception")
    assert len(events) == len(attempts) >= 1
    for span, event in zip(attempts, events, strict=True):
        record = event.log_record
        assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
        assert record.severity_text == "WARN"
        attributes = dict(record.attributes or {})
        assert attributes["error.type"] == "503"
        assert attributes["exception.type"] == "UpstreamError"
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.request.model"] == "gpt-4o"
    # The route span of an all-failed call says why, too.
    [route] = telemetry.spans("gate.route")
    assert route.status.status_code is StatusCode.ERROR
    assert route.attributes["error.type"] == "all_attempts_failed"


async def test_an_all_failed_stream_has_error_type_on_its_route_span(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    async with _failing(fake_upstream, telemetry, 500) as gateway:
        with pytest.raises(AllAttemptsFailed):
            await gateway.client().stream(MESSAGES).open()
    [route] = telemetry.spans("gate.route")
    assert route.attributes["error.type"] == "all_attempts_failed"


async def test_cache_writes_and_cost_unit(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "gpt-4o")], telemetry=telemetry.config)
    deployment = gateway.registry.deployments[0]
    gate_telemetry = gateway.telemetry
    span = gate_telemetry.start_attempt(deployment, _request(), {})
    usage = Usage(1200, 10, cached_tokens=100, cache_write_tokens=1000)
    gate_telemetry.attempt_succeeded(
        span, deployment, ProviderReply("hi", "stop", "gpt-4o", "r1", usage), 0.01, 0.2
    )
    [chat] = telemetry.spans("chat ")
    assert chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 1000
    assert chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    data = telemetry.metrics()
    assert data is not None
    units = {m.name: m.unit for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert units["gate.cost"] == "{USD}"
    assert units["gen_ai.client.token.usage"] == "{token}"


def _request() -> Any:
    from gate_mw.providers import ChatRequest

    return ChatRequest(messages=MESSAGES)


@pytest.mark.parametrize(
    ("env", "captured"),
    [
        ({}, False),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, False),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,gen_ai_latest_experimental",
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}, True),
        ({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}, False),
    ],
)
def test_content_capture_follows_the_semconv_opt_in(
    telemetry: Telemetry, env: dict[str, str], captured: bool
) -> None:
    gateway = make_gateway([openai_entry_stub()], telemetry=telemetry.config)
    gate_telemetry = GateTelemetry(telemetry.config, env)
    span = gate_telemetry.start_attempt(gateway.registry.deployments[0], _request(), {})
    span.end()
    [chat] = telemetry.spans("chat ")
    assert ("gen_ai.input.messages" in chat.attributes) is captured
    if captured:
        assert json.loads(chat.attributes["gen_ai.system_instructions"])[0]["content"] == "Be brief."


def openai_entry_stub() -> Any:
    from gate_mw import ModelEntry

    return ModelEntry(name="gpt-4o", provider="openai", api_base="http://127.0.0.1:9", api_key_env="K")


_TEXT = st.text(max_size=20)
_PART = st.one_of(
    _TEXT,
    st.fixed_dictionaries({"type": st.just("text"), "text": _TEXT}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": _TEXT})}),
    st.dictionaries(st.sampled_from(["type", "data", "x"]), _TEXT, max_size=3),
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool"])},
    optional={
        "content": st.one_of(st.none(), _TEXT, st.lists(_PART, max_size=3)),
        "tool_call_id": _TEXT,
        "tool_calls": st.lists(st.fixed_dictionaries(
            {"id": _TEXT, "function": st.fixed_dictionaries({"name": _TEXT, "arguments": _TEXT})}
        ), max_size=2),
    },
)


@given(st.lists(_MESSAGE, max_size=6))
def test_any_messages_capture_as_the_schema_says(messages: list[dict[str, Any]]) -> None:
    captured = input_attributes(messages)
    chat = json.loads(captured["gen_ai.input.messages"])
    assert [m["role"] for m in chat] == [
        m["role"] for m in messages if m["role"] not in ("system", "developer")
    ]
    assert all(isinstance(part["type"], str) for m in chat for part in m["parts"])
    system = json.loads(captured.get("gen_ai.system_instructions", "[]"))
    assert all(part["type"] for part in system)


@settings(max_examples=50, deadline=None)
@given(traceparent=st.text(max_size=80), tracestate=st.text(max_size=40))
def test_any_incoming_trace_headers_leave_the_request_unharmed(traceparent: str, tracestate: str) -> None:
    """Malformed context starts a new trace; it never fails the request or leaks into the next."""
    scope = {"type": "http", "headers": [
        (b"traceparent", traceparent.encode("utf-8", "replace")),
        (b"tracestate", tracestate.encode("utf-8", "replace")),
    ]}
    token = continue_trace(scope)
    try:
        context = get_current_span().get_span_context()
        if context.is_valid:
            assert traceparent.strip().split("-")[1].lower() == f"{context.trace_id:032x}"
    finally:
        end_continued(token)
    assert not get_current_span().get_span_context().is_valid


def test_captured_output_carries_the_tool_calls_asked_for() -> None:
    from gate_mw.chat import ToolCall
    from gate_mw.telemetry._content import output_messages

    call = ToolCall("call_1", "weather", '{"city": "Oslo"}')
    captured = json.loads(output_messages("", "tool_calls", (call,)))
    assert captured == [{
        "role": "assistant", "finish_reason": "tool_calls",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'}],
    }]
