"""The proxy driven by the official `openai` and `anthropic` SDKs over a real uvicorn
server on loopback, in each framework flavour."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from _proxy_apps import FRAMEWORKS, MASTER, TEAM_KEY, Framework, build, proxy, proxy_gateway

from _apps import ANTHROPIC_SECRET, SECRET, serve_http
from gate_mw.testing import FakeUpstream, Fault, Reply, Stream, ToolUse

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> Framework:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def base_url(framework: Framework, fake_upstream: FakeUpstream) -> AsyncIterator[str]:
    async with serve_http(build(framework, proxy(proxy_gateway(fake_upstream)))) as url:
        yield url


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    """SDK clients made by `oai` and `claude`, closed after the test."""
    made: list[Any] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
def oai(clients: list[Any]) -> Any:
    def make(base_url: str, key: str = MASTER) -> openai.AsyncOpenAI:
        # No SDK retries: each test sees exactly what the proxy answered.
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
        clients.append(client)
        return client

    return make


@pytest.fixture
def claude(clients: list[Any]) -> Any:
    def make(base_url: str, key: str = MASTER) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0)
        clients.append(client)
        return client

    return make


async def test_chat_completion_is_faithful(base_url: str, fake_upstream: FakeUpstream, oai: Any) -> None:
    fake_upstream.script(
        "gpt-4o",
        Reply(
            "Paris.", input_tokens=20, output_tokens=7, cached_tokens=4, reasoning_tokens=2,
            system_fingerprint="fp_44709d6fcb",
        ),
    )
    raw = await oai(base_url).chat.completions.with_raw_response.create(model="fast", messages=USER)  # type: ignore[arg-type]
    completion = raw.parse()

    assert completion.choices[0].message.content == "Paris."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fast"
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (20, 7)
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 2
    assert completion.system_fingerprint == "fp_44709d6fcb"
    assert raw.headers["x-gate-model"] == "primary"
    assert raw.headers["x-gate-attempts"] == "1"
    assert float(raw.headers["x-gate-cost-usd"]) > 0
    sent = fake_upstream.requests[-1]
    assert sent.json["model"] == "gpt-4o"
    assert sent.json["messages"] == USER


async def test_stream_with_usage_chunk(base_url: str, fake_upstream: FakeUpstream, oai: Any) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=["Pa", "ris", "."], input_tokens=11, output_tokens=3))
    stream = await oai(base_url).chat.completions.create(
        model="fast",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Paris."
    assert {c.model for c in chunks} == {"fast"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 3)


async def test_stream_without_include_usage_has_no_usage_chunk(
    base_url: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=["Paris", "."]))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {MASTER}"},
            json={"model": "fast", "messages": USER, "stream": True},
        )
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all('"usage"' not in event for event in events)
    assert response.headers["x-gate-model"] == "primary"


async def test_tools_reach_the_upstream(base_url: str, fake_upstream: FakeUpstream, oai: Any) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    fake_upstream.script("gpt-4o", Reply("Let me check."))
    completion = await oai(base_url).chat.completions.create(
        model="fast",
        messages=USER,
        tools=[weather],
        tool_choice="auto",  # type: ignore[list-item, arg-type]
    )

    assert completion.choices[0].message.content == "Let me check."
    sent = fake_upstream.requests[-1].json
    assert sent["tools"] == [weather]
    assert sent["tool_choice"] == "auto"


async def test_models_list(base_url: str, oai: Any) -> None:
    page = await oai(base_url).models.list()
    assert [model.id for model in page.data] == ["fast", "primary", "backup"]
    assert {model.object for model in page.data} == {"model"}


async def test_models_retrieve(base_url: str, oai: Any) -> None:
    assert (await oai(base_url).models.retrieve("fast")).owned_by == "gate_mw"
    assert (await oai(base_url).models.retrieve("backup")).owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError):
        await oai(base_url).models.retrieve("gpt-5")
    with pytest.raises(openai.PermissionDeniedError):
        await oai(base_url, TEAM_KEY).models.retrieve("fast")


async def test_models_list_shows_only_what_a_key_may_use(base_url: str, oai: Any) -> None:
    page = await oai(base_url, TEAM_KEY).models.list()
    assert [model.id for model in page.data] == ["backup"]


async def test_anthropic_messages(base_url: str, fake_upstream: FakeUpstream, claude: Any) -> None:
    fake_upstream.script("gpt-4o", Reply("Paris.", input_tokens=12, output_tokens=3, cached_tokens=2))
    client = claude(base_url)
    message = await client.messages.create(
        model="fast",
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "Capital of France?"}],
    )

    assert message.model == "fast"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Paris."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (10, 2, 3)
    sent = fake_upstream.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert sent["max_tokens"] == 50


async def test_anthropic_messages_stream(base_url: str, fake_upstream: FakeUpstream, claude: Any) -> None:
    fake_upstream.script("gpt-4o", Stream(chunks=["Par", "is."], output_tokens=2))
    client = claude(base_url)
    async with client.messages.stream(
        model="fast", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as s:
        texts = [text async for text in s.text_stream]
        message = await s.get_final_message()

    assert "".join(texts) == "Paris."
    assert message.content[0].text == "Paris."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2


async def test_unknown_key_is_401(base_url: str, oai: Any, claude: Any) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        await oai(base_url, "sk-not-a-key").chat.completions.create(model="fast", messages=USER)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError):
        await claude(base_url, "nope").messages.create(
            model="fast",
            max_tokens=5,
            messages=[{"role": "user", "content": "Hi"}],
        )


async def test_forbidden_model_is_403_and_unknown_404(base_url: str, oai: Any) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        await oai(base_url, TEAM_KEY).chat.completions.create(model="fast", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError) as caught:
        await oai(base_url).chat.completions.create(model="gpt-5", messages=USER)  # type: ignore[arg-type]
    assert "fast, primary, backup" in caught.value.message


async def test_fallback_is_invisible_but_in_the_headers(
    base_url: str, fake_upstream: FakeUpstream, oai: Any
) -> None:
    fake_upstream.script("gpt-4o", Fault(503))
    fake_upstream.script("claude-haiku", Reply("Paris, from the backup."))
    raw = await oai(base_url).chat.completions.with_raw_response.create(model="fast", messages=USER)  # type: ignore[arg-type]
    completion = raw.parse()

    # An Anthropic model answered an OpenAI request: nothing in the body says so.
    assert completion.choices[0].message.content == "Paris, from the backup."
    assert completion.model == "fast"
    assert completion.id.startswith("chatcmpl-")
    assert completion.system_fingerprint is None  # none sent: none made up
    assert (raw.headers["x-gate-model"], raw.headers["x-gate-attempts"]) == ("backup", "2")


async def test_all_attempts_failed_is_a_typed_5xx(
    base_url: str, fake_upstream: FakeUpstream, oai: Any
) -> None:
    fake_upstream.set_default(None, Fault(503))
    with pytest.raises(openai.InternalServerError) as caught:
        await oai(base_url).chat.completions.create(model="fast", messages=USER)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "all_attempts_failed"
    assert [a["model"] for a in body["gate"]["attempts"]] == ["primary", "backup"]
    assert SECRET not in str(body)
    assert ANTHROPIC_SECRET not in str(body)


async def test_virtual_key_lifecycle(base_url: str, oai: Any) -> None:
    admin = {"authorization": f"Bearer {MASTER}"}
    async with httpx.AsyncClient(base_url=f"{base_url}/v1") as client:
        created = (
            await client.post("/keys", headers=admin, json={"name": "svc", "models": ["primary"]})
        ).json()
        key = created["key"]
        assert key.startswith("sk-gate-")
        completion = await oai(base_url, key).chat.completions.create(model="primary", messages=USER)  # type: ignore[arg-type]
        assert completion.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError):
            await oai(base_url, key).chat.completions.create(model="fast", messages=USER)  # type: ignore[arg-type]
        listed = await client.get("/keys", headers=admin)
        assert key not in listed.text
        assert {k["name"] for k in listed.json()["data"]} == {"team-a", "svc"}
        forbidden = await client.get("/keys", headers={"authorization": f"Bearer {key}"})
        assert forbidden.status_code == 403
        revoked = await client.delete(f"/keys/{created['id']}", headers=admin)
        assert revoked.json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        await oai(base_url, key).chat.completions.create(model="primary", messages=USER)  # type: ignore[arg-type]


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


async def test_tool_calls_come_back_through_openai(
    base_url: str, fake_upstream: FakeUpstream, oai: Any
) -> None:
    call = ToolUse("weather", {"city": "Paris"})
    fake_upstream.script("gpt-4o", Reply(tool_calls=[call]), Reply(tool_calls=[call]))
    completion = await oai(base_url).chat.completions.create(model="fast", messages=USER, tools=[WEATHER])
    (called,) = completion.choices[0].message.tool_calls
    assert (called.function.name, json.loads(called.function.arguments)) == ("weather", {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"

    stream = await oai(base_url).chat.completions.create(
        model="fast", messages=USER, tools=[WEATHER], stream=True
    )
    pieces = [
        d.tool_calls for c in [chunk async for chunk in stream] if c.choices for d in [c.choices[0].delta]
    ]
    arguments = "".join(p.function.arguments or "" for calls in pieces if calls for p in calls if p.function)
    assert json.loads(arguments) == {"city": "Paris"}


async def test_tool_use_comes_back_through_anthropic(
    base_url: str, fake_upstream: FakeUpstream, claude: Any
) -> None:
    call = ToolUse("weather", {"city": "Paris"})
    fake_upstream.script("claude-haiku", Reply(tool_calls=[call]), Reply(tool_calls=[call]))
    tools = [{"name": "weather", "input_schema": {"type": "object"}}]
    request = {
        "model": "backup",
        "max_tokens": 50,
        "tools": tools,
        "messages": [{"role": "user", "content": "Paris?"}],
    }
    message = await claude(base_url).messages.create(**request)
    assert message.stop_reason == "tool_use"
    (block,) = [b for b in message.content if b.type == "tool_use"]
    assert (block.name, block.input) == ("weather", {"city": "Paris"})

    async with claude(base_url).messages.stream(**request) as stream:
        final = await stream.get_final_message()
    (block,) = [b for b in final.content if b.type == "tool_use"]
    assert (block.name, block.input) == ("weather", {"city": "Paris"})
