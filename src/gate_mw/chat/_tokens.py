"""Cheap, deterministic token estimates, used where a provider reports no usage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["content_text", "estimate_messages", "estimate_text"]

# Roughly four characters per token for English text across the common tokenizers; exactness
# is not the point, a figure that is never zero and scales with the prompt is.
_CHARS_PER_TOKEN = 4
_PER_MESSAGE_OVERHEAD = 4


def content_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping)
        )
    return ""


def estimate_text(text: str) -> int:
    return max(1, len(text) // _CHARS_PER_TOKEN) if text else 0


def estimate_messages(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of a chat message list."""
    return sum(
        len(content_text(message.get("content"))) // _CHARS_PER_TOKEN + _PER_MESSAGE_OVERHEAD
        for message in messages
    )
