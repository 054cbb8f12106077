"""The provider interface: one instance per deployment, speaking one upstream API."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..results import Usage

__all__ = ["ChatRequest", "Provider", "ProviderReply"]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the caller asked for, independent of any provider's wire format."""

    messages: Sequence[Mapping[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: Sequence[str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """A provider's answer, normalised."""

    text: str
    finish_reason: str | None
    model: str
    response_id: str | None
    usage: Usage


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

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing of their own
        """Release resources the provider holds itself."""
