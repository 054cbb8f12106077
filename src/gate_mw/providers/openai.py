"""OpenAI-compatible chat completions: OpenAI, OpenRouter, LiteLLM proxy, Helicone,
Portkey, vLLM, Ollama and anything else that speaks `/chat/completions`."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from ..errors import ErrorKind, UpstreamError
from ..results import Usage
from ._base import ChatRequest, ProviderReply, StreamEnd, StreamEvent, billed_cost, estimated_usage
from ._errors import error_from_event, error_from_exception
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
        return estimated_usage(request, text)
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
        body, billed = await self._post_billed("/chat/completions", openai_payload(model, request))
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            return ProviderReply(
                text=text,
                finish_reason=choice.get("finish_reason"),
                model=str(body.get("model") or model),
                response_id=body.get("id"),
                usage=openai_usage(body.get("usage"), request, text),
                cost=billed_cost(body.get("usage")) if billed is None else billed,
            )
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise error_from_exception(exc) from None

    async def stream(self, model: str, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        payload = openai_payload(model, request)
        payload["stream"] = True
        # The final chunk then carries usage, so cost is measured rather than estimated.
        payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        finish: str | None = None
        usage: Usage | None = None
        billed: float | None = None
        head: Any = None  # the first chunk, for the model and id
        ended = False
        async with self._events("/chat/completions", payload) as events:
            async for data in events:
                if data == b"[DONE]":
                    ended = True
                    break
                try:
                    chunk = json.loads(data)
                    if head is None:
                        head = chunk
                    if "error" in chunk:  # OpenRouter's error has choices too
                        raise error_from_event(chunk, self._secrets)
                    if choices := chunk.get("choices"):
                        choice = choices[0]
                        delta = choice.get("delta")
                        if delta and (text := delta.get("content")):
                            yield text
                        if reason := choice.get("finish_reason"):
                            if reason == "error":
                                raise error_from_event(chunk, self._secrets)
                            finish = reason
                    if chunk.get("usage"):
                        usage = openai_usage(chunk["usage"], request, "")
                        billed = billed_cost(chunk["usage"])
                except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                    raise error_from_exception(exc) from None
            if not ended and finish is None:
                raise UpstreamError(ErrorKind.PROTOCOL, "the stream ended before its last chunk")
            head = head or {}
            yield StreamEnd(finish, str(head.get("model") or model), head.get("id"), usage, billed)

