"""Scrub secrets from any text that may reach a span, a log line or an error body."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact"]

_REDACTED = "[redacted]"
# Keys some upstreams echo back in their error messages, whatever key we sent.
_KEY_PATTERNS = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{6,}|(?<=Bearer )[A-Za-z0-9_\-\.=]{6,}|sk-or-[A-Za-z0-9_\-]{6,})"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secrets and anything shaped like an API key replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return _KEY_PATTERNS.sub(_REDACTED, text)
