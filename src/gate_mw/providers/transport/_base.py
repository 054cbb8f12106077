"""The transport interface: one POST of bytes, read whole (capped) or as a stream."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Generic, Protocol, TypeVar

from ...errors import ErrorKind, UpstreamError

__all__ = ["NO_CHUNKS", "Reply", "Sender", "Streamed", "Transport", "read_capped"]

_R = TypeVar("_R")


class Reply:
    """A reply read whole: status, headers (case-insensitive) and body bytes. An error
    reply's body is cut at the error-body limit."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


class Streamed(Reply):
    """A reply whose body is read as it arrives, from `chunks` (an error reply's body is
    read already, into `content`, and `chunks` is empty)."""

    __slots__ = ("chunks",)

    def __init__(
        self, status_code: int, headers: Mapping[str, str], content: bytes, chunks: AsyncIterator[bytes]
    ) -> None:
        super().__init__(status_code, headers, content)
        self.chunks = chunks


class Transport(Protocol):
    """POSTs a pre-encoded body with pre-built headers. Failures of the connection or of
    the HTTP framing raise one of `errors` (or `TimeoutError`); every reply, error statuses
    included, is returned for the provider to judge."""

    errors: tuple[type[BaseException], ...]

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, limit: int, error_limit: int
    ) -> Reply:
        """The reply read whole: over `limit` bytes fails (PROTOCOL `UpstreamError`); an
        error status's body is cut at `error_limit`."""
        ...

    def stream(
        self, url: str, headers: Mapping[str, str], body: bytes, *, error_limit: int
    ) -> AbstractAsyncContextManager[Streamed]:
        """The reply as it arrives; the connection is released when the block exits, so
        leaving early closes it rather than paying for unread tokens."""
        ...

    async def aclose(self) -> None:
        """Close the pool (only a transport the gateway made)."""
        ...


class Sender(abc.ABC, Generic[_R]):
    """`Transport.post` and `.stream` over one client library: a subclass says how to send a
    request and read its reply (`_R`), the judging of statuses and caps is shared."""

    __slots__ = ()

    @abc.abstractmethod
    def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> AbstractAsyncContextManager[_R]:
        """POST `body`; the reply, released when the block exits."""

    @abc.abstractmethod
    def _head(self, response: _R) -> tuple[int, Mapping[str, str]]:
        """The reply's status and headers."""

    @abc.abstractmethod
    async def _read(self, response: _R, limit: int, *, cut: bool) -> bytes:
        """The body, capped at `limit` (see `read_capped`)."""

    @abc.abstractmethod
    def _chunks(self, response: _R) -> AsyncIterator[bytes]:
        """The body as it arrives."""

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, limit: int, error_limit: int
    ) -> Reply:
        async with self._send(url, headers, body) as response:
            status, head = self._head(response)
            failed = status >= 400
            content = await self._read(response, error_limit if failed else limit, cut=failed)
            return Reply(status, head, content)

    @contextlib.asynccontextmanager
    async def stream(
        self, url: str, headers: Mapping[str, str], body: bytes, *, error_limit: int
    ) -> AsyncIterator[Streamed]:
        async with self._send(url, headers, body) as response:
            status, head = self._head(response)
            if status >= 400:
                content = await self._read(response, error_limit, cut=True)
                yield Streamed(status, head, content, NO_CHUNKS)
            else:
                yield Streamed(status, head, b"", self._chunks(response))


class _NoChunks:
    """The body of an error reply streamed, read into `content` already."""

    __slots__ = ()

    def __aiter__(self) -> _NoChunks:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration


NO_CHUNKS: AsyncIterator[bytes] = _NoChunks()


def _over(limit: int) -> UpstreamError:
    return UpstreamError(ErrorKind.PROTOCOL, f"reply body over the {limit}-byte limit")


async def read_capped(
    chunks: AsyncIterator[bytes], limit: int, *, declared: int | None = None, cut: bool = False
) -> bytes:
    """The bytes of `chunks`, at most `limit`: more fails as a protocol error or, with
    `cut`, is cut at `limit` (the rest is never read). `declared` is the Content-Length."""
    if not cut and declared is not None and declared > limit:
        raise _over(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            if not cut:
                raise _over(limit)
            parts.append(chunk[: len(chunk) - (size - limit)])
            break
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
