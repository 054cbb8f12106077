"""Answer an HTTP request with a `GateStream` in one line (Starlette and FastAPI):

    return sse_response(gate.stream(messages))       # OpenAI-compatible chunks
    return text_event_stream(gate.stream(messages))  # text/event-stream of plain text

The stream is opened before the response head is sent, so models fall back unseen and a
call that fails everywhere is answered with its HTTP error status (by `GatewayMiddleware`).
When the client disconnects, the upstream request is closed at once and the spans record
`error.type=client_disconnect`. The event formats are in docs/streaming.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from json.encoder import encode_basestring
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ._streaming import GateStream
from .errors import StreamInterrupted
from .results import ChatResult

__all__ = ["GateStreamingResponse", "sse_response", "text_event_stream"]

# Proxies (nginx) buffer responses unless told not to, which would hold tokens back.
_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class GateStreamingResponse(StreamingResponse):
    """A `StreamingResponse` of the bytes `body` makes from `stream`, which it opens before
    sending the head and closes on every exit, a client disconnect included."""

    def __init__(
        self, stream: GateStream, body: AsyncIterator[bytes], *, status_code: int = 200,
        headers: Mapping[str, str] | None = None, background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            body, status_code=status_code, headers={**_HEADERS, **(headers or {})},
            media_type="text/event-stream", background=background,
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_stream(self.stream, receive, partial(self.stream_response, send))
        if self.background is not None:
            await self.background()


async def serve_stream(
    stream: GateStream, receive: Receive, respond: Callable[[], Awaitable[None]]
) -> None:
    """Open `stream`, then run `respond` (which sends the head and body) while watching for
    the client to leave; close `stream` on every exit. Shared with `gate_mw.litestar`."""
    try:
        await stream.open()
        async with anyio.create_task_group() as group:
            # Listen on every ASGI version: without it a stalled upstream would keep a
            # gone client's request (and its tokens) running until the next write.
            group.start_soon(_listen, stream, receive, group.cancel_scope)
            try:
                await respond()
            except OSError:  # ASGI 2.4 servers raise on send once the client is gone
                stream.mark_disconnected()
            group.cancel_scope.cancel()
    finally:
        await stream.aclose()


async def _listen(stream: GateStream, receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.mark_disconnected()
    scope.cancel()


def sse_response(
    stream: GateStream, *, headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> GateStreamingResponse:
    """OpenAI-compatible streaming chunks (`data: {...}`), a final usage chunk, then
    `data: [DONE]`; after a failure past the first token, `data: {"error": {...}}` instead
    of the usage and `[DONE]`."""
    return GateStreamingResponse(stream, _openai_chunks(stream), headers=headers, background=background)


def text_event_stream(
    stream: GateStream, *, headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> GateStreamingResponse:
    """A `text/event-stream` of the text (one `data:` event per delta) for `EventSource`,
    ended by `event: done` with usage and cost, or by `event: error`."""
    return GateStreamingResponse(stream, _text_events(stream), headers=headers, background=background)


def _error(exc: StreamInterrupted) -> dict[str, Any]:
    return {
        "message": str(exc), "type": exc.error_type, "code": exc.kind.value,
        "request_id": exc.request_id,
    }


def _usage(result: ChatResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _gate(result: ChatResult) -> dict[str, Any]:
    return {"cost_usd": result.cost_usd, "usage_estimated": result.usage.estimated}


async def _openai_chunks(stream: GateStream) -> AsyncIterator[bytes]:
    head = {
        "id": f"chatcmpl-{stream.request_id}", "object": "chat.completion.chunk",
        "created": int(time.time()), "model": stream.model,
    }
    role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    yield f"data: {_encode({**head, 'choices': [role]})}\n\n".encode()
    # Content chunks differ only in their text: encode just that.
    opening = _encode(head)[:-1]
    prefix = f'data: {opening},"choices":[{{"index":0,"delta":{{"content":'.encode()
    suffix = b'},"finish_reason":null}]}\n\n'
    try:
        async for text in stream:
            yield prefix + encode_basestring(text).encode() + suffix
    except StreamInterrupted as exc:
        yield f"data: {_encode({'error': _error(exc)})}\n\n".encode()
        return
    result = stream.result
    assert result is not None
    finish = {"index": 0, "delta": {}, "finish_reason": result.finish_reason}
    last = {**head, "choices": [finish]}
    usage = {**head, "choices": [], "usage": _usage(result), "gate": _gate(result)}
    yield f"data: {_encode(last)}\n\ndata: {_encode(usage)}\n\ndata: [DONE]\n\n".encode()


def _data(text: str) -> bytes:
    if "\n" in text or "\r" in text:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return "".join([f"data: {line}\n" for line in lines]).encode() + b"\n"
    return b"data: " + text.encode() + b"\n\n"


async def _text_events(stream: GateStream) -> AsyncIterator[bytes]:
    try:
        async for text in stream:
            yield _data(text)
    except StreamInterrupted as exc:
        yield f"event: error\ndata: {_encode(_error(exc))}\n\n".encode()
        return
    result = stream.result
    assert result is not None
    done = {
        "model": result.model, "finish_reason": result.finish_reason, "usage": _usage(result),
        **_gate(result),
    }
    yield f"event: done\ndata: {_encode(done)}\n\n".encode()
