"""What the fake upstream does with one request: answer, fail, stream or hang up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

__all__ = ["Behaviour", "Drop", "Fault", "Raw", "Reply", "Stream", "ToolUse"]


def _check_delay(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_count(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _freeze(owner: object, headers: Mapping[str, str]) -> None:
    object.__setattr__(owner, "headers", MappingProxyType({k.lower(): v for k, v in headers.items()}))


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call the fake model makes: OpenAI ``tool_calls`` or an Anthropic ``tool_use``
    block (streamed as pieces of arguments, as the real APIs do). ``id`` defaults to a
    fresh one per reply."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful completion, sent whole or, for ``"stream": true`` requests, as SSE.

    ``text=None`` answers with a deterministic text derived from the prompt; token counts left
    as ``None`` are estimated from the prompt and the answer. ``model`` overrides the model
    echoed back; ``usage=False`` leaves usage out of the reply. ``cost`` is the bill OpenRouter
    reports in ``usage.cost``; ``headers`` are added to the response (LiteLLM's
    ``x-litellm-response-cost``). ``cache_write_tokens`` is Anthropic's
    ``cache_creation_input_tokens``. ``tool_calls`` makes the model call tools
    (``finish_reason`` then defaults to ``"tool_calls"``). ``json`` is a structured answer:
    its JSON is the text, or, when an Anthropic request forces a tool (as gate_mw does for
    structured output), that tool's input.
    """

    text: str | None = None
    _: KW_ONLY
    latency: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None
    model: str | None = None
    usage: bool = True
    cost: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tool_calls: Sequence[ToolUse] = ()
    json: Any = None
    #: OpenAI's `system_fingerprint`, sent in the reply when given.
    system_fingerprint: str | None = None

    def __post_init__(self) -> None:
        _check_delay("latency", self.latency)
        _freeze(self, self.headers)
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.text is not None and self.json is not None:
            raise ValueError("give a Reply either text or json, not both")


@dataclass(frozen=True, slots=True)
class Fault:
    """An HTTP error in the error format of the API that was called.

    ``retry_after`` adds a ``Retry-After`` header; ``code`` and ``error_type`` override the
    ``code``/``type`` fields, which otherwise follow the status; ``headers`` are added to the
    response. The class methods script the error shapes of real upstreams.
    """

    status: int = 500
    _: KW_ONLY
    message: str | None = None
    retry_after: float | None = None
    latency: float = 0.0
    code: str | int | None = None
    error_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Set by context_length(): the default message then reports the prompt overflowing this.
    context_limit: int | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a Fault status must be 4xx or 5xx, got {self.status}")
        _check_delay("latency", self.latency)
        if self.retry_after is not None:
            _check_delay("retry_after", self.retry_after)
        _freeze(self, self.headers)

    @classmethod
    def context_length(cls, limit: int = 128_000) -> Fault:
        """400: the prompt does not fit the model's context window of ``limit`` tokens."""
        return cls(
            400,
            code="context_length_exceeded",
            error_type="invalid_request_error",
            context_limit=limit,
        )

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        """429 with a ``Retry-After`` header."""
        return cls(429, retry_after=retry_after, code="rate_limit_exceeded")

    @classmethod
    def out_of_credits(cls) -> Fault:
        """402, as OpenRouter answers an account without credits (a numeric ``code``)."""
        message = "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
        return cls(402, code=402, message=message)

    @classmethod
    def moderation(cls) -> Fault:
        """403, as OpenRouter answers input its moderation flagged."""
        message = "meta-llama/llama-guard requires moderation; your input was flagged for \"violence\""
        return cls(403, code=403, message=message)

    @classmethod
    def invalid_model(cls, model: str = "unknown-model") -> Fault:
        """400, as a LiteLLM proxy answers for a model it does not serve."""
        message = (
            f"Invalid model name passed in model={model}. "
            "Call `/v1/models` to view available models for your key."
        )
        return cls(400, code="400", error_type="invalid_request_error", message=message)

    @classmethod
    def litellm_rate_limited(cls, retry_after: float = 1.0) -> Fault:
        """429 from a LiteLLM proxy, the upstream's Retry-After passed on as
        ``llm_provider-retry-after`` (and no plain ``Retry-After``)."""
        headers = {"llm_provider-retry-after": f"{retry_after:g}", "x-litellm-version": "1.74.0"}
        return cls(429, code="429", error_type="throttling_error", headers=headers)


