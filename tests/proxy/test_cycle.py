"""`gate-mw serve`'s request cycle (`proxy/_cycle.py`) and protocol (`proxy/_uvicorn.py`):
the bytes a client receives are those uvicorn's own httptools protocol sends, for answers
of every framing, and for a head uvicorn refuses; a kept-alive connection closes once idle
for the timeout. Each served by real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from _proxy_apps import Recorder

from _apps import serve_http
from gate_mw.proxy._cycle import Cycle
from gate_mw.proxy._uvicorn import HTTP_PROTOCOL, SUPPORTED, CoalescingTransport

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not SUPPORTED, reason=f"uvicorn {uvicorn.__version__}: gate-mw serve runs uvicorn's own protocol"
    ),
]

App = Callable[[Any, Any, Any], Awaitable[None]]


def answering(*messages: dict[str, Any]) -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        for message in messages:
            await send(message)
            await asyncio.sleep(0)  # a stream's chunks in separate turns of the loop

    return app


def start(status: int = 200, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send `request` on a new connection; all the server sends until it closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()


def request(method: str = "POST", body: bytes = b"{}") -> bytes:
    return (
        f"{method} /x HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


async def both(app: App, sent: bytes) -> tuple[bytes, bytes]:
    """What uvicorn's httptools protocol answers to `sent`, and what the proxy's does (the
    date header, which may turn over a second in between, left out)."""
    answers = []
    for http in ("httptools", HTTP_PROTOCOL):
        async with serve_http(app, http=http) as url:
            answers.append(re.sub(rb"date: [^\r]*\r\n", b"", await raw_exchange(url, sent)))
    return answers[0], answers[1]


ANSWERS = {
    "json": (start(200, (b"Content-Type", b"application/json"), (b"content-length", b"2")), body(b"{}")),
    "streamed": (
        start(200, (b"content-type", b"text/event-stream")), body(b"a", True), body(b"b", True), body(b"")
    ),
    "empty": (start(204),),
    "closing": (start(200, (b"connection", b"close"), (b"content-length", b"3")), body(b"abc")),
    "bad value": (start(200, (b"x-bad", b"a\nb")), body(b"")),
    "bad name": (start(200, (b"x bad", b"a")), body(b"")),
    "too long": (start(200, (b"content-length", b"1")), body(b"ab")),
}


@pytest.mark.parametrize("name", list(ANSWERS))
async def test_the_client_receives_what_uvicorn_would_send(name: str) -> None:
    messages = ANSWERS[name]
    if name == "empty":
        messages = (*messages, body(b""))
    uvicorns, ours = await both(answering(*messages), request())
    assert ours == uvicorns
    if name in ("json", "streamed", "closing"):
        assert ours.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"server: uvicorn\r\n" in ours
    if name.startswith("bad"):
        assert ours == b""  # uvicorn refuses the head: the connection closes, unanswered


async def test_a_head_request_is_answered_with_the_head_alone() -> None:
    app = answering(start(200, (b"content-length", b"2")), body(b"{}"))
    uvicorns, ours = await both(app, request("HEAD", b""))
    assert ours == uvicorns
    assert ours.endswith(b"content-length: 2\r\nconnection: close\r\n\r\n")


async def test_a_keep_alive_connection_answers_request_after_request() -> None:
    app = answering(start(200, (b"content-length", b"2")), body(b"{}"))
    keep = request().replace(b"connection: close\r\n", b"")
    async with serve_http(app, http=HTTP_PROTOCOL) as url:
        answer = await raw_exchange(url, keep + keep + request())  # pipelined, the last closing
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answer.endswith(b"connection: close\r\n\r\n{}")


async def test_requests_are_served_by_the_proxys_cycle() -> None:
    cycles: list[type] = []
    inner = answering(start(200, (b"content-length", b"0")), body(b""))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            cycles.append(type(receive.__self__))
        await inner(scope, receive, send)

    async with serve_http(app, http=HTTP_PROTOCOL) as url:
        assert (await raw_exchange(url, request())).startswith(b"HTTP/1.1 200 OK")
    assert cycles == [Cycle]


async def test_a_held_head_goes_out_with_the_next_write_or_at_close() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.hold(b"head ")
    await asyncio.sleep(0)
    assert inner.writes == []  # as the ASGI spec asks: not before the first body message
    transport.write_now(b"body")
    assert inner.writes == [b"head body"]  # a complete answer: at once, in one write
    transport.hold(b"head ")
    transport.write(b"chunk")
    transport.write(b"")
    await asyncio.sleep(0)
    assert inner.writes == [b"head body", b"head chunk"]
    transport.hold(b"last head")
    transport.close()
    assert inner.writes[-1] == b"last head"
    assert inner.closed


async def test_a_kept_alive_connection_closes_once_idle_for_the_timeout() -> None:
    app = answering(start(200, (b"content-length", b"2")), body(b"{}"))
    keep = request().replace(b"connection: close\r\n", b"")
    loop = asyncio.get_running_loop()
    # A timeout ten times the pause between requests, so that a loaded machine's delays
    # cannot make a pause look like an idle connection.
    async with serve_http(app, http=HTTP_PROTOCOL, timeout_keep_alive=1) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            # Requests every 0.1 s for 1.2 s: the connection works past the timeout, open.
            for _ in range(12):
                writer.write(keep)
                assert (await reader.readuntil(b"{}")).startswith(b"HTTP/1.1 200 OK")
                await asyncio.sleep(0.1)
            idle = loop.time()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server...
            assert loop.time() - idle >= 0.8  # ...once idle for the timeout (from the last answer)
        finally:
            writer.close()
