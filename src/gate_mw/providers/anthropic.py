"""The Anthropic Messages API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._tokens import content_text, estimate_messages, estimate_text
from ..results import Usage
from ._base import ChatRequest, ProviderReply
from ._errors import error_from_exception
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
        return Usage(estimate_messages(request.messages), estimate_text(text), estimated=True)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=cache_read,
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
