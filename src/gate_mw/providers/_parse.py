"""Strict readers for the parts of an upstream's reply that feed accounting and the
caller: token counts, message text, ids. What does not fit is the upstream's fault, a
PROTOCOL `UpstreamError` that falls back, never a crash after the 200 nor negative spend."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ErrorKind, UpstreamError

__all__ = ["MAX_TOKENS", "optional_str", "reply_text", "token_count"]

#: More tokens than any one call can use: a count above it is a broken upstream's.
MAX_TOKENS = 100_000_000


def _malformed(what: str, value: Any) -> UpstreamError:
    shown = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__
    return UpstreamError(ErrorKind.PROTOCOL, f"malformed reply: {what} is {shown[:40]}")


def token_count(usage: Mapping[str, Any], name: str) -> int:
    """`usage[name]` as a token count: a non-negative whole number up to `MAX_TOKENS`
    (absent or null: 0)."""
    value = usage.get(name)
    if type(value) is int and 0 <= value <= MAX_TOKENS:  # the common case, first
        return value
    if value is None:
        return 0
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_TOKENS:
        raise _malformed(f"usage.{name}", value)
    return value


def reply_text(content: Any, what: str = "content") -> str:
    """Message or delta content as text: a string, nothing (None), or a list of parts
    whose text parts are joined. Anything else is malformed."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
                elif text is not None:
                    raise _malformed(f"{what} part text", text)
            else:
                raise _malformed(f"{what} part", part)
        return "".join(texts)
    raise _malformed(what, content)


def optional_str(value: Any) -> str | None:
    """An id, model or finish reason: a string or None; anything else is dropped."""
    return value if isinstance(value, str) else None
