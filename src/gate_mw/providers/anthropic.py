"""The Anthropic Messages API."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from .._tokens import content_text
from ..errors import ErrorKind, UpstreamError
from ..results import Usage
from ._base import ChatRequest, ProviderReply, StreamEnd, StreamEvent, estimated_usage
from ._errors import error_from_event, error_from_exception
from ._http import HTTPProvider

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_VERSION = "2023-06-01"
# Anthropic requires max_tokens; this is used when neither the call nor the policy sets it.
DEFAULT_MAX_TOKENS = 1024
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def finish_reason(stop_reason: Any) -> str | None:
    return None if stop_reason is None else _FINISH.get(str(stop_reason), str(stop_reason))


def split_system(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Anthropic takes the system prompt apart from the turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") == "system":
            system.append(content_text(message.get("content")))
        else:
            turns.append({"role": message.get("role", "user"), "content": message.get("content", "")})
    return "\n\n".join(system), turns


def anthropic_payload(model: str, request: ChatRequest) -> dict[str, Any]:
    system, turns = split_system(request.messages)
    payload: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        payload["system"] = system
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop_sequences"] = list(request.stop)
    payload.update(request.extra)
    return payload


def anthropic_usage(usage: Any, request: ChatRequest, text: str) -> Usage:
    """Usage with cache reads and writes counted into input, as OpenAI counts them."""
    if not isinstance(usage, Mapping):
        return estimated_usage(request, text)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


class AnthropicProvider(HTTPProvider):
    """Speaks the Anthropic Messages API."""

    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        body = await self._post("/v1/messages", anthropic_payload(model, request))
        try:
            text = "".join(
                block.get("text", "") for block in body["content"] if block.get("type") == "text"
            )
            return ProviderReply(
                text=text,
                finish_reason=finish_reason(body.get("stop_reason")),
                model=str(body.get("model") or model),
                response_id=body.get("id"),
                usage=anthropic_usage(body.get("usage"), request, text),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise error_from_exception(exc) from None

    async def stream(self, model: str, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        payload = anthropic_payload(model, request)
        payload["stream"] = True
        message: Any = {}
        usage: dict[str, Any] = {}  # message_start's, updated by message_delta's totals
        stop_reason: Any = None
        ended = False
        async with self._events("/v1/messages", payload) as events:
            async for data in events:
                try:
                    event = json.loads(data)
                    kind = event["type"]
                    if kind == "content_block_delta":
                        delta = event["delta"]
                        if delta.get("type") == "text_delta" and (text := delta.get("text")):
                            yield text
                    elif kind == "message_start":
                        message = event["message"]
                        usage.update(message.get("usage") or {})
                    elif kind == "message_delta":
                        stop_reason = event["delta"].get("stop_reason") or stop_reason
                        usage.update(event.get("usage") or {})
                    elif kind == "message_stop":
                        ended = True
                        break
                    elif kind == "error":
                        raise error_from_event(event, self._secrets)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise error_from_exception(exc) from None
            if not ended and stop_reason is None:
                raise UpstreamError(ErrorKind.PROTOCOL, "the stream ended before message_stop")
            yield StreamEnd(
                finish_reason(stop_reason),
                str(message.get("model") or model),
                message.get("id"),
                anthropic_usage(usage, request, "") if usage else None,
            )
