"""OpenAI and Anthropic wire formats: reply bodies, error bodies and SSE events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..chat._tokens import content_text
from ..chat._tokens import estimate_messages as estimate_tokens

if TYPE_CHECKING:
    from ._behaviours import Fault

__all__ = [
    "Api",
    "Completion",
    "SSEFormat",
    "completion_body",
    "content_text",
    "error_body",
    "estimate_tokens",
    "fault_body",
    "openrouter_stream_error",
    "prompt_messages",
    "received_images",
    "simulated_text",
    "sse_format",
]

Api = Literal["openai", "anthropic"]

# Compact separators: smaller bodies, and a hair faster to encode and parse.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_ECHO_CHARS = 40

_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "requests",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_MESSAGES = {
    400: "Invalid request.",
    401: "Invalid API key.",
    403: "Permission denied.",
    404: "Not found.",
    408: "Request timed out.",
    413: "Request too large.",
    429: "Rate limit reached. Please retry later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
    504: "Gateway timeout.",
    529: "Overloaded.",
}


def prompt_messages(api: Api, body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's messages, with Anthropic's top-level ``system`` as a leading message."""
    raw = body.get("messages")
    messages = [m for m in raw if isinstance(m, Mapping)] if isinstance(raw, list) else []
    system = body.get("system") if api == "anthropic" else None
    if system:
        return [{"role": "system", "content": system}, *messages]
    return messages


def simulated_text(messages: list[Mapping[str, Any]]) -> str:
    """The default answer; quotes the last user message so tests can tell calls apart."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"Simulated answer to: {content_text(message.get('content'))[:_ECHO_CHARS]}"
    return "Simulated answer."


@dataclass(frozen=True, slots=True)
class Completion:
    """Everything a reply body or stream needs, resolved from a behaviour and a request."""

    id: str
    model: str
    created: int
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    usage: bool
    cache_write_tokens: int = 0
    cost: float | None = None  # OpenRouter's usage.cost
    #: How many (identical) choices a non-streamed OpenAI reply has: the request's `n`.
    choices: int = 1
    #: (id, name, arguments as JSON text) of each tool call.
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    system_fingerprint: str | None = None


def _openai_usage(c: Completion) -> dict[str, Any]:
    usage = {
        "prompt_tokens": c.input_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.input_tokens + c.output_tokens,
        "prompt_tokens_details": {"cached_tokens": c.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
    }
    if c.cost is not None:
        usage["cost"] = c.cost
    return usage


def openrouter_stream_error(c: Completion, message: str) -> bytes:
    """OpenRouter's mid-stream error: an `error` object in a chunk ending with "error"."""
    choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    error = {"code": "server_error", "message": message}
    return _data({"id": c.id, "object": "chat.completion.chunk", "created": c.created,
                  "model": c.model, "provider": "fake", "error": error, "choices": [choice]})


def _openai_message(c: Completion) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": c.text if c.text or not c.tool_calls else None}
    if c.tool_calls:
        message["tool_calls"] = [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
            for id_, name, arguments in c.tool_calls
        ]
    return message


def _anthropic_content(c: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": c.text}] if c.text or not c.tool_calls else []
    blocks += [
        {"type": "tool_use", "id": id_, "name": name, "input": json.loads(arguments)}
        for id_, name, arguments in c.tool_calls
    ]
    return blocks


def _halves(text: str) -> list[str]:
    """Streamed tool arguments arrive in pieces: two here, so clients must join them."""
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]


def received_images(api: Api, body: Mapping[str, Any]) -> list[str]:
    """Every image in the request's messages, as its URL (``data:`` URLs for inline ones),
    whichever API's shape it came in."""
    found: list[str] = []
    for message in prompt_messages(api, body):
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, Mapping):
                continue
            if part.get("type") == "image_url":
                image = part.get("image_url")
                found.append(str(image.get("url") if isinstance(image, Mapping) else image))
            elif part.get("type") == "image" and isinstance(source := part.get("source"), Mapping):
                if source.get("type") == "base64":
                    found.append(f"data:{source.get('media_type')};base64,{source.get('data')}")
                else:
                    found.append(str(source.get("url")))
    return found


def _anthropic_stop(finish_reason: str) -> str:
    return _ANTHROPIC_STOP.get(finish_reason, finish_reason)


def completion_body(api: Api, c: Completion) -> bytes:
    """A non-streaming reply body."""
    body: dict[str, Any]
    if api == "openai":
        body = {
            "id": c.id,
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [
                {"index": index, "message": _openai_message(c), "finish_reason": c.finish_reason}
                for index in range(c.choices)
            ],
        }
        if c.usage:
            body["usage"] = _openai_usage(c)
        if c.system_fingerprint is not None:
            body["system_fingerprint"] = c.system_fingerprint
    else:
        body = {
            "id": c.id,
            "type": "message",
            "role": "assistant",
            "model": c.model,
            "content": _anthropic_content(c),
            "stop_reason": _anthropic_stop(c.finish_reason),
            "stop_sequence": None,
        }
        if c.usage:
            body["usage"] = {
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "cache_read_input_tokens": c.cached_tokens,
                "cache_creation_input_tokens": c.cache_write_tokens,
            }
    return _encode(body).encode()


