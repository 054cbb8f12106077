"""The request boundary: what a caller hands `gate.chat`/`gate.stream`, checked and
normalised before anything leaves, so that a caller's mistake is a `RequestRejected`
(a 4xx) and never an upstream failure that moves a breaker or starts a fallback."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_DEPTH", "OPAQUE", "RESERVED", "ROLES", "InvalidRequest", "validate_request"]

#: Roles a message may have.
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Fields the gateway sets itself: a caller's (in `extra_body`) would change the wire
#: protocol under it.
RESERVED = frozenset({"model", "messages", "stream"})
#: Options that are not JSON data, passed through unchecked.
OPAQUE = frozenset({"output"})
#: How deeply JSON values may nest in messages and parameters: deeper is refused rather
#: than left to overflow the encoder's recursion.
MAX_DEPTH = 32


class InvalidRequest(Exception):
    """A caller fault, naming where it is; the gate answers it with `RequestRejected` (400)."""


def _where(path: str, key: object) -> str:
    return f"{path}[{key!r}]" if not isinstance(key, int) else f"{path}[{key}]"


def _check_text(value: str, where: str) -> None:
    # Lone surrogates cannot be encoded as UTF-8: no upstream could ever read them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{where}: a string holds a lone surrogate (not valid Unicode)") from None


def _check_json(value: object, where: str, depth: int = 0) -> Any:
    """`value` as plain JSON data (dicts, lists, str, finite numbers, bools, None)."""
    # A dict (a message, a tool) is what comes here most: plain ASCII strings, ints, bools
    # and None inside one are taken by its loop, without a call.
    if type(value) is dict:
        if depth >= MAX_DEPTH:
            raise InvalidRequest(f"{where}: nested more than {MAX_DEPTH} levels deep")
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequest(f"{where}: keys must be strings, got {type(key).__name__}")
            if not key.isascii():  # ASCII holds no surrogate
                _check_text(key, where)
            # Plain ASCII strings, ints, bools and None are JSON as they are: the common
            # case skips building the item's path, which only an error message needs.
            kind = type(item)
            if (kind is str and item.isascii()) or kind is int or kind is bool or item is None:
                checked[key] = item
            else:
                checked[key] = _check_json(item, _where(where, key), depth + 1)
        return checked
    if value is None or value is True or value is False or type(value) is int:
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"{where}: {value!r} is not a finite number")
        return float(value)
    if isinstance(value, int):  # an int subclass (an IntEnum): its plain value
        return int(value)
    if depth >= MAX_DEPTH:
        raise InvalidRequest(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):  # another mapping: checked as a dict of its items
        return _check_json(dict(value.items()), where, depth)
    if isinstance(value, (list, tuple)):
        return [_check_json(item, _where(where, i), depth + 1) for i, item in enumerate(value)]
    raise InvalidRequest(f"{where}: {type(value).__name__} is not JSON data")


def _check_message(message: object, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if type(message) is not dict and not isinstance(message, Mapping):
        raise InvalidRequest(f"{where}: a message must be a mapping with role and content, "
                             f"got {type(message).__name__}")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        known = ", ".join(sorted(ROLES))
        raise InvalidRequest(f"{where}.role: must be one of {known}, got {role!r}"[:300])
    content = message.get("content")
    if type(content) is not str and content is not None:
        if not isinstance(content, (str, list, tuple)):
            raise InvalidRequest(f"{where}.content: must be a string or a list of content parts, "
                                 f"got {type(content).__name__}")
        if not isinstance(content, str):
            for part_index, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise InvalidRequest(
                        f"{where}.content[{part_index}]: a content part must be a mapping with a type"
                    )
    checked: dict[str, Any] = _check_json(message, where)
    return checked


def _check_number(name: str, value: object, *, minimum: float | None, integer: bool = False) -> None:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise InvalidRequest(f"{name}: must be {kind}, got {type(value).__name__}")
    assert isinstance(value, int | float)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise InvalidRequest(f"{name}: must be a finite number{bound}, got {value!r}")


# name -> (minimum, integer) of the numeric options
_NUMBERS: dict[str, tuple[float | None, bool]] = {
    "max_tokens": (1, True), "temperature": (0, False), "top_p": (0, False), "n": (1, True),
    "seed": (None, True),
}
# name -> the least int each numeric option takes, for the common case in `validate_request`.
_INT_FLOOR = {name: -math.inf if minimum is None else minimum for name, (minimum, _) in _NUMBERS.items()}


def _check_option(name: str, value: object) -> Any:
    if value is None or name in OPAQUE:
        return value
    if (bounds := _NUMBERS.get(name)) is not None:
        minimum, integer = bounds
        # The common case first: a plain int (or a finite float where one is taken) in range.
        kind = type(value)
        if (kind is int or (kind is float and not integer and value - value == 0.0)) and (  # type: ignore[operator]
            minimum is None or value >= minimum  # type: ignore[operator]
        ):
            return value
        _check_number(name, value, minimum=minimum, integer=integer)
    elif name == "stop":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not all(isinstance(s, str) for s in value):
            raise InvalidRequest("stop: must be a string or a list of strings")
    elif name == "extra_body":
        if not isinstance(value, Mapping):
            raise InvalidRequest(f"extra_body: must be a mapping, got {type(value).__name__}")
        if reserved := sorted(RESERVED & value.keys()):
            raise InvalidRequest(f"extra_body.{reserved[0]}: set by the gateway, not by the caller")
    elif name == "raw" and not isinstance(value, bool):
        raise InvalidRequest(f"raw: must be true or false, got {type(value).__name__}")
    return _check_json(value, name)


def validate_request(
    messages: object, options: Mapping[str, Any]
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """The messages and the call's options (`chat.ChatOptions`) as plain JSON data: copies
    the caller can no longer change, `stop` always a list. Otherwise `InvalidRequest`
    naming what is wrong, before anything is sent.

    Refused: messages that are not a non-empty list of mappings, an unknown role, content
    that is neither a string, None nor a list of typed parts, non-finite numbers,
    strings with lone surrogates, values that are not JSON data, nesting deeper than
    `MAX_DEPTH`, out-of-range numeric options (`max_tokens`, `temperature`, `top_p`, `n`,
    `seed`), and `extra_body` fields the gateway sets itself (`RESERVED`). Options in
    `OPAQUE` (`output`: a type or schema, not data) are passed through.
    """
    if type(messages) is not list and (
        isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence)
    ):
        raise InvalidRequest(f"messages: must be a list of messages, got {type(messages).__name__}")
    if not messages:
        raise InvalidRequest("messages: must not be empty")
    # Loops rather than comprehensions: each of those is a call of its own.
    checked: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        # The common message, {"role": a known role, "content": ASCII text}, is JSON as
        # it is: copied here, without the general checks' two calls (-6k instructions).
        if (
            type(message) is dict and len(message) == 2
            and type(role := message.get("role")) is str and role in ROLES
            and type(content := message.get("content")) is str and content.isascii()
        ):
            checked.append(message.copy())
        else:
            checked.append(_check_message(message, index))
    valid = {}
    for name, value in options.items():
        # A plain int in range for a numeric option (max_tokens, most often) is taken as it
        # is, without a call (-1.5k instructions); the rest are checked one by one.
        if type(value) is int and value >= _INT_FLOOR.get(name, math.inf):
            valid[name] = value
        else:
            valid[name] = _check_option(name, value)
    return tuple(checked), valid
