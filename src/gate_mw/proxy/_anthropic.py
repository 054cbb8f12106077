"""The Anthropic Messages wire as the proxy speaks it: a `/v1/messages` request translated
to OpenAI's chat format (what `Gate.chat` takes), the answer translated back, whole or as
Anthropic's stream events. The opposite direction of `providers/anthropic.py`, sharing
its mapping of stop reasons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .._streaming import GateStream
from ..errors import StreamInterrupted
from ..providers._anthropic_wire import finish_reason
from ..results import ChatResult
from ._errors import ProxyError
from ._openai import ChatArgs, message_of, read_chat

__all__ = ["message_body", "message_events", "read_messages"]

# OpenAI finish reasons back to Anthropic stop reasons: the provider's mapping, inverted
# (the first stop reason for a finish reason wins: "stop" is "end_turn").
_STOP: dict[str, str] = {}
for _reason in ("end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"):
    _STOP.setdefault(finish_reason(_reason) or _reason, _reason)
_STOP.setdefault("content_filter", "refusal")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    raise ProxyError(400, f"{where} must be a string or a list of blocks", param=where)


def _image(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif isinstance(source, dict) and source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise ProxyError(400, f"{where}.source must be a base64 or url source", param=f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _turn(message: Any, index: int) -> list[dict[str, Any]]:
    """One Anthropic turn as OpenAI messages: tool results become `tool` messages, placed
    first, as they answer the assistant turn before."""
    where = f"messages[{index}]"
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise ProxyError(400, f"{where} must be an object with role user or assistant", param=where)
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise ProxyError(
            400, f"{where}.content must be a string or a list of blocks", param=f"{where}.content"
        )
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for position, block in enumerate(content):
        at = f"{where}.content[{position}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image" and role == "user":
            parts.append(_image(block, at))
        elif kind == "tool_result" and role == "user":
            tools.append(
                {
                    "role": "tool",
                    "tool_call_id": str(block.get("tool_use_id")),
                    "content": _text(block.get("content", ""), f"{at}.content"),
                }
            )
        elif kind == "tool_use" and role == "assistant":
            calls.append(
                {
                    "id": str(block.get("id")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name")),
                        "arguments": _encode(block.get("input") or {}),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # the model's own reasoning: not part of what other models are sent
        else:
            raise ProxyError(400, f"{at}: a {kind!r} block is not supported in a {role} turn", param=at)
    turns = tools
    if calls:
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        turns.append({"role": "assistant", "content": text or None, "tool_calls": calls})
    elif parts:
        plain = all(p["type"] == "text" for p in parts)
        turns.append({"role": role, "content": "".join(p["text"] for p in parts) if plain else parts})
    return turns


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    if not isinstance(choice, dict):
        raise ProxyError(400, "tool_choice must be an object", param="tool_choice")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": str(choice.get("name"))}}, parallel
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if mapped is None:
        raise ProxyError(400, "tool_choice.type must be auto, any, tool or none", param="tool_choice.type")
    return mapped, parallel


def read_messages(body: Any) -> ChatArgs:
    """A `/v1/messages` body as `Gate.chat` arguments (via OpenAI's format)."""
    if not isinstance(body, dict):
        raise ProxyError(400, "the body must be a JSON object")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ProxyError(400, "max_tokens: a positive integer is required", param="max_tokens")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ProxyError(400, "messages must be a non-empty list", param="messages")
    messages: list[dict[str, Any]] = []
    if (system := body.get("system")) is not None:
        messages.append({"role": "system", "content": _text(system, "system")})
    for index, message in enumerate(raw):
        messages.extend(_turn(message, index))
    chat: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": body.get("stream"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "stop": body.get("stop_sequences"),
    }
    if tools := body.get("tools"):
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise ProxyError(400, "tools must be a list of objects", param="tools")
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
        ]
    if (choice := body.get("tool_choice")) is not None:
        chat["tool_choice"], parallel = _tool_choice(choice)
        if parallel is not None:
            chat["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    # top_k has no OpenAI counterpart, and an OpenAI model would refuse it: left out.
    return read_chat(chat)


def _stop_reason(finish: str | None) -> str:
    return _STOP.get(finish or "stop", "end_turn")


def _usage(result: ChatResult) -> dict[str, int]:
    usage = result.usage
    written = usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cached_tokens - written),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": written,
    }


def _tool_uses(result: ChatResult) -> list[dict[str, Any]]:
    blocks = []
    for call in message_of(result).get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}
        )
    return blocks


def message_id(result_id: str | None, request_id: str) -> str:
    """The upstream's id when it is an Anthropic one, else one of that shape."""
    return result_id if result_id and result_id.startswith("msg_") else f"msg_{request_id}"


def message_body(result: ChatResult, model: str) -> dict[str, Any]:
    """The Anthropic `message` answering with `result`, named after the `model` asked for."""
    content: list[dict[str, Any]] = [{"type": "text", "text": result.text}] if result.text else []
    content.extend(_tool_uses(result))
    return {
        "id": message_id(result.response_id, result.request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(result.finish_reason),
        "stop_sequence": None,
        "usage": _usage(result),
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {_encode({'type': kind, **data})}\n\n".encode()


async def message_events(stream: GateStream, model: str, input_tokens: int) -> AsyncIterator[bytes]:
    """Anthropic's stream events for `stream`; `input_tokens` (an estimate until the end)
    goes in `message_start`, the counts reported by the upstream in `message_delta`."""
    start: dict[str, Any] = {
        "id": message_id(None, stream.request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }
    yield _event("message_start", {"message": start})
    index = 0
    opened = False
    try:
        async for text in stream:
            if not opened:
                opened = True
                yield _event(
                    "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
                )
            yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})
    except StreamInterrupted as exc:
        yield _event("error", {"error": {"type": "api_error", "message": str(exc)}})
        return
    result = stream.result
    assert result is not None
    if opened:
        yield _event("content_block_stop", {"index": 0})
        index = 1
    for position, block in enumerate(_tool_uses(result), start=index):
        yield _event("content_block_start", {"index": position, "content_block": {**block, "input": {}}})
        delta = {"type": "input_json_delta", "partial_json": _encode(block["input"])}
        yield _event("content_block_delta", {"index": position, "delta": delta})
        yield _event("content_block_stop", {"index": position})
    stop = {"stop_reason": _stop_reason(result.finish_reason), "stop_sequence": None}
    yield _event("message_delta", {"delta": stop, "usage": _usage(result)})
    yield _event("message_stop", {})
