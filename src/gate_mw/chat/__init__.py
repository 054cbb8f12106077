"""The chat model: messages, tools and tool calls, structured output, token estimates, and
the checks at the `gate.chat`/`gate.stream` boundary."""

from ._model import OPENAI_PARAMS, ChatOptions, Choice, StreamDone, TextDelta, ToolCall, ToolCallDelta
from ._output import Output

__all__ = [
    "OPENAI_PARAMS", "ChatOptions", "Choice", "Output", "StreamDone", "TextDelta", "ToolCall",
    "ToolCallDelta",
]
