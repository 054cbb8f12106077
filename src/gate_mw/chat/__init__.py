"""The chat model: messages, tools and tool calls, structured output, token estimates, and
the checks at the `gate.chat`/`gate.stream` boundary."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._model import OPENAI_PARAMS, ChatOptions, Choice, StreamDone, TextDelta, ToolCall, ToolCallDelta
    from ._output import Output

__all__ = [
    "OPENAI_PARAMS", "ChatOptions", "Choice", "Output", "StreamDone", "TextDelta", "ToolCall",
    "ToolCallDelta",
]

# Token estimates (`_tokens`, which routing uses) load without the message model.
if not TYPE_CHECKING:
    __getattr__ = lazy_exports(__name__, globals(), {
        "._model": (
            "OPENAI_PARAMS", "ChatOptions", "Choice", "StreamDone", "TextDelta", "ToolCall", "ToolCallDelta",
        ),
        "._output": ("Output",),
    })