def error_body(
    api: Api, status: int, message: str, *, error_type: str | None = None, code: str | int | None = None
) -> bytes:
    """An error body in the API's format, with the ``type`` following the status by default."""
    if api == "openai":
        kind = error_type or _OPENAI_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return _encode({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    kind = error_type or _ANTHROPIC_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return _encode({"type": "error", "error": {"type": kind, "message": message}}).encode()


def _default_message(status: int) -> str:
    if status in _MESSAGES:
        return _MESSAGES[status]
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return f"Error {status}."


def fault_body(api: Api, fault: Fault, prompt_tokens: int) -> bytes:
    """The body of a scripted :class:`Fault`."""
    message = fault.message
    if message is None and fault.context_limit is not None:
        # Real providers only say this when the prompt is over the limit, so report it as such.
        used = max(prompt_tokens, fault.context_limit + 1)
        message = (
            f"This model's maximum context length is {fault.context_limit} tokens. However, "
            f"your messages resulted in {used} tokens. Please reduce the length of the messages."
            if api == "openai"
            else f"prompt is too long: {used} tokens > {fault.context_limit} maximum"
        )
    return error_body(
        api,
        fault.status,
        message if message is not None else _default_message(fault.status),
        error_type=fault.error_type,
        code=fault.code,
    )


class SSEFormat(Protocol):
    """The events of one streamed reply; each method returns ready-to-send SSE bytes."""

    def preamble(self) -> bytes: ...
    def content(self, text: str) -> bytes: ...
    def finish(self) -> bytes: ...
    def error(self, message: str) -> bytes: ...
    def malformed(self) -> bytes: ...


def _data(payload: Any) -> bytes:
    return b"data: " + _encode(payload).encode() + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return f"event: {name}\ndata: {_encode(payload)}\n\n".encode()


def _block_event(name: str, index: int, **fields: Any) -> bytes:
    return _event(name, {"type": name, "index": index, **fields})


class _OpenAIStream:
    def __init__(self, c: Completion) -> None:
        self._c = c
        head = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
        }
        self._head = head
        # Content chunks differ only in the text, so only that is encoded per chunk.
        prefix = _encode(head)[:-1]
        self._content_prefix = ("data: " + prefix + ',"choices":[{"index":0,"delta":{"content":').encode()
        self._content_suffix = b'},"finish_reason":null}]}\n\n'

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return _data({**self._head, "choices": [choice]})

    def preamble(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def content(self, text: str) -> bytes:
        return self._content_prefix + _encode(text).encode() + self._content_suffix

    def finish(self) -> bytes:
        out = b""
        for index, (id_, name, arguments) in enumerate(self._c.tool_calls):
            function = {"name": name, "arguments": ""}
            first = {"index": index, "id": id_, "type": "function", "function": function}
            out += self._chunk({"tool_calls": [first]}, None)
            for piece in _halves(arguments):
                out += self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
        out += self._chunk({}, self._c.finish_reason)
        if self._c.usage:
            out += _data({**self._head, "choices": [], "usage": _openai_usage(self._c)})
        return out + b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        return _data({"error": {"message": message, "type": "server_error", "param": None, "code": None}})

    def malformed(self) -> bytes:
        return b"data: {not json\n\n"


class _AnthropicStream:
    def __init__(self, c: Completion) -> None:
        self._c = c
        self._text = bool(c.text) or not c.tool_calls  # a text block, as index 0

    def preamble(self) -> bytes:
        c = self._c
        message: dict[str, Any] = {
            "id": c.id,
            "type": "message",
            "role": "assistant",
            "model": c.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if c.usage:
            message["usage"] = {
                "input_tokens": c.input_tokens,
                "output_tokens": 1,
                "cache_read_input_tokens": c.cached_tokens,
                "cache_creation_input_tokens": c.cache_write_tokens,
            }
        out = _event("message_start", {"type": "message_start", "message": message})
        if self._text:
            start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            out += _event("content_block_start", start)
        return out + _event("ping", {"type": "ping"})

    def content(self, text: str) -> bytes:
        return _event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        )

    def finish(self) -> bytes:
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": _anthropic_stop(self._c.finish_reason), "stop_sequence": None},
        }
        if self._c.usage:
            delta["usage"] = {"output_tokens": self._c.output_tokens}
        out = _event("content_block_stop", {"type": "content_block_stop", "index": 0}) if self._text else b""
        for index, (id_, name, arguments) in enumerate(self._c.tool_calls, start=int(self._text)):
            block = {"type": "tool_use", "id": id_, "name": name, "input": {}}
            out += _block_event("content_block_start", index, content_block=block)
            for piece in _halves(arguments):
                piece_delta = {"type": "input_json_delta", "partial_json": piece}
                out += _block_event("content_block_delta", index, delta=piece_delta)
            out += _block_event("content_block_stop", index)
        return out + _event("message_delta", delta) + _event("message_stop", {"type": "message_stop"})

    def error(self, message: str) -> bytes:
        return _event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    def malformed(self) -> bytes:
        return b"event: content_block_delta\ndata: {not json\n\n"


def sse_format(api: Api, c: Completion) -> SSEFormat:
    """The SSE event builder for ``api``."""
    return _OpenAIStream(c) if api == "openai" else _AnthropicStream(c)
