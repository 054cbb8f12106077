"""The fake upstream's tool calls and structured answers, read by the official SDKs: what
users test agent apps against has the real APIs' shapes."""

from __future__ import annotations

import anthropic
import openai
import pytest

from gate_mw.testing import FakeUpstream, Reply, ToolUse

pytestmark = pytest.mark.anyio

CALLS = [ToolUse("get_weather", {"city": "Paris"}, id="c1"), ToolUse("get_time", {}, id="c2")]


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_reads_scripted_tool_calls(fake_upstream: FakeUpstream, stream: bool) -> None:
    fake_upstream.script("gpt", Reply(tool_calls=CALLS))
    async with openai.AsyncOpenAI(base_url=fake_upstream.openai_base, api_key="x", max_retries=0) as client:
        if stream:
            async with client.chat.completions.stream(
                model="gpt", messages=[{"role": "user", "content": "hi"}]
            ) as events:
                completion = await events.get_final_completion()
        else:
            completion = await client.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "hi"}]
            )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("c1", "get_weather", '{"city":"Paris"}'), ("c2", "get_time", "{}"),
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_sdk_reads_scripted_tool_use(fake_upstream: FakeUpstream, stream: bool) -> None:
    fake_upstream.script("claude", Reply("Looking.", tool_calls=CALLS, cache_write_tokens=5))
    async with anthropic.AsyncAnthropic(
        base_url=fake_upstream.anthropic_base, api_key="x", max_retries=0
    ) as client:
        if stream:
            async with client.messages.stream(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            ) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "text"
    uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert uses == [("c1", "get_weather", {"city": "Paris"}), ("c2", "get_time", {})]
    assert message.usage.cache_creation_input_tokens == 5


async def test_structured_answer_fills_a_forced_anthropic_tool(fake_upstream: FakeUpstream) -> None:
    fake_upstream.script("claude", Reply(json={"x": 1}), Reply(json={"x": 2}))
    async with anthropic.AsyncAnthropic(
        base_url=fake_upstream.anthropic_base, api_key="x", max_retries=0
    ) as client:
        forced = await client.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            tools=[{"name": "point", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "point"},
        )
        plain = await client.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert [(b.type, getattr(b, "input", None)) for b in forced.content] == [("tool_use", {"x": 1})]
    assert [(b.type, getattr(b, "text", None)) for b in plain.content] == [("text", '{"x":2}')]
