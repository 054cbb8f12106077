"""Scrub secrets from any text that may reach a span, a log line or an error body."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["redact"]

_REDACTED = "[redacted]"
# Keys some upstreams echo back in their error messages, whatever key we sent.
_KEY_PATTERNS = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{6,}|(?<=Bearer )[A-Za-z0-9_\-\.=]{6,}|sk-or-[A-Za-z0-9_\-]{6,})"
)


def _forms(secret: str) -> set[str]:
    """The ways `secret` may appear in text an upstream sends back: as is, JSON-escaped
    and URL-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote(secret)} - {""}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secrets (in any of their encoded forms) and anything shaped
    like an API key replaced. Redact before cutting text short: a cut can split a secret."""
    for secret in secrets:
        if secret:
            # Longest first, so a form that contains another is replaced whole.
            for form in sorted(_forms(secret), key=len, reverse=True):
                text = text.replace(form, _REDACTED)
    return _KEY_PATTERNS.sub(_REDACTED, text)
