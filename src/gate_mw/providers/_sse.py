"""Server-sent events: the `data` of each event of a byte stream, parsed in linear time
with a bounded line length."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from ..errors import ErrorKind, UpstreamError

__all__ = ["SSEDecoder"]

_NO_LINES: Iterator[bytes] = iter(())
_CR, _LF = 13, 10


class SSEDecoder:
    """Async iterator over the `data` of each event in `chunks`, as bytes (ready for
    `json.loads`). Lines of one event's data are joined with `\\n`; `event`, `id` and
    `retry` fields and comments are skipped, since the upstream APIs repeat the event type
    in the data. Lines end with `\\r\\n`, `\\n` or a bare `\\r`, as the SSE standard
    allows; an event not ended by a blank line when the stream ends is dropped.

    Each byte is looked at a bounded number of times, however the stream is cut into
    chunks, and a line longer than `max_line` bytes fails the stream (`UpstreamError`,
    PROTOCOL) as soon as that many bytes of it arrived.
    """

    __slots__ = ("_chunks", "_data", "_lines", "_max_line", "_skip_lf", "_tail", "_tail_size")

    def __init__(self, chunks: AsyncIterator[bytes], *, max_line: int = 4 * 2**20) -> None:
        self._chunks = chunks
        self._max_line = max_line
        self._lines = _NO_LINES  # complete lines of the last read not yet parsed
        self._tail: list[bytes] = []  # the pieces of the incomplete last line
        self._tail_size = 0
        self._skip_lf = False  # the last read ended in CR: a LF first in the next is its pair
        self._data: list[bytes] = []  # data lines of the event being read

    def __aiter__(self) -> SSEDecoder:
        return self

    def _too_long(self) -> UpstreamError:
        return UpstreamError(ErrorKind.PROTOCOL, f"an event-stream line is over {self._max_line} bytes")

    def _feed(self, chunk: bytes) -> None:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:  # no line ends here: keep the piece, without copying what came before
            self._tail_size += len(chunk)
            if self._tail_size > self._max_line:
                raise self._too_long()
            if chunk:
                self._tail.append(chunk)
            return
        complete = chunk[: end + 1]
        if self._tail:
            self._tail.append(complete)
            complete = b"".join(self._tail)
            self._tail.clear()
        rest = chunk[end + 1 :]
        self._tail_size = len(rest)
        if rest:
            if len(rest) > self._max_line:
                raise self._too_long()
            self._tail.append(rest)
        self._skip_lf = chunk[end] == _CR and not rest
        lines = complete.splitlines()  # bytes split on \r\n, \n and \r only
        if len(complete) > self._max_line and any(len(line) > self._max_line for line in lines):
            raise self._too_long()
        self._lines = iter(lines)

    async def __anext__(self) -> bytes:
        data = self._data
        while True:
            # Resumes where the previous call returned: one read often holds many events.
            for line in self._lines:
                if not line:
                    if data:
                        event = data[0] if len(data) == 1 else b"\n".join(data)
                        data.clear()
                        return event
                elif line.startswith(b"data: "):
                    data.append(line[6:])
                elif line.startswith(b"data:"):
                    data.append(line[5:])
                elif line == b"data":
                    data.append(b"")
            chunk = await anext(self._chunks, None)
            if chunk is None:
                raise StopAsyncIteration
            self._feed(chunk)
