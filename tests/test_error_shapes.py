"""The error shapes of real upstreams, over loopback HTTP: OpenRouter's mid-stream error,
402 and moderation 403, a LiteLLM proxy's "Invalid model name", Retry-After variants."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _apps import answer
from gate_mw import AllAttemptsFailed, ErrorKind, Gateway, ModelEntry, StreamInterrupted
from gate_mw.providers._errors import error_from_event, error_from_response
from gate_mw.testing import FakeUpstream, Fault, Reply, Stream

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Tell me a story."}]
KEY = "sk-or-test-123"
WORDS = ("Once", " upon", " a", " time.")


def _gateway(up: FakeUpstream, **policy: Any) -> Gateway:
    models = [
        ModelEntry(name="first", provider="openrouter", model="anthropic/claude-sonnet-4.5",
                   api_base=f"{up.url}/api/v1", api_key_env="KEY"),
        ModelEntry(name="second", provider="openrouter", model="openai/gpt-4o",
                   api_base=f"{up.url}/api/v1", api_key_env="KEY"),
    ]
    return Gateway(
        models, env={"KEY": KEY}, default_policy={"models": ["first", "second"], "retries": 0, **policy}
    )


@pytest.mark.parametrize("error_after", [0, 2])
async def test_openrouter_mid_stream_error_falls_back_before_the_first_token_only(
    fake_upstream: FakeUpstream, error_after: int
) -> None:
    up = fake_upstream
    up.script("anthropic/claude-sonnet-4.5", Stream(chunks=WORDS, error_after=error_after,
                                                    error_style="openrouter"))
    up.script("openai/gpt-4o", Stream(chunks=WORDS))
    async with _gateway(up) as gateway:
        stream = gateway.client().stream(MESSAGES)
        received: list[str] = []
        if error_after == 0:
            received = [text async for text in stream]
            assert received == list(WORDS)
            assert stream.result is not None
            assert [a.outcome for a in stream.result.attempts] == ["server_error", "ok"]
            assert stream.result.model == "second"
        else:
            interrupted: StreamInterrupted | None = None
            try:
                async for text in stream:
                    received.append(text)
            except StreamInterrupted as error:
                interrupted = error
            assert received == list(WORDS[:2])
            assert interrupted is not None  # never a silent clean end
            assert interrupted.kind is ErrorKind.SERVER
            assert up.calls("openai/gpt-4o") == 0


async def test_finish_reason_error_without_an_error_object_is_a_failure() -> None:
    error = error_from_event({"choices": [{"delta": {}, "finish_reason": "error"}]})
    assert error.kind is ErrorKind.SERVER
    assert "error" in str(error)
    coded = error_from_event({"error": {"code": 429, "message": "Rate limited upstream"}})
    assert coded.kind is ErrorKind.RATE_LIMIT


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (Fault.out_of_credits(), "payment_required"),
        (Fault.moderation(), "content_filter"),
        (Fault.invalid_model("anthropic/claude-sonnet-4.5"), "not_found"),
        (Fault(404, message="No endpoints found for anthropic/claude-sonnet-4.5."), "not_found"),
        (Fault(403, message="Forbidden"), "auth"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_refusals_move_on_to_the_next_model_at_once(
    fake_upstream: FakeUpstream, fault: Fault, outcome: str, streamed: bool
) -> None:
    up = fake_upstream
    up.script("anthropic/claude-sonnet-4.5", fault)
    up.set_default("openai/gpt-4o", Reply(text="fine"))
    async with _gateway(up, retries=2) as gateway:
        result = await answer(gateway.client(), MESSAGES, streamed=streamed)
    assert result.text == "fine"
    assert [a.outcome for a in result.attempts] == [outcome, "ok"]  # not retried, not the caller's fault
    assert up.calls("anthropic/claude-sonnet-4.5") == 1


async def test_moderation_does_not_count_against_the_deployment(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("anthropic/claude-sonnet-4.5", Fault.moderation())
    up.set_default("openai/gpt-4o", Fault.moderation())
    async with _gateway(up) as gateway:
        for _ in range(6):
            with pytest.raises(AllAttemptsFailed):
                await gateway.client().chat(MESSAGES)
        assert up.calls("anthropic/claude-sonnet-4.5") == 6  # never cooled down for the content


def _response(status: int, headers: dict[str, str], body: Any) -> httpx.Response:
    return httpx.Response(status, headers=headers, json=body)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"llm_provider-retry-after": "7"}, 7.0),
        ({"llm_provider-retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "800", "retry-after": "5"}, 0.8),
        ({}, None),
    ],
)
async def test_retry_after_is_read_from_every_header_name(
    headers: dict[str, str], seconds: float | None
) -> None:
    error = error_from_response(_response(429, headers, {"error": {"message": "slow down"}}))
    assert error.kind is ErrorKind.RATE_LIMIT
    assert error.retry_after == seconds


async def test_litellm_rate_limit_headers_reach_the_retry(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    # 60 s is over the backoff's Retry-After cap: read, it sends the call to the next model;
    # missed, the same model would be retried and answer.
    up.script("anthropic/claude-sonnet-4.5", Fault.litellm_rate_limited(retry_after=60), Reply(text="ok"))
    up.set_default("openai/gpt-4o", Reply(text="next"))
    async with _gateway(up, retries=1) as gateway:
        result = await gateway.client().chat(MESSAGES)
    assert result.text == "next"
    assert [a.outcome for a in result.attempts] == ["rate_limit", "ok"]
    assert up.calls("anthropic/claude-sonnet-4.5") == 1


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (402, {"code": 402, "message": "Insufficient credits"}, ErrorKind.PAYMENT_REQUIRED),
        (403, {"code": 403, "message": "Input was flagged by moderation"}, ErrorKind.CONTENT_FILTER),
        (400, {"code": "content_filter", "message": "filtered"}, ErrorKind.CONTENT_FILTER),
        (403, {"type": "permission_error", "message": "no"}, ErrorKind.AUTH),
        (400, {"message": "Invalid model name passed in model=x", "code": "400"}, ErrorKind.NOT_FOUND),
        (400, {"message": "x is not a valid model ID", "code": 400}, ErrorKind.NOT_FOUND),
        (400, {"message": "The model `gpt-9` does not exist"}, ErrorKind.NOT_FOUND),
        (400, {"message": "'max_tokens' is not supported with this model."}, ErrorKind.BAD_REQUEST),
        (400, {"message": "messages: field required", "type": "invalid_request"}, ErrorKind.BAD_REQUEST),
    ],
)
async def test_error_bodies_of_real_upstreams_are_classified(
    status: int, error: Any, kind: ErrorKind
) -> None:
    assert error_from_response(_response(status, {}, {"error": error})).kind is kind


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=12,
)
_ERROR_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "code": _JSON | st.integers(400, 599) | st.sampled_from(["402", "²", "rate_limit_exceeded"]),
        "message": _JSON,
        "type": _JSON,
    },
)


@given(status=st.integers(400, 599), body=_JSON | st.fixed_dictionaries({"error": _ERROR_FIELDS | _JSON}))
def test_any_error_body_gives_a_typed_bounded_error(status: int, body: Any) -> None:
    error = error_from_response(httpx.Response(status, json=body))
    assert isinstance(error.kind, ErrorKind)
    assert len(str(error)) <= 300
    in_stream = error_from_event(body)
    assert in_stream.kind is not ErrorKind.BAD_REQUEST  # an accepted request is never the caller's fault
    assert len(str(in_stream)) <= 300
