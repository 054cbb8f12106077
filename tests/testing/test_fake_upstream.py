"""gate_mw.testing.FakeUpstream over real loopback HTTP, driven by httpx."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from gate_mw.testing import (
    Drop,
    FakeUpstream,
    Fault,
    RecordedRequest,
    Reply,
    Stream,
    estimate_tokens,
)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]
Client = httpx.AsyncClient


def run(test: Callable[[FakeUpstream, Client], Awaitable[None]], **kwargs: Any) -> None:
    """Run ``test`` against a fresh upstream and client on a fresh event loop."""

    async def main() -> None:
        with FakeUpstream(**kwargs) as up:
            async with httpx.AsyncClient(timeout=5.0) as client:
                await test(up, client)

    asyncio.run(main())


async def openai(
    up: FakeUpstream,
    client: Client,
    model: str = "gpt-4o",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, **extra}
    return await client.post(f"{up.openai_base}/chat/completions", json=body, headers=headers)


async def anthropic(up: FakeUpstream, client: Client, model: str = "claude", **extra: Any) -> httpx.Response:
    body = {"model": model, "system": "Be brief.", "messages": MESSAGES[1:], **extra}
    return await client.post(f"{up.anthropic_base}/v1/messages", json=body)


def sse_data(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body, parsed where they are JSON."""
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            raw = line[len("data: ") :]
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append(raw)
    return out


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, parsed data) pairs of an Anthropic-style SSE body."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def read_lines(client: Client, url: str, body: dict[str, Any], into: list[str]) -> None:
    """Stream a response into ``into`` line by line, so lines read before an error survive."""
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            into.append(line)


# -- plain replies ---------------------------------------------------------------------------


def test_openai_reply_with_usage_and_record() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        response = await openai(up, client, headers={"X-Trace": "t1"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["object"] == "chat.completion"
        assert body["id"].startswith("chatcmpl-")
        assert body["model"] == "gpt-4o"
        text = "Simulated answer to: What is the capital of France?"
        assert body["choices"] == [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ]
        prompt = estimate_tokens(MESSAGES)
        assert prompt == (9 // 4 + 4) + (30 // 4 + 4)
        assert body["usage"] == {
            "prompt_tokens": prompt,
            "completion_tokens": len(text) // 4,
            "total_tokens": prompt + len(text) // 4,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        [record] = up.requests
        assert isinstance(record, RecordedRequest)
        assert (record.api, record.path, record.model, record.stream) == (
            "openai",
            "/v1/chat/completions",
            "gpt-4o",
            False,
        )
        assert record.headers["x-trace"] == "t1"
        assert record.json["messages"] == MESSAGES
        assert up.calls("gpt-4o") == 1
        assert up.in_flight("gpt-4o") == 0

    run(check)


def test_openai_reply_overrides() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script(
            "gpt-4o",
            Reply(
                text="hi",
                input_tokens=100,
                output_tokens=7,
                cached_tokens=40,
                reasoning_tokens=3,
                finish_reason="length",
                model="gpt-4o-2024-08-06",
            ),
            Reply(text="bare", usage=False),
        )
        body = (await openai(up, client)).json()
        assert body["model"] == "gpt-4o-2024-08-06"
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["prompt_tokens"] == 100
        assert body["usage"]["total_tokens"] == 107
        assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 40}
        assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
        assert "usage" not in (await openai(up, client)).json()

    run(check)


def test_anthropic_reply_with_usage() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("claude", Reply(text="Paris.", cached_tokens=5, finish_reason="length"))
        response = await anthropic(up, client)
        assert response.status_code == 200
        body = response.json()
        assert body["type"] == "message"
        assert body["id"].startswith("msg_")
        assert body["content"] == [{"type": "text", "text": "Paris."}]
        assert body["stop_reason"] == "max_tokens"
        # The top-level system prompt counts like a leading message.
        assert body["usage"]["input_tokens"] == estimate_tokens(MESSAGES)
        assert body["usage"]["output_tokens"] == 1
        assert body["usage"]["cache_read_input_tokens"] == 5
        assert up.requests[0].api == "anthropic"
        assert (await anthropic(up, client)).json()["stop_reason"] == "end_turn"

    run(check)


def test_script_order_then_defaults() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Fault(500), Reply(text="second"))
        up.script(None, Reply(text="any model"))
        up.set_default("gpt-4o", Reply(text="default"))
        up.set_default(None, Reply(text="fallback"))
        statuses = []
        texts = []
        for model in ["gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o", "other"]:
            response = await openai(up, client, model=model)
            statuses.append(response.status_code)
            if response.status_code == 200:
                texts.append(response.json()["choices"][0]["message"]["content"])
        assert statuses == [500, 200, 200, 200, 200]
        assert texts == ["second", "any model", "default", "fallback"]
        assert (up.calls("gpt-4o"), up.calls("other"), up.calls()) == (4, 1, 5)
        assert [r.model for r in up.requests] == ["gpt-4o"] * 4 + ["other"]

        up.reset()
        assert (up.requests, up.calls(), up.disconnects) == ([], 0, 0)
        body = (await openai(up, client)).json()
        assert body["choices"][0]["message"]["content"].startswith("Simulated answer to: ")

    run(check)


# -- faults ----------------------------------------------------------------------------------


def test_fault_formats_and_retry_after() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Fault(503, message="down", retry_after=0.5), Fault.rate_limited())
        up.script("claude", Fault(529, retry_after=2), Fault(418, code="teapot", error_type="x"))

        response = await openai(up, client)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "0.5"
        assert response.json() == {
            "error": {"message": "down", "type": "server_error", "param": None, "code": None}
        }
        response = await openai(up, client)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "rate_limit_exceeded"

        response = await anthropic(up, client)
        assert response.status_code == 529
        assert response.headers["retry-after"] == "2"
        assert response.json() == {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded."},
        }
        response = await anthropic(up, client)
        assert response.status_code == 418
        assert "retry-after" not in response.headers
        assert response.json()["error"]["type"] == "x"

    run(check)


def test_fault_context_length() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Fault.context_length(1000))
        up.script("claude", Fault.context_length(1000))
        error = (await openai(up, client)).json()["error"]
        assert error["code"] == "context_length_exceeded"
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("This model's maximum context length is 1000 tokens")
        response = await anthropic(up, client)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"] == "prompt is too long: 1001 tokens > 1000 maximum"

    run(check)


