"""Tool calls and choices, in OpenAI's chat format (the lingua franca every provider's
answer is translated to), and the keywords `Gate.chat` takes besides its named ones."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from ..results import ChatResult

__all__ = [
    "NAMED_PARAMS", "OPENAI_PARAMS", "ChatOptions", "Choice", "StreamDone", "TextDelta", "ToolCall",
    "ToolCallDelta", "assistant_message", "check_params",
]

class ChatOptions(TypedDict, total=False):
    """The keywords of `Gate.chat` and `Gate.stream` besides `model` and `max_cost_usd`:
    OpenAI's chat parameters, which each provider translates or, where it has no
    counterpart, drops with a debug log."""

    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: str | Sequence[str] | None
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    response_format: Mapping[str, Any] | None
    #: A pydantic model (or any type pydantic validates) or a JSON schema.
    output: Any
    n: int | None
    seed: int | None
    user: str | None
    metadata: Mapping[str, str] | None
    #: Merged into every provider's request body as given.
    extra_body: Mapping[str, Any] | None
    #: Keep the provider's JSON in `result.raw`.
    raw: bool
    # Passed on to OpenAI-compatible providers only.
    frequency_penalty: float
    presence_penalty: float
    logit_bias: Mapping[str, int]
    logprobs: bool
    top_logprobs: int
    reasoning_effort: str
    service_tier: str
    store: bool
    modalities: Sequence[str]
    audio: Mapping[str, Any]
    prediction: Mapping[str, Any]
    verbosity: str
    web_search_options: Mapping[str, Any]
    prompt_cache_key: str
    safety_identifier: str


#: The keywords `ChatRequest` has a field for; the other `ChatOptions` go to its `extra`.
NAMED_PARAMS = frozenset({
    "max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice", "parallel_tool_calls",
    "response_format", "output", "n", "seed", "user", "metadata", "extra_body", "raw",
})
#: OpenAI parameters passed on as they are, by providers that take them.
OPENAI_PARAMS = frozenset(ChatOptions.__annotations__) - NAMED_PARAMS


def check_params(params: Mapping[str, Any], function: str) -> dict[str, Any]:
    """The keywords among `params` that go to `ChatRequest.extra`; `TypeError` naming the
    first keyword that is no chat option, so a typo never reaches a provider."""
    extra: dict[str, Any] = {}
    for name, value in params.items():
        if name not in NAMED_PARAMS:
            if name not in OPENAI_PARAMS:
                raise TypeError(
                    f"{function}() got an unexpected keyword argument {name!r}; "
                    "pass provider-specific fields in extra_body="
                )
            extra[name] = value
    return extra


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
