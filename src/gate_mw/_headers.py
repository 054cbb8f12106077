"""What may go into an HTTP header: checked when a config or policy is loaded, so that a
value which could only fail when a response is sent fails at startup instead."""

from __future__ import annotations

import re

__all__ = ["header_name_problem", "header_text_problem"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def header_name_problem(name: object) -> str | None:
    """Why `name` cannot be an HTTP header name (RFC 9110 token), if it cannot."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        return f"{name!r} is not a valid HTTP header name"
    return None


def header_text_problem(value: object, what: str = "value") -> str | None:
    """Why `value` cannot be sent in an HTTP header (Latin-1, no control characters)."""
    if not isinstance(value, str):
        return f"{what} must be a string"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"{what} {value!r} cannot go into an HTTP header: use Latin-1 characters only"
    if not value.isprintable():
        return f"{what} {value!r} holds control characters, which cannot go into an HTTP header"
    return None