def test_invalid_requests() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        response = await client.post(f"{up.url}/v2/nothing", json={})
        assert response.status_code == 404
        assert "error" in response.json()
        response = await client.get(f"{up.openai_base}/chat/completions")
        assert response.status_code == 405
        response = await client.post(f"{up.url}/v1/messages", content=b"{not json")
        assert response.status_code == 400
        assert response.json()["type"] == "error"
        response = await client.post(f"{up.openai_base}/chat/completions", json=[1, 2])
        assert response.status_code == 400
        assert "error" in response.json()
        # Bad requests are recorded but consume no scripted behaviour.
        assert [r.json for r in up.requests] == [None, [1, 2]]

    run(check)


def test_require_api_key() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script(None, Fault(500))
        response = await openai(up, client)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        url = f"{up.anthropic_base}/v1/messages"
        body = {"model": "claude", "messages": MESSAGES[1:]}
        response = await client.post(url, json=body, headers={"x-api-key": "wrong"})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        # The scripted Fault was not consumed by the rejected calls.
        ok = await client.post(
            f"{up.openai_base}/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES},
            headers={"Authorization": "Bearer sk-test"},
        )
        assert ok.status_code == 500
        response = await client.post(url, json=body, headers={"x-api-key": "sk-test"})
        assert response.status_code == 200

    run(check, require_api_key="sk-test")


# -- streaming -------------------------------------------------------------------------------


def test_openai_stream_usage_only_when_asked() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.set_default("gpt-4o", Stream(chunks=["Hel", "lo", "!"], cached_tokens=2))
        response = await openai(up, client, stream=True)
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        data = sse_data(response.text)
        assert data[-1] == "[DONE]"
        assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert data[1]["object"] == "chat.completion.chunk"
        content = "".join(d["choices"][0]["delta"].get("content", "") for d in data[:-1])
        assert content == "Hello!"
        assert data[-2]["choices"][0]["finish_reason"] == "stop"
        assert all("usage" not in d for d in data[:-1])

        asked: dict[str, Any] = {"stream_options": {"include_usage": True}}
        data = sse_data((await openai(up, client, stream=True, **asked)).text)
        usage_chunk = data[-2]
        assert usage_chunk["choices"] == []
        assert usage_chunk["usage"]["completion_tokens"] == 1
        assert usage_chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}
        assert data[-3]["choices"][0]["finish_reason"] == "stop"

        up.script("gpt-4o", Stream(text="a b", include_usage=True))
        assert "usage" in sse_data((await openai(up, client, stream=True)).text)[-2]
        up.script("gpt-4o", Stream(text="a b", include_usage=False))
        assert "usage" not in sse_data((await openai(up, client, stream=True, **asked)).text)[-2]
        assert [r.stream for r in up.requests] == [True] * 4

    run(check)


def test_reply_is_streamed_when_asked() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.set_default(None, Reply(text="one two three"))
        data = sse_data((await openai(up, client, stream=True)).text)
        words = [d["choices"][0]["delta"]["content"] for d in data[1:-2]]
        assert words == ["one", " two", " three"]
        events = sse_events((await anthropic(up, client, stream=True)).text)
        deltas = [e[1]["delta"]["text"] for e in events if e[0] == "content_block_delta"]
        assert deltas == ["one", " two", " three"]

    run(check)


