"""How the fake upstream answers a request with a behaviour: a reply, a stream (cut,
stalled, broken or slow as scripted), a fault, a drop or raw bytes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from ._behaviours import Behaviour, Drop, Fault, Raw, Reply, Stream
from ._formats import (
    Api,
    Completion,
    completion_body,
    estimate_tokens,
    fault_body,
    openrouter_stream_error,
    prompt_messages,
    simulated_text,
    sse_format,
)
from ._http import HTTPConnection
from ._requests import RecordedRequest

__all__ = ["JSON_HEADERS", "Pause", "perform"]

#: Sleep for a behaviour's latency, then wait out any hold on the model (the upstream's).
Pause = Callable[[float, "str | None"], Awaitable[None]]

JSON_HEADERS = (("content-type", "application/json"),)
_SSE_HEADERS = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))
_WORD = re.compile(r"\s*\S+|\s+")
_STREAM_ERROR = {
    "openai": "The server had an error while processing your request.",
    "anthropic": "Overloaded",
}
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _seconds(value: float) -> str:
    """``1.0 -> "1"``, ``0.5 -> "0.5"``: what providers put in ``Retry-After``."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _forced_tool(api: Api, body: Mapping[str, Any]) -> str | None:
    """The tool an Anthropic request forces (how structured output is asked for there)."""
    choice = body.get("tool_choice") if api == "anthropic" else None
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        name = choice.get("name")
        return name if isinstance(name, str) else None
    return None


def _completion(
    api: Api,
    data: Mapping[str, Any],
    text: str,
    behaviour: Reply | Stream,
    usage: bool,
    ids: Iterator[int],
) -> Completion:
    input_tokens = behaviour.input_tokens
    if input_tokens is None:
        input_tokens = estimate_tokens(prompt_messages(api, data))
    output_tokens = behaviour.output_tokens
    if output_tokens is None:
        output_tokens = max(1, len(text) // 4)
    model = behaviour.model if isinstance(behaviour, Reply) else None
    if model is None:
        requested = data.get("model")
        model = requested if isinstance(requested, str) else "unknown"
    number = next(ids)
    calls: list[tuple[str, str, str]] = []
    finish = behaviour.finish_reason
    if isinstance(behaviour, Reply):
        calls = [
            (call.id or f"call_fake{number:08d}_{index}", call.name, _encode(dict(call.arguments)))
            for index, call in enumerate(behaviour.tool_calls)
        ]
        if behaviour.json is not None and (forced := _forced_tool(api, data)) is not None:
            calls.append((f"call_fake{number:08d}_json", forced, _encode(behaviour.json)))
            text = ""
        finish = finish or ("tool_calls" if calls else "stop")
    return Completion(
        id=f"chatcmpl-fake{number:08d}" if api == "openai" else f"msg_fake{number:08d}",
        model=model,
        created=int(time.time()),
        text=text,
        finish_reason=finish or "stop",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=behaviour.cached_tokens,
        reasoning_tokens=behaviour.reasoning_tokens,
        usage=usage,
        cache_write_tokens=behaviour.cache_write_tokens,
        cost=behaviour.cost,
        tool_calls=tuple(calls),
        choices=n if isinstance(n := data.get("n"), int) and 1 <= n <= 128 else 1,
        system_fingerprint=behaviour.system_fingerprint if isinstance(behaviour, Reply) else None,
    )


async def perform(
    behaviour: Behaviour,
    api: Api,
    data: Mapping[str, Any],
    record: RecordedRequest,
    conn: HTTPConnection,
    *,
    pause: Pause,
    ids: Iterator[int],
) -> None:
    """Answer `record` on `conn` as `behaviour` says; completions are numbered from `ids`."""
    model = record.model
    if isinstance(behaviour, Drop):
        await pause(behaviour.latency, model)
        conn.close()
    elif isinstance(behaviour, Raw):
        await pause(behaviour.latency, model)
        conn.send_raw(behaviour.data)
    elif isinstance(behaviour, Fault):
        await pause(behaviour.latency, model)
        headers: tuple[tuple[str, str], ...] = (*JSON_HEADERS, *behaviour.headers.items())
        if behaviour.retry_after is not None:
            headers = (*headers, ("retry-after", _seconds(behaviour.retry_after)))
        tokens = estimate_tokens(prompt_messages(api, data))
        conn.respond(behaviour.status, headers, fault_body(api, behaviour, tokens))
    elif isinstance(behaviour, Reply):
        text = behaviour.text if behaviour.json is None else _encode(behaviour.json)
        if text is None and behaviour.tool_calls:
            text = ""
        elif text is None:
            text = simulated_text(prompt_messages(api, data))
        usage = behaviour.usage and (not record.stream or api == "anthropic" or _wants_usage(data))
        completion = _completion(api, data, text, behaviour, usage, ids)
        await pause(behaviour.latency, model)
        extra = tuple(behaviour.headers.items())
        if record.stream:
            sse = sse_format(api, completion)
            events = [sse.preamble(), *map(sse.content, _words(completion.text)), sse.finish()]
            conn.start_chunked(200, (*_SSE_HEADERS, *extra))
            conn.end_chunked(b"".join(events))
        else:
            conn.respond(200, (*JSON_HEADERS, *extra), completion_body(api, completion))
    else:
        await _stream(behaviour, api, data, record, conn, pause, ids)


async def _stream(
    behaviour: Stream,
    api: Api,
    data: Mapping[str, Any],
    record: RecordedRequest,
    conn: HTTPConnection,
    pause: Pause,
    ids: Iterator[int],
) -> None:
    if behaviour.chunks is not None:
        chunks = list(behaviour.chunks)
        text = "".join(chunks)
    else:
        text = behaviour.text if behaviour.text is not None else simulated_text(prompt_messages(api, data))
        chunks = _words(text)
    wanted = behaviour.include_usage
    if not record.stream:
        completion = _completion(api, data, text, behaviour, wanted is not False, ids)
        await pause(behaviour.ttft, record.model)
        conn.respond(200, JSON_HEADERS, completion_body(api, completion))
        return
    usage = wanted if wanted is not None else api == "anthropic" or _wants_usage(data)
    completion = _completion(api, data, text, behaviour, usage, ids)
    sse = sse_format(api, completion)
    # Headers go out at once, like a provider that accepted the call and then stalls.
    conn.start_chunked(200, _SSE_HEADERS)
    await pause(behaviour.ttft, record.model)
    # Events are batched between waits: one write per burst rather than one per event.
    pending = [sse.preamble()]
    for index in range(len(chunks) + 1):
        if index == behaviour.cut_after:
            conn.send_chunk(b"".join(pending))
            conn.close()
            return
        if index == behaviour.error_after:
            message = _STREAM_ERROR[api]
            pending.append(
                openrouter_stream_error(completion, message)
                if behaviour.error_style == "openrouter" and api == "openai"
                else sse.error(message)
            )
            conn.end_chunked(b"".join(pending))
            return
        if index == behaviour.stall_after:
            conn.send_chunk(b"".join(pending))
            # Never resolved: only the client hanging up (or stop()) ends this wait.
            await asyncio.get_running_loop().create_future()
        if index == behaviour.malformed_after:
            pending.append(sse.malformed())
        if index == len(chunks):
            break
        if index and behaviour.chunk_delay > 0:
            conn.send_chunk(b"".join(pending))
            pending.clear()
            await conn.drain()
            await asyncio.sleep(behaviour.chunk_delay)
        pending.append(sse.content(chunks[index]))
    pending.append(sse.finish())
    conn.end_chunked(b"".join(pending))
