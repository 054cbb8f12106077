"""Translation between OpenAI's chat format and Anthropic's Messages API, both ways."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..chat._model import ToolCall
from ..chat._tokens import content_text
from ..errors import ErrorKind, UpstreamError
from ._base import ChatRequest

__all__ = [
    "DEFAULT_MAX_TOKENS", "anthropic_payload", "finish_reason", "forced_tool", "reply_content",
]

logger = logging.getLogger("gate_mw")

# Anthropic requires max_tokens; this is used when neither the call nor the policy sets it.
DEFAULT_MAX_TOKENS = 1024
_FINISH = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
    "refusal": "content_filter", "model_context_window_exceeded": "length",
}
_TOOL_CHOICE: dict[str, dict[str, Any]] = {
    "auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"},
}
# The forced tool that carries a `json_object` answer.
_JSON_TOOL = "json_output"
_ANY_OBJECT = {"type": "object", "additionalProperties": True}
# OpenAI parameters with no Anthropic counterpart: dropped, with a debug log. Sampling
# parameters are among them: Anthropic's current models and API version refuse them
# (a 400 even for temperature 1.0) and its SDK 2.x no longer has them; a deployment that
# still takes them can set them in its `params:`.
_DROPPED = ("n", "seed", "metadata", "temperature", "top_p")


def _unsupported(what: str) -> UpstreamError:
    return UpstreamError(ErrorKind.UNSUPPORTED, f"Anthropic does not take {what}")


def finish_reason(stop_reason: Any, structured: bool = False) -> str | None:
    if stop_reason is None:
        return None
    if structured and stop_reason == "tool_use":  # the forced tool is the answer itself
        return "stop"
    return _FINISH.get(str(stop_reason), str(stop_reason))


def _media(url: str, kind: str) -> dict[str, Any]:
    """An Anthropic `source` for an http(s) URL or a base64 `data:` URL."""
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64":
            raise _unsupported(f"a {kind} data URL that is not base64")
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _block(part: Mapping[str, Any]) -> dict[str, Any]:
    """One content part as an Anthropic content block."""
    kind = part.get("type")
    block: dict[str, Any]
    if kind == "text":
        block = {"type": "text", "text": str(part.get("text", ""))}
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        block = {"type": "image", "source": _media(str(url), "image")}
    elif kind == "file":
        file = part.get("file") or {}
        if not isinstance(file, Mapping) or "file_data" not in file:
            raise _unsupported("file parts other than inline file_data")
        block = {"type": "document", "source": _media(str(file["file_data"]), "file")}
    elif kind in ("image", "document", "tool_use", "tool_result", "thinking"):
        return dict(part)  # already Anthropic's shape
    else:
        raise _unsupported(f"{kind} content parts")
    if "cache_control" in part:  # prompt caching, marked on the part as Anthropic does
        block["cache_control"] = part["cache_control"]
    return block


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, Iterable):
        return [_block(part) for part in content if isinstance(part, Mapping)]
    return []


def _arguments(text: Any) -> Any:
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _turn(message: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    role = message.get("role")
    content = message.get("content")
    if role == "tool":
        result: dict[str, Any] = {
            "type": "tool_result", "tool_use_id": str(message.get("tool_call_id", "")),
            "content": content if isinstance(content, str) else _blocks(content),
        }
        return "user", [result]
    if role == "assistant":
        blocks = _blocks(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            blocks.append({
                "type": "tool_use", "id": str(call.get("id", "")), "name": str(function.get("name", "")),
                "input": _arguments(function.get("arguments")),
            })
        return "assistant", blocks
    return "user", _blocks(content)


def split_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt apart, the other turns translated; consecutive turns of one role
    merged (tool results into one user turn, as Anthropic requires)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system.append(content_text(message.get("content")))
            continue
        role, blocks = _turn(message)
        if not blocks and role == "assistant":
            continue  # an empty assistant turn: Anthropic refuses empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # plain text turns stay plain strings, as they were sent
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]
    return "\n\n".join(system), turns


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return dict(tool)  # an Anthropic server tool (web search...), sent as given
    function = tool["function"]
    translated = {"name": function["name"], "input_schema": function.get("parameters") or _ANY_OBJECT}
    if description := function.get("description"):
        translated["description"] = description
    return translated


def forced_tool(request: ChatRequest) -> tuple[str, dict[str, Any]] | None:
    """The tool that carries a structured answer (name, schema), if the call wants one."""
    response_format = request.format
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return str(spec.get("name") or "output"), dict(spec.get("schema") or _ANY_OBJECT)
    if kind == "json_object":
        return _JSON_TOOL, _ANY_OBJECT
    return None


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE:
            raise _unsupported(f"tool_choice {choice!r}")
        return dict(_TOOL_CHOICE[choice])
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and "name" in function:
        return {"type": "tool", "name": str(function["name"])}
    return dict(choice)  # already Anthropic's shape


def anthropic_payload(model: str, request: ChatRequest) -> dict[str, Any]:
    """The request body for `/v1/messages`."""
    try:
        return _payload(model, request)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        # A message or tool of a shape no provider takes: the caller's 4xx, not a model's fault.
        detail = f"{type(exc).__name__}: {exc}"[:200]
        raise UpstreamError(
            ErrorKind.BAD_REQUEST, f"the request does not translate for Anthropic ({detail})"
        ) from None


def _payload(model: str, request: ChatRequest) -> dict[str, Any]:
    system, turns = split_messages(request.messages)
    payload: dict[str, Any] = {
        "model": model, "messages": turns, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        payload["system"] = system
    if request.stop:
        payload["stop_sequences"] = list(request.stop)
    if request.user is not None:
        payload["metadata"] = {"user_id": request.user}
    tools = [_tool(tool) for tool in request.tools or ()]
    choice = None if request.tool_choice is None else _tool_choice(request.tool_choice)
    if (forced := forced_tool(request)) is not None:
        name, schema = forced
        tools.append({"name": name, "description": "Answer with this structure.", "input_schema": schema})
        choice = {"type": "tool", "name": name}
    if tools:
        payload["tools"] = tools
    if request.parallel_tool_calls is False:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None and tools:
        payload["tool_choice"] = choice
    dropped = [name for name in _DROPPED if getattr(request, name) not in (None, 1)]
    if dropped or request.extra:
        logger.debug("gate_mw: Anthropic takes no %s; dropped", ", ".join([*dropped, *request.extra]))
    if request.extra_body:
        payload.update(request.extra_body)
    return payload


def reply_content(blocks: Any, forced: str | None) -> tuple[str, tuple[ToolCall, ...]]:
    """The text and tool calls of a reply's content blocks; the forced tool's input (a
    structured answer) is the text."""
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            if block.get("name") == forced:
                text.append(arguments)
            else:
                calls.append(ToolCall(str(block["id"]), str(block["name"]), arguments))
    return "".join(text), tuple(calls)
