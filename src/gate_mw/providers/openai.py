"""OpenAI-compatible chat completions: OpenAI, OpenRouter, LiteLLM proxy, Helicone,
Portkey, vLLM, Ollama and anything else that speaks `/chat/completions`."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Mapping
from functools import lru_cache
from typing import Any

from .._json import loads
from ..chat._model import Choice, ToolCall, ToolCallDelta
from ..errors import ErrorKind, UpstreamError
from ..results import Usage
from ._base import ChatRequest, ProviderReply, StreamEnd, StreamEvent, billed_cost, estimated_usage
from ._errors import error_from_event, error_from_exception
from ._http import HTTPProvider
from ._parse import MAX_TOKENS, optional_str, reply_text, token_count

__all__ = ["OpenAIProvider", "openai_payload"]

logger = logging.getLogger("gate_mw")

# The cost a LiteLLM proxy reports for a call.
_BILL_HEADER = "x-litellm-response-cost"

# OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...) take `max_completion_tokens` and
# refuse `max_tokens`, `temperature` and `top_p`. Bare ids only: routers such as OpenRouter
# (`openai/o3`) take `max_tokens` and translate it themselves.
_REASONING = re.compile(r"(o\d|gpt-5)(\b|-|$)")


@lru_cache(maxsize=1024)
def _reasoning(model: str) -> bool:
    return _REASONING.match(model) is not None


def openai_payload(model: str, request: ChatRequest) -> dict[str, Any]:
    """The request body for `/chat/completions`."""
    payload: dict[str, Any] = {"model": model, "messages": list(request.messages)}
    reasoning = _reasoning(model)
    if request.max_tokens is not None:
        payload["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
    if request.temperature is not None or request.top_p is not None:
        if reasoning:
            logger.debug("gate_mw: %s takes no temperature or top_p; dropped", model)
        else:
            if request.temperature is not None:
                payload["temperature"] = request.temperature
            if request.top_p is not None:
                payload["top_p"] = request.top_p
    if request.stop:
        payload["stop"] = list(request.stop)
    if request.tools is not None:
        payload["tools"] = list(request.tools)
    if request.tool_choice is not None:
        payload["tool_choice"] = request.tool_choice
    if request.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    # `format` read only when there may be one: the common call has neither (a call fewer).
    maybe_format = request.response_format is not None or request.output is not None
    if maybe_format and (response_format := request.format) is not None:
        payload["response_format"] = response_format
    if request.n is not None:
        payload["n"] = request.n
    if request.seed is not None:
        payload["seed"] = request.seed
    if request.user is not None:
        payload["user"] = request.user
    if request.metadata is not None:
        payload["metadata"] = request.metadata
    if request.extra:
        payload.update(request.extra)
    if request.extra_body:
        payload.update(request.extra_body)
    return payload


_NO_DETAILS: dict[str, Any] = {}  # read, never written


def openai_usage(usage: Any, request: ChatRequest, text: str) -> Usage:
    """Usage from an OpenAI `usage` object, or an estimate flagged as such."""
    if type(usage) is not dict and not isinstance(usage, Mapping):
        return estimated_usage(request, text)
    # The common shape in one go: plain ints in range, details (if any) without cache
    # writes. Anything else is read field by field by `_read_usage`, which judges it.
    # Why: four calls fewer, ~5k instructions a call (estimated from bytecode and call
    # counts; this module's, the transport's and pricing's shortcuts together: -15k, callgrind).
    prompt_details = usage.get("prompt_tokens_details") or _NO_DETAILS
    completion_details = usage.get("completion_tokens_details") or _NO_DETAILS
    if (
        type(prompt_details) is dict and type(completion_details) is dict
        and "cache_write_tokens" not in prompt_details and "cache_creation_input_tokens" not in usage
    ):
        input_tokens, output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        cached = prompt_details.get("cached_tokens", 0)
        reasoning = completion_details.get("reasoning_tokens", 0)
        if (
            type(input_tokens) is int and type(output_tokens) is int
            and type(cached) is int and type(reasoning) is int
            and min(input_tokens, output_tokens, cached, reasoning) >= 0
            and max(input_tokens, output_tokens, cached, reasoning) <= MAX_TOKENS
        ):
            # Positional: keywords cost a frozen dataclass's __init__ more.
            return Usage(input_tokens, output_tokens, cached, reasoning, 0)
    return _read_usage(usage)


def _read_usage(usage: Mapping[str, Any]) -> Usage:
    """`openai_usage` for any shape: each count checked by `token_count`."""
    input_tokens = token_count(usage, "prompt_tokens")
    output_tokens = token_count(usage, "completion_tokens")
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    # No details, or empty ones: their counts are 0 without a look.
    cached = reasoning = written = 0
    if prompt_details:
        cached = token_count(prompt_details, "cached_tokens")
    if completion_details:
        reasoning = token_count(completion_details, "reasoning_tokens")
    # Cache writes, where a router passes them on: OpenRouter in the details, LiteLLM with
    # Anthropic's name; both count them in prompt_tokens.
    if prompt_details:
        written = token_count(prompt_details, "cache_write_tokens")
    if not written and usage.get("cache_creation_input_tokens") is not None:
        written = token_count(usage, "cache_creation_input_tokens")
    return Usage(input_tokens, output_tokens, cached, reasoning, written)


def _tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    if not calls:
        return ()
    return tuple(
        ToolCall(str(call["id"]), str(call["function"]["name"]), call["function"].get("arguments") or "")
        for call in calls
    )


def _answer(choice: Mapping[str, Any]) -> tuple[str, str | None, tuple[ToolCall, ...]]:
    """A choice's text, finish reason and tool calls."""
    message = choice["message"]
    content, reason, calls = message.get("content"), choice.get("finish_reason"), message.get("tool_calls")
    # The common parts (text, a reason, no tools) judged here: three calls fewer, ~1.5k
    # instructions (estimated).
    return (
        content if type(content) is str else reply_text(content),
        reason if isinstance(reason, str) else None,  # as `optional_str`
        _tool_calls(calls) if calls else (),
    )


