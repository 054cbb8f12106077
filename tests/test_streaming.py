"""`Gate.stream` against the fake upstream over loopback HTTP: fallback before the first
token, a committed stream after it, time limits, usage and cost, spans ended once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from conftest import Telemetry
from gate_mw import (
    AllAttemptsFailed,
    Gate,
    Gateway,
    ModelEntry,
    PolicyError,
    RoutePolicy,
    Simulation,
    StreamInterrupted,
)
from gate_mw.chat._tokens import estimate_text
from gate_mw.testing import FakeUpstream, Fault, Stream

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Tell me a story about a gateway."}]
WORDS = ("Once", " upon", " a", " time", " there", " was", " a", " gateway.")
KEY = "sk-test-123"


class _OpenSpans(SpanProcessor):
    """Tracks spans started and not yet ended."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.open.pop(span.context.span_id)


@pytest.fixture(autouse=True)
def _spans_end_once(telemetry: Telemetry, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test here: each span ended, and none twice (the SDK logs a second end())."""
    tracker = _OpenSpans()
    tracer_provider: Any = telemetry.config.tracer_provider
    tracer_provider.add_span_processor(tracker)
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        yield
    assert tracker.open == {}, "spans left open"
    ended_twice = [r for r in caplog.get_records("call") if "ended span" in r.getMessage()]
    assert not ended_twice, "a span ended twice"


def _gateway(up: FakeUpstream, telemetry: Telemetry, **policy: Any) -> Gateway:
    models = [
        ModelEntry(
            name="gpt", provider="openai", model="gpt-4o", api_base=up.openai_base,
            api_key_env="FAKE_KEY", input_cost_per_mtok=2.0, output_cost_per_mtok=8.0,
            cached_input_cost_per_mtok=0.5,
        ),
        ModelEntry(
            name="claude", provider="anthropic", model="claude-sonnet-4", api_base=up.anthropic_base,
            api_key_env="FAKE_KEY", input_cost_per_mtok=3.0, output_cost_per_mtok=15.0,
        ),
    ]
    return Gateway(
        models, env={"FAKE_KEY": KEY}, telemetry=telemetry.config,
        default_policy={"models": ["gpt", "claude"], "retries": 0, **policy},
    )


@pytest.fixture
async def gate(fake_upstream: FakeUpstream, telemetry: Telemetry) -> AsyncIterator[Gate]:
    async with _gateway(fake_upstream, telemetry) as gateway:
        yield gateway.client()


async def _collect(stream: AsyncIterator[str]) -> list[str]:
    return [text async for text in stream]


async def _interrupted(stream: AsyncIterator[str]) -> tuple[list[str], StreamInterrupted]:
    """The text received before the stream failed, and its failure."""
    received: list[str] = []
    try:
        async for text in stream:
            received.append(text)
    except StreamInterrupted as error:
        return received, error
    raise AssertionError("the stream ended without StreamInterrupted")


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _attempt_spans(telemetry: Telemetry) -> list[ReadableSpan]:
    return telemetry.spans("chat ")


def _route_span(telemetry: Telemetry) -> ReadableSpan:
    (span,) = telemetry.spans("gate.route ")
    return span


# -- a stream that works ---------------------------------------------------------------------


async def test_openai_stream_deltas_usage_cost_and_span(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Stream(
        chunks=WORDS, input_tokens=1000, output_tokens=500, cached_tokens=400, reasoning_tokens=200,
    ))
    stream = gate.stream(MESSAGES)
    assert await _collect(stream) == list(WORDS)

    (request,) = fake_upstream.requests
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    result = stream.result
    assert result is not None
    assert (result.text, result.model, result.finish_reason) == ("".join(WORDS), "gpt", "stop")
    assert result.usage.input_tokens == 1000
    assert result.usage.output_tokens == 500
    assert (result.usage.cached_tokens, result.usage.reasoning_tokens) == (400, 200)
    assert not result.usage.estimated
    # Cached input at its own price; reasoning tokens are output tokens.
    assert result.cost_usd == pytest.approx((600 * 2.0 + 400 * 0.5 + 500 * 8.0) / 1e6)

    (span,) = _attempt_spans(telemetry)
    attributes = _attributes(span)
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 500
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 400
    assert attributes["gen_ai.usage.reasoning.output_tokens"] == 200
    assert attributes["gen_ai.usage.cost"] == pytest.approx(result.cost_usd)
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gate.usage.estimated" not in attributes
    route = _route_span(telemetry)
    assert span.parent is not None
    assert span.parent.span_id == route.context.span_id
    assert _attributes(route)["gate.deployment"] == "gpt"
    # The route span lasts as long as the stream.
    assert route.end_time is not None
    assert span.end_time is not None
    assert route.end_time >= span.end_time

    (point,) = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert point.count == 1  # type: ignore[attr-defined]
    assert point.attributes["gen_ai.request.model"] == "gpt-4o"  # type: ignore[attr-defined]


async def test_anthropic_event_stream(gate: Gate, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script("claude-sonnet-4", Stream(
        chunks=WORDS, input_tokens=100, output_tokens=50, cached_tokens=40, finish_reason="length",
    ))
    stream = gate.stream(MESSAGES, model="claude", max_tokens=50)
    assert await _collect(stream) == list(WORDS)
    result = stream.result
    assert result is not None
    assert (result.model, result.finish_reason) == ("claude", "length")
    assert result.response_id is not None
    assert result.response_id.startswith("msg_fake")
    # Anthropic counts cache reads apart from input; gate_mw adds them in, as OpenAI does.
    assert (result.usage.input_tokens, result.usage.cached_tokens, result.usage.output_tokens) == (
        140, 40, 50,
    )
    assert result.cost_usd == pytest.approx((140 * 3.0 + 50 * 15.0) / 1e6)


async def test_an_empty_answer_ends_cleanly(gate: Gate, fake_upstream: FakeUpstream) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=(), finish_reason="content_filter"))
    async with gate.stream(MESSAGES) as stream:
        assert stream.model == "gpt"
        assert await _collect(stream) == []
    assert stream.result is not None
    assert (stream.result.text, stream.result.finish_reason) == ("", "content_filter")


async def test_simulated_models_stream_word_by_word(telemetry: Telemetry) -> None:
    flaky = Simulation(latency=0.01, ttft=0.0, fail_first=1)
    steady = Simulation(latency=0.01)
    gateway = Gateway(
        [ModelEntry(name="flaky", simulation=flaky), ModelEntry(name="steady", simulation=steady)],
        telemetry=telemetry.config, default_policy={"retries": 0},
    )
    async with gateway:
        stream = gateway.client().stream(MESSAGES)
        deltas = await _collect(stream)
    assert stream.result is not None
    assert stream.result.model == "steady"  # flaky failed before its first word
    assert len(deltas) > 1
    assert "".join(deltas) == stream.result.text
    chat = await gateway.client(RoutePolicy(models=("steady",))).chat(MESSAGES)
    assert chat.text == stream.result.text


# -- failures before the first token fall back, unseen --------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Fault(500), "server_error"),
        (Stream(error_after=0), "server_error"),
        (Stream(malformed_after=0), "protocol"),
        (Stream(cut_after=0), "connection"),
    ],
    ids=["500", "error-event", "malformed-first-chunk", "cut-before-first-token"],
)
async def test_failure_before_the_first_token_falls_back(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry, failure: Any, kind: str
) -> None:
    fake_upstream.script("gpt-4o", failure)
    fake_upstream.script("claude-sonnet-4", Stream(chunks=WORDS))
    stream = gate.stream(MESSAGES)
    assert await _collect(stream) == list(WORDS)  # nothing of the failed attempt leaks out
    assert stream.result is not None
    assert stream.result.model == "claude"
    assert [a.outcome for a in stream.result.attempts] == [kind, "ok"]

    failed, answered = _attempt_spans(telemetry)
    assert failed.status.status_code is StatusCode.ERROR
    assert _attributes(failed)["gate.error.kind"] == kind
    assert answered.status.status_code is StatusCode.UNSET
    assert _attributes(answered)["gate.fallback.reason"] == kind


async def test_anthropic_error_event_before_the_first_token_falls_back(
    gate: Gate, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script("claude-sonnet-4", Stream(error_after=0))
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS))
    stream = gate.stream(MESSAGES, model=["claude", "gpt"])
    assert await _collect(stream) == list(WORDS)
    assert stream.result is not None
    assert [a.outcome for a in stream.result.attempts] == ["server_error", "ok"]


async def test_a_stalled_stream_hits_the_ttft_deadline_and_falls_back(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    # The role-only chunk arrives, then nothing: it is not a token, so the clock runs on.
    # The limit is generous: the stalled request must reach the upstream before it ends,
    # which a loaded machine can delay by a few hundred milliseconds.
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, stall_after=0))
    fake_upstream.script("claude-sonnet-4", Stream(chunks=WORDS))
    async with _gateway(fake_upstream, telemetry, ttft=1.0) as gateway:
        stream = gateway.client().stream(MESSAGES)
        assert await _collect(stream) == list(WORDS)
    assert stream.result is not None
    (timed_out, _) = stream.result.attempts
    assert (timed_out.outcome, timed_out.latency_s >= 1.0) == ("timeout", True)
    assert await fake_upstream.wait_for_disconnect_async()  # the stalled request was closed


async def test_all_failing_raises_before_any_text(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Fault(503))
    fake_upstream.script("claude-sonnet-4", Stream(error_after=0))
    stream = gate.stream(MESSAGES)
    with pytest.raises(AllAttemptsFailed) as caught:
        await _collect(stream)
    assert [a.outcome for a in caught.value.attempts] == ["server_error", "server_error"]
    assert stream.result is None
    assert await _collect(stream) == []  # a failed stream stays ended
    assert _route_span(telemetry).status.status_code is StatusCode.ERROR
    assert len(_attempt_spans(telemetry)) == 2


# -- after the first token the stream is committed ------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Stream(chunks=WORDS, cut_after=3), "connection"),
        (Stream(chunks=WORDS, error_after=3), "server_error"),
        (Stream(chunks=WORDS, malformed_after=3), "protocol"),
    ],
    ids=["cut", "error-event", "malformed"],
)
async def test_a_failure_after_tokens_raises_stream_interrupted(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry, failure: Stream, kind: str
) -> None:
    fake_upstream.script("gpt-4o", failure)
    stream = gate.stream(MESSAGES)
    received, error = await _interrupted(stream)
    assert received == list(WORDS[:3])
    assert error.kind.value == kind
    assert error.partial.text == "".join(WORDS[:3])
    assert error.partial.usage.estimated
    assert error.partial.usage.output_tokens == estimate_text("".join(WORDS[:3]))
    assert error.partial.cost_usd is not None
    assert error.partial.cost_usd > 0
    assert fake_upstream.calls("claude-sonnet-4") == 0  # too late to fall back
    assert stream.result is None

    (span,) = _attempt_spans(telemetry)
    attributes = _attributes(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attributes["gate.error.kind"] == kind
    assert attributes["gate.usage.estimated"] is True
    assert attributes["gen_ai.usage.output_tokens"] == error.partial.usage.output_tokens
    assert _attributes(_route_span(telemetry))["error.type"] == kind


async def test_idle_timeout_mid_stream(fake_upstream: FakeUpstream, telemetry: Telemetry) -> None:
    # Generous: the two chunks before the stall must each come within the limit even on a
    # loaded machine.
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, stall_after=2))
    async with _gateway(fake_upstream, telemetry, idle_timeout=1.0) as gateway:
        received, error = await _interrupted(gateway.client().stream(MESSAGES))
    assert received == list(WORDS[:2])
    assert error.kind.value == "timeout"
    assert "no chunk for 1.0s" in str(error)
    assert await fake_upstream.wait_for_disconnect_async()
    assert _attributes(_attempt_spans(telemetry)[0])["error.type"] == "timeout"


async def test_the_deadline_bounds_a_stream_that_keeps_flowing(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    # Each gap is far within the idle limit, and the stream would flow for 20 s: only the
    # deadline can end it. The deadline is generous so that the first token comes before it
    # even on a loaded machine.
    words = WORDS * 50
    fake_upstream.script("gpt-4o", Stream(chunks=words, chunk_delay=0.05))
    async with _gateway(fake_upstream, telemetry, deadline=1.5, idle_timeout=1.0) as gateway:
        received, error = await _interrupted(gateway.client().stream(MESSAGES))
    assert 0 < len(received) < len(words)
    assert error.kind.value == "deadline"
    assert await fake_upstream.wait_for_disconnect_async()


async def test_the_deadline_alone_ends_a_stalled_stream(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    # Generous, so that the first tokens come before it even on a loaded machine.
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, stall_after=2))
    async with _gateway(fake_upstream, telemetry, deadline=1.0) as gateway:
        stream = gateway.client().stream(MESSAGES)
        with pytest.raises(StreamInterrupted) as caught:
            await _collect(stream)
    assert caught.value.kind.value == "deadline"


async def test_missing_usage_is_estimated_and_flagged(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, include_usage=False))
    stream = gate.stream(MESSAGES)
    await _collect(stream)
    result = stream.result
    assert result is not None
    assert result.usage.estimated
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens == estimate_text("".join(WORDS))
    assert result.cost_usd is not None
    assert result.cost_usd > 0
    attributes = _attributes(_attempt_spans(telemetry)[0])
    assert attributes["gate.usage.estimated"] is True
    assert attributes["gen_ai.usage.output_tokens"] == result.usage.output_tokens


# -- closing early and cancellation close the upstream request ------------------------------


async def test_aclose_mid_stream_closes_the_upstream_request(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, stall_after=3))
    async with gate.stream(MESSAGES) as stream:
        assert await anext(stream) == WORDS[0]
    assert await fake_upstream.wait_for_disconnect_async()
    assert stream.result is None
    (span,) = _attempt_spans(telemetry)
    assert _attributes(span)["error.type"] == "cancelled"
    assert _attributes(span)["gate.usage.estimated"] is True
    assert _attributes(_route_span(telemetry))["error.type"] == "cancelled"
    await stream.aclose()  # again: nothing more happens


async def test_cancelling_the_reader_closes_the_upstream_request(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=WORDS, stall_after=2))
    stream = gate.stream(MESSAGES)
    first = asyncio.Event()

    async def read() -> None:
        async for _ in stream:
            first.set()

    task = asyncio.create_task(read())
    await first.wait()
    stream.mark_disconnected()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake_upstream.wait_for_disconnect_async()
    (span,) = _attempt_spans(telemetry)
    assert _attributes(span)["error.type"] == "client_disconnect"
    assert span.status.description == "the client disconnected"


async def test_a_stream_never_opened_sends_nothing(
    gate: Gate, fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    stream = gate.stream(MESSAGES)
    calls = gate.context.calls_made()
    assert calls.streaming == 1
    await stream.aclose()
    assert calls.streaming == 0
    assert fake_upstream.calls() == 0
    assert telemetry.spans() == []


# -- policy ---------------------------------------------------------------------------------


def test_stream_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="ttft is longer than deadline"):
        RoutePolicy(ttft=5, deadline=2)
    with pytest.raises(ValueError, match="idle_timeout is longer than deadline"):
        RoutePolicy(idle_timeout=5, deadline=2)
    with pytest.raises(ValueError, match="greater than 0"):
        RoutePolicy(ttft=0)
    assert RoutePolicy(ttft=1, idle_timeout=2, deadline=2).ttft == 1


async def test_policy_errors_name_the_route(gate: Gate) -> None:
    with pytest.raises(PolicyError, match="unknown model"):
        gate.stream(MESSAGES, model="nope")
