"""How hard a request looks: a transparent heuristic a policy can replace with its own."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ..chat._tokens import content_text

if TYPE_CHECKING:
    from ._request import RequestInfo

__all__ = ["Classifier", "Tier", "classify_complexity"]

Tier = Literal["simple", "medium", "complex"]
Classifier = Callable[["RequestInfo"], str]

_KEYWORDS = re.compile(
    r"\b(explain|analy[sz]e|analysis|prove|proof|derive|step[- ]by[- ]step|compare|evaluate"
    r"|design|debug|refactor|optimi[sz]e|trade-?offs?|why)\b"
)  # matched against lower-cased text: much faster than re.IGNORECASE
_SCAN_CHARS = 8000  # keywords are looked for in the last user message's first characters
_LONG, _VERY_LONG = 400, 2000  # prompt tokens


def classify_complexity(request: RequestInfo) -> Tier:
    """`simple`, `medium` or `complex`, from one point each for: a prompt over 400
    estimated tokens (two over 2000), each distinct reasoning keyword (explain, analyse,
    prove, compare, debug, ..., at most two) and a code block in the last user message.
    0 points is simple, 1-2 medium, 3 or more complex."""
    score = 2 if request.prompt_tokens > _VERY_LONG else 1 if request.prompt_tokens > _LONG else 0
    text = ""
    for message in reversed(request.messages):
        if message.get("role") == "user":
            text = content_text(message.get("content"))[:_SCAN_CHARS].lower()
            break
    if text:
        score += min(len(set(_KEYWORDS.findall(text))), 2)
        if "```" in text:
            score += 1
    return "simple" if score == 0 else "medium" if score <= 2 else "complex"
