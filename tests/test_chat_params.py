"""Parameters that fit each model: per-deployment `params:`, `extra_body=`, reasoning
models' `max_completion_tokens`, a typo'd keyword refused before any request, `n`, `raw`,
cache writes, and content a provider cannot take moving on to the next model."""

from __future__ import annotations

import logging

import pytest

from _apps import ENV, anthropic_entry, openai_entry
from gate_mw import Gateway, ModelEntry, RequestRejected, RoutePolicy
from gate_mw.providers import ChatRequest
from gate_mw.providers._anthropic_wire import finish_reason
from gate_mw.providers.openai import openai_usage
from gate_mw.testing import FakeUpstream, Reply

pytestmark = pytest.mark.anyio

ASK = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["o3", "o4-mini", "o3-pro", "gpt-5", "gpt-5-mini", "gpt-5.1"])
async def test_reasoning_models_get_max_completion_tokens(
    fake_upstream: FakeUpstream, model: str, caplog: pytest.LogCaptureFixture
) -> None:
    up = fake_upstream
    async with Gateway([openai_entry(up, "r", model)], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("r",), max_tokens=50, temperature=0.3))
        with caplog.at_level(logging.DEBUG, logger="gate_mw"):
            await gate.chat(ASK)
    body = up.requests[0].json
    assert body["max_completion_tokens"] == 50
    assert not {"max_tokens", "temperature"} & set(body)
    assert "takes no temperature" in caplog.text


@pytest.mark.parametrize("model", ["gpt-4o", "openai/o3", "omni-moderation"])
async def test_other_models_keep_max_tokens(fake_upstream: FakeUpstream, model: str) -> None:
    up = fake_upstream
    async with Gateway([openai_entry(up, "m", model)], env=ENV) as gateway:
        await gateway.client(RoutePolicy(models=("m",), max_tokens=50)).chat(ASK)
    assert up.requests[0].json["max_tokens"] == 50


async def test_a_typo_raises_type_error_before_any_request(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    async with Gateway([openai_entry(up, "m")], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("m",)))
        with pytest.raises(TypeError, match="'max_token'"):
            await gate.chat(ASK, max_token=50)
        with pytest.raises(TypeError, match="'tool_choise'"):
            gate.stream(ASK, tool_choise="auto")
    assert up.calls() == 0


async def test_params_go_to_their_deployment_only(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    router = openai_entry(
        up, "router", "openai/gpt-4o", provider="openrouter",
        params={"provider": {"sort": "price"}, "transforms": ["middle-out"]},
    )
    direct = openai_entry(up, "direct", "gpt-4o")
    up.script("openai/gpt-4o", Reply(), Reply())
    async with Gateway([router, direct], env=ENV) as gateway:
        for name in ("router", "direct"):
            gate = gateway.client(RoutePolicy(models=(name,)))
            await gate.chat(ASK, extra_body={"x_trace": "t1"}, frequency_penalty=0.2)
    via_router, via_direct = (r.json for r in up.requests)
    assert via_router["provider"] == {"sort": "price"}
    assert via_router["transforms"] == ["middle-out"]
    assert not {"provider", "transforms"} & set(via_direct)
    assert via_router["x_trace"] == via_direct["x_trace"] == "t1"
    assert via_direct["frequency_penalty"] == 0.2


def test_params_are_a_config_field() -> None:
    entry = ModelEntry.model_validate(
        {"name": "m", "provider": "openrouter", "params": {"usage": {"include": True}}}
    )
    assert entry.params == {"usage": {"include": True}}


async def test_n_choices_and_raw(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    async with Gateway([openai_entry(up, "m")], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("m",)))
        plain = await gate.chat(ASK)
        raw = await gate.chat(ASK, raw=True, n=1)
        several = await gate.chat(ASK, n=3)
    assert [choice.index for choice in several.choices] == [0, 1, 2]
    assert several.choices[2].message == several.message
    assert plain.raw is None
    assert raw.raw is not None
    assert raw.raw["choices"][0]["message"]["content"] == raw.text
    assert up.requests[1].json["n"] == 1
    assert raw.choices == ()


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_anthropic_cache_writes_are_reported(fake_upstream: FakeUpstream, streamed: bool) -> None:
    up = fake_upstream
    up.script("c", Reply("ok", input_tokens=10, cached_tokens=100, cache_write_tokens=1000, output_tokens=3))
    async with Gateway([anthropic_entry(up, "c")], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("c",)))
        if streamed:
            async with gate.stream(ASK) as stream:
                async for _ in stream:
                    pass
            result = stream.result
            assert result is not None
        else:
            result = await gate.chat(ASK)
    usage = result.usage
    assert (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens) == (1110, 100, 1000)


