"""The transports over real loopback HTTP: the gateway's own aiohttp pool, and a user's
`httpx.AsyncClient` (event hooks, base headers, a proxy, respx), both for plain and
streamed calls, with failures mapped to typed errors and bodies capped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from _apps import MESSAGES, SECRET, make_gateway, openai_entry
from gate_mw import AllAttemptsFailed, UpstreamLimits
from gate_mw.providers.transport import read_capped
from gate_mw.providers.transport._aiohttp import AiohttpTransport
from gate_mw.providers.transport._httpx import HttpxTransport
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio


async def _stream_text(gateway_client: object) -> str:
    async with gateway_client.stream(MESSAGES) as stream:  # type: ignore[attr-defined]
        return "".join([text async for text in stream])


async def test_the_gateway_owns_an_aiohttp_pool_and_closes_it(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("gpt", Reply("plain"), Reply("streamed"))
    gateway = make_gateway([openai_entry(up, "gpt")])
    async with gateway:
        pool = gateway._client()
        assert isinstance(pool, AiohttpTransport)
        assert (await gateway.client().chat(MESSAGES)).text == "plain"
        assert await _stream_text(gateway.client()) == "streamed"
        session = pool._session
        assert session is not None
        assert not session.closed
    assert session.closed
    [plain, streamed] = up.requests
    assert plain.headers["authorization"] == f"Bearer {SECRET}"
    assert plain.headers["content-type"] == "application/json"
    assert plain.json == {"model": "gpt", "messages": MESSAGES}
    assert streamed.stream


async def test_aiohttp_pool_maps_statuses_and_redacts(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("gpt", Fault(503, message=f"overloaded, key {SECRET}", retry_after=7))
    gateway = make_gateway([openai_entry(up, "gpt")], default_policy={"retries": 0})
    async with gateway:
        with pytest.raises(AllAttemptsFailed) as caught:
            await gateway.client().chat(MESSAGES)
    [attempt] = caught.value.attempts
    assert (attempt.outcome, attempt.status) == ("server_error", 503)
    assert SECRET not in (attempt.error or "")


@pytest.mark.parametrize("own_client", [False, True], ids=["aiohttp pool", "httpx client"])
async def test_a_reply_over_the_body_limit_is_a_protocol_error(
    fake_upstream: FakeUpstream, own_client: bool
) -> None:
    up = fake_upstream
    up.script("gpt", Reply("x" * 5000), Fault(500, message="e" * 5000))
    async with httpx.AsyncClient() as http_client:
        gateway = make_gateway(
            [openai_entry(up, "gpt")], default_policy={"retries": 1, "backoff": {"initial": 0}},
            upstream_limits=UpstreamLimits(max_body_bytes=1000, max_error_body_bytes=100),
            http_client=http_client if own_client else None,
        )
        async with gateway:
            with pytest.raises(AllAttemptsFailed) as caught:
                await gateway.client().chat(MESSAGES)
    too_long, server_error = caught.value.attempts
    assert too_long.outcome == "protocol"
    assert (server_error.outcome, server_error.status) == ("server_error", 500)
    assert len(server_error.error or "") <= 100


async def test_a_refused_connection_is_a_connection_error(fake_upstream: FakeUpstream) -> None:
    closed = FakeUpstream().start()
    dead_base = closed.openai_base
    closed.stop()  # nothing listens on its port any more
    entry = openai_entry(fake_upstream, "gpt", api_base=dead_base)
    gateway = make_gateway([entry], default_policy={"retries": 0})
    async with gateway:
        with pytest.raises(AllAttemptsFailed) as caught:
            await gateway.client().chat(MESSAGES)
    assert [a.outcome for a in caught.value.attempts] == ["connection"]


async def test_read_capped_cuts_or_fails() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"abc", b"def", b"ghi"):
            yield part

    assert await read_capped(chunks(), 100) == b"abcdefghi"
    assert await read_capped(chunks(), 5, cut=True) == b"abcde"
    with pytest.raises(Exception, match="over the 5-byte limit"):
        await read_capped(chunks(), 5)
    with pytest.raises(Exception, match="over the 5-byte limit"):
        await read_capped(chunks(), 5, declared=9)


async def test_a_users_httpx_client_is_used_as_given(fake_upstream: FakeUpstream) -> None:
    """Its event hooks run and its base headers are sent, for plain and streamed calls;
    the gateway leaves it open."""
    up = fake_upstream
    up.script("gpt", Reply("plain"), Reply("streamed"))
    seen: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(f"request {request.url.path}")

    async def on_response(response: httpx.Response) -> None:
        seen.append(f"response {response.status_code}")

    hooks = {"request": [on_request], "response": [on_response]}
    async with httpx.AsyncClient(event_hooks=hooks, headers={"x-tenant": "acme"}) as http_client:
        gateway = make_gateway([openai_entry(up, "gpt")], http_client=http_client)
        async with gateway:
            assert isinstance(gateway._client(), HttpxTransport)
            assert (await gateway.client().chat(MESSAGES)).text == "plain"
            assert await _stream_text(gateway.client()) == "streamed"
        assert not http_client.is_closed
    assert seen == ["request /v1/chat/completions", "response 200"] * 2
    assert [r.headers["x-tenant"] for r in up.requests] == ["acme", "acme"]
    assert up.requests[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_a_users_httpx_client_maps_errors(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("gpt", Fault(429, retry_after=3))
    async with httpx.AsyncClient() as http_client:
        gateway = make_gateway(
            [openai_entry(up, "gpt")], http_client=http_client, default_policy={"retries": 0}
        )
        async with gateway:
            with pytest.raises(AllAttemptsFailed) as caught:
                await gateway.client().chat(MESSAGES)
    assert [(a.outcome, a.status) for a in caught.value.attempts] == [("rate_limit", 429)]


@contextlib.asynccontextmanager
async def _forward_proxy(target_port: int, seen: list[str]) -> AsyncIterator[str]:
    """A plain-HTTP forward proxy on loopback that sends every request to `target_port`."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        writers.extend((writer, upstream_writer))
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, rest = head.split(b" ", 2)
        seen.append(target.decode())
        path = b"/" + target.split(b"/", 3)[3]  # absolute-form to origin-form
        upstream_writer.write(b" ".join((method, path, rest)))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_a_users_httpx_client_through_a_proxy(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.script("gpt", Reply("via proxy"))
    seen: list[str] = []
    async with _forward_proxy(up.port, seen) as proxy, httpx.AsyncClient(proxy=proxy) as http_client:
        entry = openai_entry(up, "gpt", api_base="http://upstream.invalid/v1")
        gateway = make_gateway([entry], http_client=http_client)
        async with gateway:
            assert (await gateway.client().chat(MESSAGES)).text == "via proxy"
    assert seen == ["http://upstream.invalid/v1/chat/completions"]


async def test_respx_mocks_a_users_httpx_client() -> None:
    reply = {
        "id": "chatcmpl-1", "model": "gpt", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "mocked"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    async with httpx.AsyncClient() as http_client:
        gateway = make_gateway(
            [{"name": "gpt", "provider": "openai", "api_base": "https://api.test/v1",
              "api_key_env": "FAKE_KEY"}],
            http_client=http_client,
        )
        with respx.mock(base_url="https://api.test/v1") as mock:
            route = mock.post("/chat/completions").respond(json=reply)
            async with gateway:
                result = await gateway.client().chat(MESSAGES)
    assert result.text == "mocked"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"


async def test_an_httpx_transport_given_to_the_gateway(fake_upstream: FakeUpstream) -> None:
    """`Gateway(transport=...)`: an httpx client made around it, closed with the gateway."""
    up = fake_upstream
    up.script("gpt", Reply("over httpx"))
    gateway = make_gateway([openai_entry(up, "gpt")], transport=httpx.AsyncHTTPTransport())
    async with gateway:
        pool = gateway._client()
        assert isinstance(pool, HttpxTransport)
        assert (await gateway.client().chat(MESSAGES)).text == "over httpx"
    assert pool.client.is_closed
