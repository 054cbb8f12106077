"""The Anthropic Messages API, spoken from OpenAI's chat format (see `_anthropic_wire`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

from .._json import loads
from ..chat._model import ToolCall, ToolCallDelta
from ..errors import ErrorKind, UpstreamError
from ..results import Usage
from ._anthropic_wire import anthropic_payload, finish_reason, forced_tool, reply_content
from ._base import ChatRequest, ProviderReply, StreamEnd, StreamEvent, estimated_usage
from ._errors import error_from_event, error_from_exception
from ._http import HTTPProvider
from ._parse import optional_str, reply_text, token_count

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider", "anthropic_payload"]

ANTHROPIC_VERSION = "2023-06-01"


def anthropic_usage(usage: Any, request: ChatRequest, text: str) -> Usage:
    """Usage with cache reads and writes counted into input, as OpenAI counts them."""
    if not isinstance(usage, Mapping):
        return estimated_usage(request, text)
    cache_read = token_count(usage, "cache_read_input_tokens")
    cache_write = token_count(usage, "cache_creation_input_tokens")
    return Usage(
        input_tokens=token_count(usage, "input_tokens") + cache_read + cache_write,
        output_tokens=token_count(usage, "output_tokens"),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _forced_name(request: ChatRequest) -> str | None:
    forced = forced_tool(request)
    return None if forced is None else forced[0]


class AnthropicProvider(HTTPProvider):
    """Speaks the Anthropic Messages API."""

    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        try:
            reply = await self._send("/v1/messages", anthropic_payload(model, request))
        except self._errors as exc:
            raise self._failure(exc) from None
        body = self._json(reply)
        forced = _forced_name(request)
        try:
            text, tool_calls = reply_content(body["content"], forced)
            return ProviderReply(
                text=text,
                finish_reason=finish_reason(body.get("stop_reason"), forced is not None),
                model=optional_str(body.get("model")) or model,
                response_id=optional_str(body.get("id")),
                usage=anthropic_usage(body.get("usage"), request, text),
                tool_calls=tool_calls,
                raw=body if request.raw else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise error_from_exception(exc) from None

    async def stream(self, model: str, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        payload = anthropic_payload(model, request)
        payload["stream"] = True
        forced = _forced_name(request)
        message: Any = {}
        usage: dict[str, Any] = {}  # message_start's, updated by message_delta's totals
        stop_reason: Any = None
        ended = False
        # Tool-use blocks by content-block index: [tool call index, id, name, input pieces];
        # None for the forced tool, whose input streams as the answer's text.
        tools: dict[int, list[Any] | None] = {}
        async with self._events("/v1/messages", payload) as events:
            async for data in events:
                try:
                    event = loads(data)
                    kind = event["type"]
                    if kind == "content_block_delta":
                        delta = event["delta"]
                        if delta.get("type") == "text_delta":
                            if text := reply_text(delta.get("text"), "text_delta"):
                                yield text
                        elif delta.get("type") == "input_json_delta" and (piece := delta.get("partial_json")):
                            call = tools[event["index"]]
                            if call is None:
                                yield piece
                            else:
                                call[3].append(piece)
                                yield ToolCallDelta(call[0], None, None, piece)
                    elif kind == "content_block_start":
                        block = event["content_block"]
                        if block.get("type") == "tool_use":
                            if block["name"] == forced:
                                tools[event["index"]] = None
                            else:
                                count = sum(call is not None for call in tools.values())
                                tools[event["index"]] = [count, str(block["id"]), str(block["name"]), []]
                                yield ToolCallDelta(count, str(block["id"]), str(block["name"]), "")
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
                finish_reason(stop_reason, forced is not None),
                optional_str(message.get("model")) or model,
                optional_str(message.get("id")),
                anthropic_usage(usage, request, "") if usage else None,
                tool_calls=tuple(
                    ToolCall(call[1], call[2], "".join(call[3]) or "{}")
                    for call in tools.values() if call is not None
                ),
            )