def test_anthropic_stream_events() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("claude", Stream(chunks=["Pa", "ris"], input_tokens=9, cached_tokens=4))
        up.script("claude", Stream(chunks=["x"], include_usage=False))
        events = sse_events((await anthropic(up, client, stream=True)).text)
        names = [name for name, _ in events]
        assert names == [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        start = events[0][1]["message"]
        assert start["usage"]["input_tokens"] == 9
        assert start["usage"]["cache_read_input_tokens"] == 4
        assert events[3][1]["delta"] == {"type": "text_delta", "text": "Pa"}
        assert events[6][1]["delta"]["stop_reason"] == "end_turn"
        assert events[6][1]["usage"] == {"output_tokens": 1}
        events = sse_events((await anthropic(up, client, stream=True)).text)
        assert "usage" not in events[0][1]["message"]
        assert "usage" not in events[-2][1]

    run(check)


def test_stream_behaviour_on_plain_request() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Stream(chunks=["a", "b"], ttft=0.001, chunk_delay=0.001))
        body = (await openai(up, client)).json()
        assert body["choices"][0]["message"]["content"] == "ab"

    run(check)


def test_stream_with_delays_arrives_in_order() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Stream(chunks=["a", "b", "c"], ttft=0.01, chunk_delay=0.005))
        data = sse_data((await openai(up, client, stream=True)).text)
        assert [d["choices"][0]["delta"].get("content") for d in data[1:4]] == ["a", "b", "c"]

    run(check)


def test_cut_after_breaks_the_body() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Stream(chunks=["a", "b", "c"], cut_after=2))
        url = f"{up.openai_base}/chat/completions"
        body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
        lines: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):
            await read_lines(client, url, body, lines)
        contents = [d["choices"][0]["delta"]["content"] for d in sse_data("\n".join(lines))]
        assert contents == ["", "a", "b"]
        assert "data: [DONE]" not in lines
        assert up.disconnects == 0

    run(check)


