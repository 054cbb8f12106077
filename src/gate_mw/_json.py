"""JSON read and written on the hot path: orjson when it is installed (the `proxy` extra
brings it), the standard library otherwise, with the same results.

The proxy reads and writes a body per request, and every provider reads each reply:
measured, the standard library took ~35 us for a chat body's read and write, orjson ~5 us.
What orjson refuses (a body in UTF-16, NaN, a lone surrogate; a key that is not a string,
an integer past 64 bits) goes to the standard library, and so does a body with 19 digits
in a row (orjson would read an integer past 64 bits as a float), so both read and write
the same values; but for NaN and the infinities, which JSON has no word for: orjson
writes them as null. So providers encode with orjson only requests the gate checked (no
NaN gets past `chat._validate`) and anything else with the standard library, which
refuses them.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the `proxy` extra installs it
    orjson = None  # type: ignore[assignment]

__all__ = ["dumps", "dumps_plain", "is_plain", "loads"]

# Where orjson would read an integer as a float (past -2**63 or 2**64 - 1), or digits
# in a string: rare in a chat request, and read right by the standard library. Found by
# mapping every digit to "0" and anything else to " " and searching for 19 zeros: a
# sixth of a regular expression's time on a chat body, less on a larger one.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def loads(data: bytes) -> Any:
    """The value of the JSON document `data`; `ValueError` when it is not one."""
    # `find`, not `in`: bytes' `in` first tries its operand as an integer, and formats
    # (then drops) a TypeError for a bytes one: ~1,900 instructions a call (callgrind).
    if orjson is not None and data.translate(_DIGITS).find(_LONG_DIGITS) < 0:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json may still take it (see above), or raise its own ValueError
    return json.loads(data)


# The integers orjson writes; past them it raises and the standard library writes them.
_MIN_INT, _MAX_INT = -(2**63), 2**64 - 1


def is_plain(value: Any, depth: int = 0) -> bool:
    """Whether `value` is plain JSON data that orjson and the standard library write alike
    (same meaning): dicts with string keys, lists, strings, ints orjson takes, finite
    floats, bools and None, all of exactly those types and nested at most 64 deep."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(_MIN_INT <= value <= _MAX_INT)
    if kind is float:
        return bool(value - value == 0.0)  # false for NaN and the infinities
    if depth >= 64:
        return False
    if kind is dict:
        return all(type(key) is str and is_plain(item, depth + 1) for key, item in value.items())
    if kind is list:
        return all(is_plain(item, depth + 1) for item in value)
    return False


def dumps_plain(value: Any) -> bytes | None:
    """Plain JSON data (see `is_plain`; what `chat._validate` returns is) as compact UTF-8
    JSON by orjson, or None when orjson is not installed or refuses it (a lone surrogate,
    an integer past 64 bits): the caller's own encoder decides then. Not for other data:
    orjson writes NaN as null where the standard library can refuse it."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError
            pass
    return None


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return _encode(value).encode()
