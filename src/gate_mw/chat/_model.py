"""Tool calls and choices, in OpenAI's chat format (the lingua franca every provider's
answer is translated to), and the keywords `Gate.chat` takes besides its named ones."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..results import ChatResult

__all__ = [
    "OPENAI_PARAMS", "Choice", "StreamDone", "TextDelta", "ToolCall", "ToolCallDelta",
    "assistant_message", "check_params",
]

#: OpenAI chat parameters `Gate.chat` passes on as keywords (besides its named ones).
#: Providers that do not take one drop it with a debug log; anything else is a TypeError,
#: so a typo never reaches a provider (provider-specific fields go in `extra_body=`).
OPENAI_PARAMS = frozenset({
    "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
    "reasoning_effort", "service_tier", "store", "modalities", "audio", "prediction",
    "verbosity", "web_search_options", "prompt_cache_key", "safety_identifier",
})


def check_params(params: Mapping[str, Any], function: str) -> None:
    """Raise `TypeError` naming the first keyword no provider knows."""
    for name in params:
        if name not in OPENAI_PARAMS:
            raise TypeError(
                f"{function}() got an unexpected keyword argument {name!r}; "
                "pass provider-specific fields in extra_body="
            )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for: `arguments` is the JSON text as sent, `args`
    that text parsed."""

    id: str
    name: str
    arguments: str

    @property
    def args(self) -> Any:
        """The arguments parsed from JSON; `ValueError` if the model sent invalid JSON."""
        return json.loads(self.arguments) if self.arguments else {}

    def to_dict(self) -> dict[str, Any]:
        """The call in OpenAI's `tool_calls` shape."""
        return {
            "id": self.id, "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def assistant_message(text: str, tool_calls: Sequence[ToolCall]) -> dict[str, Any]:
    """The assistant turn, ready to append to the history."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = [call.to_dict() for call in tool_calls]
    elif not text:
        message["content"] = ""
    return message


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the `n` answers of a call that asked for several."""

    index: int
    text: str
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def message(self) -> dict[str, Any]:
        return assistant_message(self.text, self.tool_calls)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. The first piece of a call carries its `id` and
    `name`; `arguments` pieces, joined in order, make its JSON arguments."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the streamed answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamDone:
    """The last event of `GateStream.events()`: the complete result."""

    result: ChatResult
