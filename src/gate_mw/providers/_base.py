"""The provider interface: one instance per deployment, speaking one upstream API."""

from __future__ import annotations

import abc
import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..chat._model import Choice, ToolCall, ToolCallDelta
from ..chat._output import Output
from ..chat._tokens import estimate_messages, estimate_text
from ..results import Usage

__all__ = [
    "ChatRequest", "Provider", "ProviderReply", "StreamEnd", "StreamEvent", "billed_cost",
    "estimated_usage",
]


# ChatRequest and ProviderReply are made on every call: plain slotted classes, since a
# frozen dataclass pays an object.__setattr__ per field (several microseconds for these).
# Neither is mutated after it is made.
@dataclass(slots=True)
class ChatRequest:
    """What the caller asked for, in OpenAI's chat format; each provider translates it.

    `extra` holds the other OpenAI parameters (`chat.OPENAI_PARAMS`), which providers that
    do not take them drop; `extra_body` is merged into every provider's body as given.
    """

    messages: Sequence[Mapping[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: Sequence[str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: Mapping[str, Any] | None = None
    output: Output | None = None
    n: int | None = None
    seed: int | None = None
    user: str | None = None
    metadata: Mapping[str, str] | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    raw: bool = False
    #: Made by the gate from checked copies (`chat._validate`): plain JSON data, without
    #: NaN, so providers may encode it with orjson (see `plain`).
    checked: bool = field(default=False, compare=False, repr=False)

    @property
    def plain(self) -> bool:
        """Whether every field is plain JSON data (`_json.is_plain`): checked by the gate,
        and `output`'s schema plain too when it is the response format sent."""
        output = self.output
        return self.checked and (output is None or output.plain or self.response_format is not None)

    @property
    def format(self) -> Mapping[str, Any] | None:
        """The response format to ask for: the caller's, else `output`'s."""
        if self.response_format is not None:
            return self.response_format
        return None if self.output is None else self.output.response_format


@dataclass(slots=True)
class ProviderReply:
    """A provider's answer, normalised."""

    text: str
    finish_reason: str | None
    model: str
    response_id: str | None
    usage: Usage
    #: What the upstream said it billed, in USD (OpenRouter, LiteLLM), when it said so.
    cost: float | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    #: Every choice, when the call asked for `n > 1`.
    choices: tuple[Choice, ...] = ()
    #: The provider's JSON, when the call asked for it (`raw=True`).
    raw: Any = None
    #: OpenAI's backend configuration id, when the upstream sent one.
    system_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a stream: how it finished, and the usage (and billed cost) the
    provider reported (`None` when it sent none)."""

    finish_reason: str | None
    model: str | None
    response_id: str | None
    usage: Usage | None
    cost: float | None = None
    #: The tool calls assembled from the stream's pieces.
    tool_calls: tuple[ToolCall, ...] = ()


#: What `Provider.stream` yields: each text delta as a plain, non-empty `str` (no wrapper
#: object per chunk), each piece of a tool call as a `ToolCallDelta`, then one `StreamEnd`.
StreamEvent: TypeAlias = str | ToolCallDelta | StreamEnd


def estimated_usage(request: ChatRequest, text: str) -> Usage:
    """Usage estimated from the prompt and the answer, flagged as such; never zero."""
    return Usage(estimate_messages(request.messages), estimate_text(text), estimated=True)


def billed_cost(value: Any, *, free: bool = True) -> float | None:
    """A cost an upstream reported (a number or numeric string, USD), or None when it is
    missing or not a finite, non-negative number. `free=False` takes 0 as unknown: LiteLLM
    reports 0 for models it has no price for."""
    if value is None:
        return None
    if type(value) is dict or isinstance(value, Mapping):  # `usage`: OpenRouter's bill in `cost`
        value = value.get("cost")
        if value is None:  # what most upstreams send
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        cost = float(value)
    except ValueError:
        return None
    return cost if math.isfinite(cost) and (cost > 0 or (free and cost == 0)) else None


class Provider(abc.ABC):
    """Sends chat requests to one upstream deployment.

    Implementations raise `UpstreamError` (with an `ErrorKind`) for every failure, and
    never let a secret into an error message.
    """

    #: The `gen_ai.provider.name` of this provider.
    system: str = "unknown"
    server_address: str | None = None
    server_port: int | None = None

    @abc.abstractmethod
    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        """One non-streaming chat completion; time limits are the caller's."""

    async def stream(self, model: str, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """One streamed chat completion: non-empty text deltas, then one `StreamEnd`.

        Failures at any point raise `UpstreamError`, including error events, malformed
        chunks and a stream that stops before its end. Time limits are the caller's, who
        closes the generator on every exit path. This default answers with `chat` in
        one delta, for providers that cannot stream.
        """
        reply = await self.chat(model, request)
        if reply.text:
            yield reply.text
        for index, call in enumerate(reply.tool_calls):
            yield ToolCallDelta(index, call.id, call.name, call.arguments)
        yield StreamEnd(
            reply.finish_reason, reply.model, reply.response_id, reply.usage, reply.cost,
            tool_calls=reply.tool_calls,
        )

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing of their own
        """Release resources the provider holds itself."""
