"""The OpenAI chat completions wire as the proxy speaks it: a request read into the
arguments of `Gate.chat`, an answer written as a `chat.completion`.

Fields `Gate.chat` takes by keyword (tools, response_format, seed... as the client has
them) are passed by name; the others go where it puts provider-specific fields
(`extra_body`, or its keywords when it has no such thing). Reading its signature keeps the
proxy in step with the client without a list to maintain here.
"""

from __future__ import annotations

import inspect
import math
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._events import openai_usage
from ..client import Gate
from ..results import ChatResult
from ._errors import ProxyError

__all__ = ["ChatArgs", "completion_body", "message_of", "read_chat"]

def _keywords(method: Callable[..., Any]) -> frozenset[str]:
    """The keywords `method` names: its keyword-only parameters, and the keys of the
    TypedDict its `**options: Unpack[...]` takes, if it takes one."""
    parameters = inspect.signature(method).parameters.values()
    names = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
    for p in parameters:
        if p.kind is p.VAR_KEYWORD and isinstance(p.annotation, str):
            # Resolved in the method's module, as `typing.get_type_hints` would.
            probe = type("_Probe", (), {"__annotations__": {p.name: p.annotation}})
            hint = typing.get_type_hints(probe, vars(sys.modules[method.__module__]))[p.name]
            if typing.get_origin(hint) is typing.Unpack:
                options = typing.get_args(hint)[0]
                names |= options.__required_keys__ | options.__optional_keys__
    return frozenset(names)


_KEYWORDS = _keywords(Gate.chat)
_TAKES_EXTRA_BODY = "extra_body" in _KEYWORDS
# Keywords of Gate.chat that steer the gateway rather than the model: never from a body.
_GATEWAY_ONLY = frozenset({"model", "max_cost_usd", "output", "raw", "extra_body"})
# The proxy reads these itself.
_READ_HERE = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop",
})


@dataclass(slots=True)
class ChatArgs:
    """A chat request, read: which model it names, how to answer, what `Gate.chat` gets."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProxyError(400, f"{name} must be a number", param=name, code="invalid_type")
    if not low <= value <= high:
        raise ProxyError(
            400, f"{name} must be between {low:g} and {high:g}", param=name, code="invalid_value"
        )
    return float(value)


def _tokens(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProxyError(400, f"{name} must be a positive integer", param=name, code="invalid_value")
        return value
    return None


def _stop(body: Mapping[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 16:
        raise ProxyError(400, "stop must be a string or a list of at most 16 strings", param="stop")
    return stops


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError(
            400,
            "model is required: name a model or policy (GET /v1/models lists them)",
            param="model",
            code="missing_required_parameter",
        )
    return model


def _messages(value: Any, name: str = "messages") -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ProxyError(400, f"{name} must be a non-empty list", param=name)
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ProxyError(400, f"{name}[{index}] must be an object with a role", param=f"{name}[{index}]")
    return value


def read_chat(body: Any) -> ChatArgs:
    """A `/chat/completions` body, checked, as `Gate.chat` arguments; `ProxyError` (400)
    naming the field when it cannot be."""
    if not isinstance(body, dict):
        raise ProxyError(400, "the body must be a JSON object")
    args = ChatArgs(_model(body), _messages(body.get("messages")))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ProxyError(400, "stream must be true or false", param="stream")
    args.stream = bool(stream)
    options = body.get("stream_options")
    args.include_usage = isinstance(options, dict) and options.get("include_usage") is True
    kwargs = args.kwargs
    # Only what the body sets: an option left out is None to Gate.chat, and costs its
    # checks nothing.
    tokens = _tokens(body)
    if tokens is not None:
        kwargs["max_tokens"] = tokens
    if "temperature" in body or "top_p" in body or "stop" in body:  # not read when absent
        read = (
            ("temperature", _number(body, "temperature", 0, 2)),
            ("top_p", _number(body, "top_p", 0, 1)),
            ("stop", _stop(body)),
        )
        for name, value in read:
            if value is not None:
                kwargs[name] = value
    extra: dict[str, Any] = {}
    for name, value in body.items():
        if name in _READ_HERE or value is None:
            continue
        if name in _KEYWORDS and name not in _GATEWAY_ONLY:
            kwargs[name] = value  # tools, response_format... as Gate.chat names them
        elif _TAKES_EXTRA_BODY:
            extra[name] = value  # provider-specific: into the body as sent
        else:
            kwargs[name] = value  # a Gate.chat without extra_body passes keywords on
    if extra:
        kwargs["extra_body"] = extra
    if body.get("n") not in (None, 1) and "n" not in _KEYWORDS:
        raise ProxyError(400, "n must be 1: one answer per request", param="n", code="unsupported_value")
    return args


def message_of(result: ChatResult) -> dict[str, Any]:
    """The assistant message of `result`, tool calls included where the result has them."""
    return dict(result.message)


def completion_id(result: ChatResult) -> str:
    """The upstream's id when it is an OpenAI one; otherwise one of the same shape, so an
    answer from a fallback to another API looks like any other."""
    upstream = result.response_id
    if upstream and upstream.startswith("chatcmpl-"):
        return upstream
    return f"chatcmpl-{result.request_id}"


def completion_body(result: ChatResult, model: str, created: int) -> dict[str, Any]:
    """The `chat.completion` answering with `result`, named after the `model` asked for."""
    many = result.choices
    if many:
        choices = [
            {
                "index": c.index,
                "message": c.message,
                "logprobs": None,
                "finish_reason": c.finish_reason or "stop",
            }
            for c in many
        ]
    else:
        choices = [
            {
                "index": 0,
                "message": message_of(result),
                "logprobs": None,
                "finish_reason": result.finish_reason or "stop",
            }
        ]
    body: dict[str, Any] = {
        "id": completion_id(result),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": openai_usage(result),
    }
    if result.system_fingerprint is not None:
        body["system_fingerprint"] = result.system_fingerprint
    return body
