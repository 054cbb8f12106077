"""Framework-neutral streaming bodies: the OpenAI-compatible and plain text event formats
of a `GateStream`, and the runner that opens it, watches for the client leaving and closes
it. Used by `gate_mw.responses` (Starlette, FastAPI) and `gate_mw.litestar`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from json.encoder import encode_basestring
from typing import Any

import anyio
from starlette.types import Receive

from ._streaming import GateStream
from .chat._model import TextDelta, ToolCallDelta
from .errors import StreamInterrupted
from .results import ChatResult

__all__ = ["STREAM_HEADERS", "openai_chunks", "openai_usage", "serve_stream", "text_events"]

# Proxies (nginx) buffer responses unless told not to, which would hold tokens back.
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


async def serve_stream(
    stream: GateStream, receive: Receive, respond: Callable[[], Awaitable[None]]
) -> None:
    """Open `stream`, then run `respond` (which sends the head and body), watching all the
    while for the client to leave; close `stream` on every exit.

    A client that leaves while the stream is still opening cancels the attempt in flight
    at once (its upstream request is closed) and no fallback starts for it; nothing is
    answered then, there being no one to answer."""
    failed: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            # Listen on every ASGI version: without it a stalled upstream would keep a
            # gone client's request (and its tokens) running until the next write.
            group.start_soon(_listen, stream, receive, group.cancel_scope)
            try:
                await stream.open()
            except Exception as exc:  # raised below, outside the group, unwrapped
                failed = exc
            else:
                try:
                    await respond()
                except OSError:  # ASGI 2.4 servers raise on send once the client is gone
                    stream.mark_disconnected()
            group.cancel_scope.cancel()
        if failed is not None:
            raise failed
    finally:
        await stream.aclose()


async def _listen(stream: GateStream, receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    stream.mark_disconnected()
    scope.cancel()


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


#: The OpenAI `usage` object of a result, cached and reasoning token details included.
openai_usage = _usage


def _tool_delta(delta: ToolCallDelta) -> dict[str, Any]:
    """A streamed tool-call piece as an OpenAI chunk's choice: id, type and name on the
    call's first piece only."""
    function: dict[str, Any] = {"arguments": delta.arguments}
    call: dict[str, Any] = {"index": delta.index}
    if delta.id is not None:
        call.update(id=delta.id, type="function")
    if delta.name is not None:
        function["name"] = delta.name
    call["function"] = function
    return {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}


def _gate(result: ChatResult) -> dict[str, Any]:
    return {"cost_usd": result.cost_usd, "usage_estimated": result.usage.estimated}


async def openai_chunks(
    stream: GateStream, *, model: str | None = None, include_usage: bool = True,
    extension: bool = True,
) -> AsyncIterator[bytes]:
    """OpenAI chat completion chunks of `stream`, named `model` (default: the alias that
    answers); the usage chunk only with `include_usage`, its `gate` field with `extension`."""
    head = {
        "id": f"chatcmpl-{stream.request_id}", "object": "chat.completion.chunk",
        "created": int(time.time()), "model": model or stream.model,
    }
    role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    yield f"data: {_encode({**head, 'choices': [role]})}\n\n".encode()
    # Content chunks differ only in their text: encode just that.
    opening = _encode(head)[:-1]
    prefix = f'data: {opening},"choices":[{{"index":0,"delta":{{"content":'.encode()
    suffix = b'},"finish_reason":null}]}\n\n'
    try:
        async for event in stream.events():
            if type(event) is TextDelta:
                yield prefix + encode_basestring(event.text).encode() + suffix
            elif type(event) is ToolCallDelta:
                yield f"data: {_encode({**head, 'choices': [_tool_delta(event)]})}\n\n".encode()
    except StreamInterrupted as exc:
        yield f"data: {_encode({'error': _error(exc)})}\n\n".encode()
        return
    result = stream.result
    assert result is not None
    finish = {"index": 0, "delta": {}, "finish_reason": result.finish_reason}
    last = {**head, "choices": [finish]}
    tail = f"data: {_encode(last)}\n\n"
    if include_usage:
        usage = {**head, "choices": [], "usage": _usage(result)}
        if extension:
            usage["gate"] = _gate(result)
        tail += f"data: {_encode(usage)}\n\n"
    yield f"{tail}data: [DONE]\n\n".encode()


def _data(text: str) -> bytes:
    if "\n" in text or "\r" in text:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return "".join([f"data: {line}\n" for line in lines]).encode() + b"\n"
    return b"data: " + text.encode() + b"\n\n"


async def text_events(stream: GateStream) -> AsyncIterator[bytes]:
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