def _choice(choice: Mapping[str, Any]) -> Choice:
    return Choice(int(choice.get("index") or 0), *_answer(choice))


class _ToolCalls:
    """Tool calls assembled from streamed `delta.tool_calls` pieces, by index."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]

    def add(self, pieces: Any) -> list[ToolCallDelta]:
        deltas = []
        for position, piece in enumerate(pieces):
            index = int(piece.get("index", position))
            function = piece.get("function") or {}
            name, arguments = function.get("name"), function.get("arguments") or ""
            call = self._calls.get(index)
            if call is None:
                call = self._calls[index] = [piece.get("id"), name, []]
            else:
                call[0] = call[0] or piece.get("id")
                call[1] = call[1] or name
            call[2].append(arguments)
            deltas.append(ToolCallDelta(index, piece.get("id"), name, arguments))
        return deltas

    def done(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(str(call[0] or f"call_{index}"), str(call[1] or ""), "".join(call[2]))
            for index, call in sorted(self._calls.items())
        )


class OpenAIProvider(HTTPProvider):
    """Speaks the OpenAI chat completions API."""

    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        try:
            reply = await self._send("/chat/completions", openai_payload(model, request), request.plain)
        except self._errors as exc:
            raise self._failure(exc) from None
        body = self._json(reply)
        # LiteLLM's bill, where 0 means a model it has no price for; most upstreams send none.
        header = reply.headers.get(_BILL_HEADER)
        cost = None if header is None else billed_cost(header, free=False)
        try:
            choices = body["choices"]
            first = choices[0]
            int(first.get("index") or 0)  # checked as `_choice` checks every choice's
            text, finish_reason, tool_calls = _answer(first)
            usage = body.get("usage")
            if cost is None and (type(usage) is not dict or "cost" in usage):
                cost = billed_cost(usage)  # OpenRouter's bill, in `usage.cost`
            # `optional_str`'s test written out: three calls fewer (~1.2k instructions).
            name, response_id, fingerprint = body.get("model"), body.get("id"), body.get("system_fingerprint")
            # By position, in ProviderReply's field order (by keyword its __init__ costs
            # about twice as much).
            return ProviderReply(
                text,
                finish_reason,
                name if isinstance(name, str) and name else model,
                response_id if isinstance(response_id, str) else None,
                openai_usage(usage, request, text),
                cost,
                tool_calls,
                tuple(map(_choice, choices)) if len(choices) > 1 else (),
                body if request.raw else None,  # raw
                fingerprint if isinstance(fingerprint, str) else None,
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
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
        tools: _ToolCalls | None = None
        ended = False
        async with self._events("/chat/completions", payload, request.plain) as events:
            async for data in events:
                if data == b"[DONE]":
                    ended = True
                    break
                try:
                    chunk = loads(data)
                    if head is None:
                        head = chunk
                    if "error" in chunk:  # OpenRouter's error has choices too
                        raise error_from_event(chunk, self._secrets)
                    if choices := chunk.get("choices"):
                        choice = choices[0]
                        if choice.get("index", 0) == 0:  # with n > 1, the first answer only
                            delta = choice.get("delta")
                            if delta:
                                if text := reply_text(delta.get("content")):
                                    yield text
                                if pieces := delta.get("tool_calls"):
                                    tools = tools or _ToolCalls()
                                    for piece in tools.add(pieces):
                                        yield piece
                            if reason := optional_str(choice.get("finish_reason")):
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
            head = head if isinstance(head, Mapping) else {}
            yield StreamEnd(
                finish, optional_str(head.get("model")) or model, optional_str(head.get("id")),
                usage, billed, tool_calls=() if tools is None else tools.done(),
            )
