"""The request boundary: what a caller hands `gate.chat`/`gate.stream`, checked and
normalised before anything leaves, so that a caller's mistake is a `RequestRejected`
(a 4xx) and never an upstream failure that moves a breaker or starts a fallback."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import RequestRejected

__all__ = ["MAX_DEPTH", "RESERVED", "ROLES", "validate_request"]

#: Roles a message may have.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Parameters the gateway sets itself: a caller's would change the wire protocol under it.
RESERVED = frozenset({"model", "messages", "stream"})
#: How deeply JSON values may nest in messages and parameters: deeper is refused rather
#: than left to overflow the encoder's recursion.
MAX_DEPTH = 32


class _Invalid(Exception):
    """A caller fault at `where`; turned into `RequestRejected` by `validate_request`."""


def _where(path: str, key: object) -> str:
    return f"{path}[{key!r}]" if not isinstance(key, int) else f"{path}[{key}]"


def _check_text(value: str, where: str) -> None:
    # Lone surrogates cannot be encoded as UTF-8: no upstream could ever read them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid(f"{where}: a string holds a lone surrogate (not valid Unicode)") from None


def _check_json(value: object, where: str, depth: int = 0) -> Any:
    """`value` as plain JSON data (dicts, lists, str, finite numbers, bools, None)."""
    if value is None or value is True or value is False or type(value) is int:
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(f"{where}: {value!r} is not a finite number")
        return float(value)
    if isinstance(value, int):  # an int subclass (an IntEnum): its plain value
        return int(value)
    if depth >= MAX_DEPTH:
        raise _Invalid(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Invalid(f"{where}: keys must be strings, got {type(key).__name__}")
            _check_text(key, where)
            checked[key] = _check_json(item, _where(where, key), depth + 1)
        return checked
    if isinstance(value, (list, tuple)):
        return [_check_json(item, _where(where, i), depth + 1) for i, item in enumerate(value)]
    raise _Invalid(f"{where}: {type(value).__name__} is not JSON data")


def _check_message(message: object, where: str) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise _Invalid(f"{where}: a message must be a mapping with role and content, "
                       f"got {type(message).__name__}")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        known = ", ".join(sorted(ROLES))
        raise _Invalid(f"{where}.role: must be one of {known}, got {role!r}"[:300])
    content = message.get("content")
    if not (content is None or isinstance(content, (str, list, tuple))):
        raise _Invalid(f"{where}.content: must be a string or a list of content parts, "
                       f"got {type(content).__name__}")
    if isinstance(content, (list, tuple)):
        for index, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise _Invalid(f"{where}.content[{index}]: a content part must be a mapping with a type")
    checked: dict[str, Any] = _check_json(message, where)
    return checked


def _check_number(name: str, value: object, *, minimum: float, integer: bool = False) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise _Invalid(f"{name}: must be {kind}, got {type(value).__name__}")
    assert isinstance(value, int | float)
    if not math.isfinite(value) or value < minimum:
        raise _Invalid(f"{name}: must be a finite number >= {minimum:g}, got {value!r}")


def _validate(
    messages: object, max_tokens: object, temperature: object, top_p: object, stop: object,
    params: Mapping[str, Any],
) -> tuple[tuple[dict[str, Any], ...], list[str] | None, dict[str, Any]]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise _Invalid(f"messages: must be a list of messages, got {type(messages).__name__}")
    if not messages:
        raise _Invalid("messages: must not be empty")
    checked = tuple(_check_message(m, f"messages[{i}]") for i, m in enumerate(messages))
    if max_tokens is not None:
        _check_number("max_tokens", max_tokens, minimum=1, integer=True)
    if temperature is not None:
        _check_number("temperature", temperature, minimum=0)
    if top_p is not None:
        _check_number("top_p", top_p, minimum=0)
    stops: list[str] | None = None
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
            raise _Invalid("stop: must be a string or a list of strings")
        stops = _check_json(list(stop), "stop")
    if reserved := sorted(RESERVED & params.keys()):
        raise _Invalid(f"{reserved[0]}: set by the gateway, not a parameter (use gate.stream to stream)")
    extra: dict[str, Any] = _check_json(dict(params), "params")
    return checked, stops, extra


def validate_request(
    messages: object, *, max_tokens: object = None, temperature: object = None,
    top_p: object = None, stop: object = None, params: Mapping[str, Any], request_id: str | None,
) -> tuple[tuple[dict[str, Any], ...], list[str] | None, dict[str, Any]]:
    """The messages, stop sequences and extra parameters as plain JSON data (copies the
    caller can no longer change), or `RequestRejected` (400) naming what is wrong.

    Refused: messages that are not a non-empty list of mappings, an unknown role, content
    that is neither a string, None nor a list of typed parts, non-finite numbers,
    strings with lone surrogates, values that are not JSON data, nesting deeper than
    `MAX_DEPTH`, out-of-range `max_tokens`, `temperature` or `top_p`, and parameters the
    gateway sets itself (`RESERVED`).
    """
    try:
        return _validate(messages, max_tokens, temperature, top_p, stop, params)
    except _Invalid as invalid:
        raise RequestRejected(
            f"invalid request: {invalid}", (), request_id=request_id, status=400
        ) from None
