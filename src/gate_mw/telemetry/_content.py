"""Captured content in the GenAI conventions' JSON schema: system instructions apart,
each message as `{role, parts: [...]}`, the answer with its finish reason."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["input_attributes", "output_messages"]

_encode = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode


def _parts(content: Any) -> list[dict[str, Any]]:
    """The parts of one message's content (a string or a list of OpenAI-style parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, Sequence) else [content]:
        if not isinstance(part, Mapping):
            parts.append({"type": "text", "content": str(part)})
        elif part.get("type") == "text":
            parts.append({"type": "text", "content": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append({"type": "uri", "modality": "image", "uri": str(url)})
        else:  # kept as given, under its own type: the schema allows generic parts
            parts.append({**part, "type": str(part.get("type") or "unknown")})
    return parts


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = str(message.get("role", "user"))
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append({
            "type": "tool_call", "id": call.get("id"), "name": function.get("name"),
            "arguments": function.get("arguments"),
        })
    if role == "tool":
        return {"role": "tool", "parts": [{
            "type": "tool_call_response", "id": message.get("tool_call_id"),
            "response": message.get("content"),
        }]}
    return {"role": role, "parts": parts}


def input_attributes(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """`gen_ai.input.messages` and, when there are system messages, `gen_ai.system_instructions`."""
    system: list[dict[str, Any]] = []
    chat: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system.extend(_parts(message.get("content")))
        else:
            chat.append(_message(message))
    attributes = {"gen_ai.input.messages": _encode(chat)}
    if system:
        attributes["gen_ai.system_instructions"] = _encode(system)
    return attributes


def output_messages(text: str, finish_reason: str | None, tool_calls: Sequence[Any] = ()) -> str:
    """`gen_ai.output.messages` for one answer: its text and the tool calls it asks for."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text or not tool_calls else []
    parts.extend(
        {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        for call in tool_calls
    )
    return _encode([{"role": "assistant", "parts": parts, "finish_reason": finish_reason or "unknown"}])
