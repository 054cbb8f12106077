"""Tools across providers: an agent loop that falls back mid-conversation, request bodies
checked against the official SDKs' types, and the OpenAI-shaped SSE read by the SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from _apps import ENV, anthropic_entry, openai_entry, serve_loopback
from _sdk import check_anthropic_body, check_openai_body
from gate_mw import ChatResult, Gateway, GatewayMiddleware, RoutePolicy, route_policy
from gate_mw.chat import StreamDone, TextDelta, ToolCallDelta
from gate_mw.responses import sse_response
from gate_mw.starlette import get_gate
from gate_mw.testing import FakeUpstream, Fault, RecordedRequest, Reply, ToolUse

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOLS = [WEATHER, TIME]
PNG = "data:image/png;base64,iVBORw0KGgo="


def _check(request: RecordedRequest) -> None:
    assert isinstance(request.json, dict)
    (check_openai_body if request.api == "openai" else check_anthropic_body)(request.json)


async def _ask(gate: Any, messages: list[dict[str, Any]], streamed: bool) -> ChatResult:
    if not streamed:
        result: ChatResult = await gate.chat(messages, tools=TOOLS, tool_choice="auto")
        return result
    events: list[Any] = []
    async with gate.stream(messages, tools=TOOLS, tool_choice="auto") as stream:
        events = [event async for event in stream.events()]
    assert isinstance(events[-1], StreamDone)
    result = events[-1].result
    # The typed events add up to the result: text deltas to its text, tool-call pieces
    # (by index) to its calls.
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == result.text
    pieces: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            pieces.setdefault(event.index, []).append(event.arguments)
    assert [json.loads("".join(p)) for _, p in sorted(pieces.items())] == [c.args for c in result.tool_calls]
    return result


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("first", ["anthropic", "openai"])
async def test_agent_loop_falls_back_across_providers_mid_conversation(
    fake_upstream: FakeUpstream, first: str, streamed: bool
) -> None:
    """Turn 1 on the first model; it fails on turn 2 and the other provider, given the
    same history (tool calls and results translated to its format), finishes the loop."""
    up = fake_upstream
    claude, gpt = anthropic_entry(up, "claude"), openai_entry(up, "gpt")
    one, two = (claude, gpt) if first == "anthropic" else (gpt, claude)
    up.script(one.name, Reply(tool_calls=[ToolUse("get_weather", {"city": "Paris"}, id="toolu_01")]))
    up.set_default(one.name, Fault(503))
    up.script(
        two.name,
        Reply("Checking the time too.", tool_calls=[ToolUse("get_time", {"city": "Paris"}, id="call_02")]),
        Reply("It is 18C and noon in Paris."),
    )
    policy = RoutePolicy(models=(one.name, two.name), retries=0)
    async with Gateway([one, two], env=ENV, seed=1) as gateway:
        gate = gateway.client(policy)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Use the tools."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? Here is a photo."},
                {"type": "image_url", "image_url": {"url": PNG}},
            ]},
        ]
        answers = {"get_weather": "18C", "get_time": "12:00"}
        turns: list[ChatResult] = []
        while True:
            result = await _ask(gate, messages, streamed)
            turns.append(result)
            messages.append(result.message)
            if not result.tool_calls:
                break
            for call in result.tool_calls:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": answers[call.name]})
    assert [t.model for t in turns] == [one.name, two.name, two.name]
    assert [t.fallbacks for t in turns] == [0, 1, 1]
    assert turns[1].attempts[0].outcome == "server_error"
    assert turns[0].tool_calls[0].args == {"city": "Paris"}
    assert turns[0].finish_reason == "tool_calls"
    message = turns[1].message
    assert json.loads(message["tool_calls"][0]["function"].pop("arguments")) == {"city": "Paris"}
    assert message == {
        "role": "assistant", "content": "Checking the time too.",
        "tool_calls": [{"id": "call_02", "type": "function", "function": {"name": "get_time"}}],
    }
    assert turns[2].text == "It is 18C and noon in Paris."
    requests = up.requests
    for request in requests:
        _check(request)
        assert request.stream is streamed
        assert request.images == [PNG]
    last = requests[-1]
    assert last.model == two.name
    body = last.json
    if two is claude:  # the OpenAI-shaped history, as Anthropic takes it
        assert body["system"] == "Use the tools."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
        assert body["messages"][1]["content"] == [
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
        ]
        assert body["messages"][2]["content"] == [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"}
        ]
        assert body["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]  # type: ignore[index]
        assert body["tool_choice"] == {"type": "auto"}
    else:  # the history as sent, in OpenAI's format
        assert [m["role"] for m in body["messages"]] == [
            "system", "user", "assistant", "tool", "assistant", "tool",
        ]
        assert body["messages"][2]["tool_calls"][0]["id"] == "toolu_01"
        assert body["tools"] == TOOLS
        assert body["tool_choice"] == "auto"


async def test_every_chat_parameter_fits_each_sdk(fake_upstream: FakeUpstream) -> None:
    """One call with every translated parameter, sent to both providers, streamed and not:
    each body parses as the official SDK's request type, with no unknown key."""
    up = fake_upstream
    entries = [openai_entry(up, "gpt"), anthropic_entry(up, "claude")]
    history: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{n}", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
            for n, city in ((1, "A"), (2, "B"))
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "1C"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "2C"}]},
        {"role": "user", "content": "Thanks"},
    ]
    async with Gateway(entries, env=ENV) as gateway:
        for entry in entries:
            up.script(entry.name, Reply(), Reply(json={"a": 1}), Reply())
            if entry.provider == "anthropic":  # prompt caching, marked on a part
                history[1]["content"][0]["cache_control"] = {"type": "ephemeral"}
            gate = gateway.client(RoutePolicy(models=(entry.name,), max_tokens=100, temperature=0.2))
            options: dict[str, Any] = {
                "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}},
                "parallel_tool_calls": False, "stop": ["END"], "user": "u-1", "seed": 7,
                "metadata": {"k": "v"}, "top_p": 0.9, "frequency_penalty": 0.5,
            }
            await gate.chat(history, **options)
            schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
            assert (await gate.chat(history, output=schema)).parsed == {"a": 1}
            async with gate.stream(history, **options) as stream:
                async for _ in stream:
                    pass
    assert len(up.requests) == 6
    for request in up.requests:
        _check(request)
    anthropic = [r.json for r in up.requests if r.api == "anthropic"]
    body = anthropic[0]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["stop_sequences"] == ["END"]
    assert body["tool_choice"] == {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}
    assert not {"seed", "frequency_penalty", "temperature", "top_p"} & set(body)
    # Both tool results in one user turn, followed by the user's text, as Anthropic requires.
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "1C"},
        {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "2C"}]},
        {"type": "text", "text": "Thanks"},
    ]
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"][2]["source"] == {
        "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo=",
    }
    structured = anthropic[1]
    assert structured["tool_choice"] == {"type": "tool", "name": "output"}
    assert structured["tools"][-1]["input_schema"]["properties"] == {"a": {"type": "integer"}}