def test_error_after_and_malformed_after() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Stream(chunks=["a", "b", "c"], error_after=1))
        up.script("gpt-4o", Stream(chunks=["a", "b"], malformed_after=1))
        up.script("claude", Stream(chunks=["a", "b"], error_after=1))

        data = sse_data((await openai(up, client, stream=True)).text)
        assert data[1]["choices"][0]["delta"]["content"] == "a"
        assert data[-1] == {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        assert len(data) == 3

        data = sse_data((await openai(up, client, stream=True)).text)
        assert data[2] == "{not json"
        assert data[3]["choices"][0]["delta"]["content"] == "b"
        assert data[-1] == "[DONE]"

        events = sse_events((await anthropic(up, client, stream=True)).text)
        assert events[-1] == (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
        assert [name for name, _ in events].count("content_block_delta") == 1

    run(check)


# -- disconnects, drops, holds ---------------------------------------------------------------


def test_stall_then_client_close_counts_a_disconnect() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Stream(chunks=["a", "b"], stall_after=1))
        url = f"{up.openai_base}/chat/completions"
        body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
        async with client.stream("POST", url, json=body) as response:
            lines = response.aiter_lines()
            assert (await anext(lines)).startswith("data: ")  # role chunk
            assert await anext(lines) == ""
            assert '"content":"a"' in await anext(lines)
            assert up.in_flight("gpt-4o") == 1
        # Leaving the block before the body ended closes the connection.
        assert await up.wait_for_disconnect_async(timeout=5.0)
        assert up.disconnects == 1
        assert up.in_flight("gpt-4o") == 0

    run(check)


def test_client_giving_up_during_latency_counts_a_disconnect() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.set_default("slow", Reply(latency=30.0))
        request = asyncio.create_task(openai(up, client, model="slow"))
        assert await up.wait_for_in_flight_async("slow", 1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert await up.wait_for_disconnect_async(timeout=5.0)
        assert up.in_flight("slow") == 0
        # The blocking twin sees the same state from any thread.
        waited = await asyncio.to_thread(up.wait_for_disconnect, 5.0)
        assert waited

    run(check)


def test_drop_closes_without_a_response() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.script("gpt-4o", Drop(), Drop(latency=0.001))
        for _ in range(2):
            with pytest.raises(httpx.RemoteProtocolError):
                await openai(up, client)
        assert (await openai(up, client)).status_code == 200
        assert up.disconnects == 0

    run(check)


def test_hold_and_release_with_in_flight() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        up.hold("gpt-4o")
        requests = [asyncio.create_task(openai(up, client)) for _ in range(3)]
        assert await up.wait_for_in_flight_async("gpt-4o", 3)
        assert up.in_flight() == 3
        assert not any(task.done() for task in requests)
        # Other models are not held.
        assert (await openai(up, client, model="free")).status_code == 200
        up.release("gpt-4o")
        responses = await asyncio.gather(*requests)
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert up.in_flight("gpt-4o") == 0

    run(check)


def test_waits_time_out() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        assert not up.wait_for_disconnect(timeout=0.01)
        assert not await up.wait_for_disconnect_async(timeout=0.01)
        assert not up.wait_for_in_flight("gpt-4o", 1, timeout=0.01)
        assert not await up.wait_for_in_flight_async("gpt-4o", 1, timeout=0.01)
        assert await up.wait_for_in_flight_async("gpt-4o", 0)

    run(check)


# -- HTTP details, lifecycle -----------------------------------------------------------------


def test_pipelined_keep_alive_and_chunked_request_body() -> None:
    async def check(up: FakeUpstream, client: Client) -> None:
        payload = json.dumps({"model": "m", "messages": MESSAGES}).encode()
        plain = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
        )
        half = len(payload) // 2
        chunked = (
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n"
            % (half, payload[:half], len(payload) - half, payload[half:])
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", up.port)
        writer.write(plain + chunked)
        raw = await reader.read()  # the server closes after the second, "Connection: close"
        writer.close()
        await writer.wait_closed()
        assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert b"connection: close\r\n" in raw
        assert [r.api for r in up.requests] == ["openai", "anthropic"]
        assert up.requests[1].json["model"] == "m"

    run(check)


def test_async_context_manager_and_restart() -> None:
    async def main() -> None:
        async with FakeUpstream() as up, httpx.AsyncClient() as client:
            assert up.anthropic_base == up.url
            assert up.openai_base == f"{up.url}/v1"
            assert (await openai(up, client)).status_code == 200
        with pytest.raises(RuntimeError):
            _ = up.url
        up.start()
        try:
            async with httpx.AsyncClient() as client:
                assert (await openai(up, client)).status_code == 200
        finally:
            up.stop()
            up.stop()

    asyncio.run(main())


def test_start_failure_is_raised_and_record_off() -> None:
    with FakeUpstream(record=False) as up:
        with pytest.raises(OSError):
            FakeUpstream(port=up.port).start()
        response = httpx.post(f"{up.openai_base}/chat/completions", json={"model": "m", "messages": MESSAGES})
        assert response.status_code == 200
        assert (up.requests, up.calls(), up.calls("m")) == ([], 1, 1)


def test_behaviour_validation() -> None:
    with pytest.raises(ValueError):
        Fault(200)
    with pytest.raises(ValueError):
        Reply(latency=-1)
    with pytest.raises(ValueError):
        Stream(text="a", chunks=["a"])
    with pytest.raises(ValueError):
        Stream(cut_after=-1)
    assert Stream(chunks=["a"]).chunks == ("a",)


def test_pytest_plugin_fixture(fake_upstream: FakeUpstream) -> None:
    response = httpx.post(
        f"{fake_upstream.openai_base}/chat/completions",
        json={"model": "m", "messages": MESSAGES},
    )
    assert response.status_code == 200
    assert fake_upstream.calls("m") == 1


def test_cli_prints_ready_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gate_mw.testing", "--port", "0", "--stream-chunks", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        body = {"model": "m", "messages": MESSAGES, "stream": True}
        response = httpx.post(f"{url}/v1/chat/completions", json=body)
        contents = [d["choices"][0]["delta"].get("content") for d in sse_data(response.text)[1:4]]
        assert contents == ["token0 ", "token1 ", "token2 "]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
        assert process.stdout is not None
        process.stdout.close()


def test_a_stop_closes_a_connection_accepted_just_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stops between the loop accepting a socket and its connection_made: that
    connection's transport is closed too (else its socket leaks: a ResourceWarning at gc)."""
    import socket

    from gate_mw.testing import _http

    stops: list[asyncio.Task[None]] = []
    made = _http.HTTPConnection.__init__
    accepting: asyncio.Future[None]

    def accepted(connection: _http.HTTPConnection, server: _http.HTTPServer) -> None:
        made(connection, server)
        # Queued ahead of the new transport's connection_made.
        stops.append(server.loop.create_task(server.close()))
        accepting.set_result(None)

    monkeypatch.setattr(_http.HTTPConnection, "__init__", accepted)

    async def main() -> set[_http.HTTPConnection]:
        nonlocal accepting
        accepting = asyncio.get_running_loop().create_future()
        server = _http.HTTPServer(lambda _request, _connection: asyncio.sleep(0))
        await server.start("127.0.0.1", 0)
        with socket.create_connection(("127.0.0.1", server.port)):
            await accepting
            await stops[0]
            return set(server.connections)

    assert asyncio.run(main()) == set()