@dataclass(frozen=True, slots=True)
class Stream:
    """A streamed (SSE) completion with optional mid-stream failures.

    Content comes from ``chunks`` or, split into words, from ``text`` (deterministic from the
    prompt when both are ``None``). Headers go out at once; ``ttft`` delays the first event and
    ``chunk_delay`` separates content chunks. Each ``*_after=n`` acts after ``n`` content chunks:
    ``cut_after`` closes the socket mid-body, ``error_after`` sends an error event and ends the
    stream, ``malformed_after`` sends an unparsable event and carries on, ``stall_after`` sends
    nothing more until the client hangs up. ``include_usage=None`` follows the request (OpenAI
    ``stream_options.include_usage``; always for Anthropic). ``error_style="openrouter"``
    sends OpenRouter's mid-stream error: a chunk with an ``error`` object and
    ``finish_reason: "error"``. ``cost`` is OpenRouter's ``usage.cost`` in the last chunk.

    A Stream consumed by a non-streaming request is answered as a plain reply with the same text
    and token counts after ``ttft``.
    """

    text: str | None = None
    _: KW_ONLY
    chunks: Sequence[str] | None = None
    ttft: float = 0.0
    chunk_delay: float = 0.0
    include_usage: bool | None = None
    cut_after: int | None = None
    error_after: int | None = None
    malformed_after: int | None = None
    stall_after: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    finish_reason: str = "stop"
    error_style: Literal["default", "openrouter"] = "default"
    cost: float | None = None

    def __post_init__(self) -> None:
        if self.text is not None and self.chunks is not None:
            raise ValueError("give a Stream either text or chunks, not both")
        if self.chunks is not None:
            # A tuple keeps the frozen dataclass hashable and safe from later mutation.
            object.__setattr__(self, "chunks", tuple(self.chunks))
        _check_delay("ttft", self.ttft)
        _check_delay("chunk_delay", self.chunk_delay)
        for name in ("cut_after", "error_after", "malformed_after", "stall_after"):
            _check_count(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without any response, after ``latency`` seconds."""

    latency: float = 0.0

    def __post_init__(self) -> None:
        _check_delay("latency", self.latency)


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes written to the connection as they are, in place of a response, which is then
    closed: for what no well-behaved provider sends (a reply that is not HTTP, broken
    chunked framing, a hand-made body or header). ``Raw.response`` and ``Raw.sse`` build
    the usual ones; ``latency`` delays the write.
    """

    data: bytes
    _: KW_ONLY
    latency: float = 0.0

    def __post_init__(self) -> None:
        _check_delay("latency", self.latency)

    @classmethod
    def response(
        cls, status: int, body: bytes, *, headers: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json", latency: float = 0.0,
    ) -> Raw:
        """A whole HTTP/1.1 response with ``body`` and its ``Content-Length``."""
        lines = [f"HTTP/1.1 {status} X", f"content-type: {content_type}",
                 f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in headers)]
        return cls("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body, latency=latency)

    @classmethod
    def sse(cls, body: bytes, *, latency: float = 0.0) -> Raw:
        """A 200 ``text/event-stream`` response whose body is ``body`` as it is, until the
        connection closes (no chunked framing, no length)."""
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        return cls(head + body, latency=latency)


Behaviour: TypeAlias = Reply | Fault | Stream | Drop | Raw