def _sse_app(gateway: Gateway) -> Any:
    @route_policy(models=["gpt"], retries=0)
    async def completions(request: Request) -> Any:
        gate = get_gate(request)
        body = await request.json()
        return sse_response(gate.stream(body["messages"], tools=body.get("tools")))

    app = Starlette(
        routes=[Route("/v1/chat/completions", completions, methods=["POST"])], lifespan=gateway.lifespan
    )
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    return app


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_sse_helper_parses_with_the_openai_sdk(fake_upstream: FakeUpstream, provider: str) -> None:
    """`sse_response` speaks OpenAI's chunk format, tool calls included: the official SDK
    reads it and its stream helper assembles the same calls."""
    up = fake_upstream
    entry = openai_entry(up, "gpt") if provider == "openai" else anthropic_entry(up, "gpt")
    up.script("gpt", Reply("Let me look.", tool_calls=[
        ToolUse("get_weather", {"city": "Paris"}, id="c1"), ToolUse("get_time", {"city": "Rome"}, id="c2"),
    ]))
    gateway = Gateway([entry], env=ENV)
    async with serve_loopback(_sse_app(gateway)) as http, openai.AsyncOpenAI(
        base_url=f"{str(http.base_url).rstrip('/')}/v1", api_key="unused", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "hi"}], tools=TOOLS, stream=True,  # type: ignore[list-item]
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me look."
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += piece.id or ""
            call["name"] += (piece.function and piece.function.name) or ""
            call["arguments"] += (piece.function and piece.function.arguments) or ""
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())] == [
        ("c1", "get_weather", {"city": "Paris"}), ("c2", "get_time", {"city": "Rome"}),
    ]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_events_open_the_stream_and_text_iteration_skips_tool_calls(
    fake_upstream: FakeUpstream, provider: str
) -> None:
    up = fake_upstream
    entry = openai_entry(up, "m") if provider == "openai" else anthropic_entry(up, "m")
    up.script("m", Reply(tool_calls=[ToolUse("get_time", {"city": "Oslo"}, id="t1")]), Reply(
        "Done.", tool_calls=[ToolUse("get_time", {"city": "Rome"}, id="t2")]
    ))
    async with Gateway([entry], env=ENV) as gateway:
        gate = gateway.client(RoutePolicy(models=("m",)))
        stream = gate.stream([{"role": "user", "content": "time?"}], tools=[TIME])
        events = [event async for event in stream.events()]  # opens it: no async with
        texts = gate.stream([{"role": "user", "content": "time?"}], tools=[TIME])
        async with texts:
            assert [text async for text in texts] == ["Done."]
    assert isinstance(events[0], ToolCallDelta)
    assert (events[0].id, events[0].name) == ("t1", "get_time")
    assert isinstance(events[-1], StreamDone)
    assert [(c.id, c.args) for c in events[-1].result.tool_calls] == [("t1", {"city": "Oslo"})]
    assert texts.result is not None
    assert [(c.id, c.args) for c in texts.result.tool_calls] == [("t2", {"city": "Rome"})]
    assert texts.result.finish_reason == "tool_calls"
