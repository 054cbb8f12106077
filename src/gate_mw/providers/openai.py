"""OpenAI-compatible chat completions: OpenAI, OpenRouter, LiteLLM proxy, Helicone,
Portkey, vLLM, Ollama and anything else that speaks `/chat/completions`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._tokens import estimate_messages, estimate_text
from ..results import Usage
from ._base import ChatRequest, ProviderReply
from ._errors import error_from_exception
from ._http import HTTPProvider

__all__ = ["OpenAIProvider"]


def openai_payload(model: str, request: ChatRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, "messages": list(request.messages)}
    if request.max_tokens is not None:
        payload["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.stop:
        payload["stop"] = list(request.stop)
    payload.update(request.extra)
    return payload


def openai_usage(usage: Any, request: ChatRequest, text: str) -> Usage:
    """Usage from an OpenAI `usage` object, or an estimate flagged as such."""
    if not isinstance(usage, Mapping):
        return Usage(estimate_messages(request.messages), estimate_text(text), estimated=True)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


class OpenAIProvider(HTTPProvider):
    """Speaks the OpenAI chat completions API."""

    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        body = await self._post("/chat/completions", openai_payload(model, request))
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            return ProviderReply(
                text=text,
                finish_reason=choice.get("finish_reason"),
                model=str(body.get("model") or model),
                response_id=body.get("id"),
                usage=openai_usage(body.get("usage"), request, text),
            )
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise error_from_exception(exc) from None