async def test_content_a_provider_cannot_take_moves_on(fake_upstream: FakeUpstream) -> None:
    """Audio goes to a model that takes it: Anthropic's refusal is no fault of the caller."""
    up = fake_upstream
    audio = [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]}]
    async with Gateway([anthropic_entry(up, "claude"), openai_entry(up, "gpt")], env=ENV) as gateway:
        result = await gateway.client(RoutePolicy(models=("claude", "gpt"), retries=0)).chat(audio)
    assert result.model == "gpt"
    assert result.attempts[0].outcome == "unsupported"
    assert [r.model for r in up.requests] == ["gpt"]  # nothing was sent to Anthropic


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"tools": {"type": "function"}}, "tools must be a list"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "function.name"),
        ({"tools": [{"type": "function"}]}, "tools[0].function is not an object"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "parameters"),
        ({"tool_choice": "always"}, "tool_choice must be one of"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "needs a name and a schema"),
    ],
)
async def test_malformed_tools_and_formats_are_the_callers_4xx(
    fake_upstream: FakeUpstream, options: dict[str, object], problem: str
) -> None:
    up = fake_upstream
    async with Gateway([anthropic_entry(up, "c"), openai_entry(up, "g")], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("c", "g")))
        with pytest.raises(RequestRejected, match=problem.replace("[", r"\[").replace("]", r"\]")) as caught:
            await gate.chat(ASK, **options)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert up.calls() == 0


async def test_provider_tools_pass_through(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    async with Gateway([anthropic_entry(up, "c")], env=ENV) as gateway:
        await gateway.client(RoutePolicy(models=("c",))).chat(ASK, tools=[search])
    assert up.requests[0].json["tools"] == [search]


async def test_a_message_that_does_not_translate_is_the_callers_4xx(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    odd = [{"role": "assistant", "content": "x", "tool_calls": [5]},
           {"role": "user", "content": "hi"}]
    async with Gateway([anthropic_entry(up, "c")], env=ENV) as gateway:
        with pytest.raises(RequestRejected, match="does not translate for Anthropic"):
            await gateway.client(RoutePolicy(models=("c",))).chat(odd)
    assert up.calls() == 0


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 110, "completion_tokens": 2, "prompt_tokens_details": {"cache_write_tokens": 100}},
        {"prompt_tokens": 110, "completion_tokens": 2, "cache_creation_input_tokens": 100},
    ],
    ids=["openrouter", "litellm"],
)
def test_routers_report_cache_writes(usage: dict[str, object]) -> None:
    parsed = openai_usage(usage, ChatRequest(messages=ASK), "")
    assert (parsed.input_tokens, parsed.cache_write_tokens) == (110, 100)


def test_anthropic_stop_reasons_in_openai_terms() -> None:
    assert [finish_reason(r) for r in ("end_turn", "tool_use", "max_tokens", "refusal", "pause_turn")] == [
        "stop", "tool_calls", "length", "content_filter", "pause_turn",
    ]
    assert finish_reason("tool_use", structured=True) == "stop"  # the forced tool is the answer


async def test_params_are_defaults_the_call_overrides(fake_upstream: FakeUpstream) -> None:
    """Anthropic's sampling parameters are dropped from calls; an older model that takes
    them gets them from its deployment's params. The call's own fields win."""
    up = fake_upstream
    entry = anthropic_entry(up, "c", params={"temperature": 0.2, "top_k": 5, "max_tokens": 9})
    async with Gateway([entry], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("c",), temperature=0.9))
        await gate.chat(ASK, max_tokens=50, extra_body={"top_k": 7})
    body = up.requests[0].json
    assert (body["temperature"], body["top_k"], body["max_tokens"]) == (0.2, 7, 50)
