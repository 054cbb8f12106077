"""Server-sent events: the `data` of each event of a byte stream, parsed without regexes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

__all__ = ["SSEDecoder"]

_NO_LINES: Iterator[bytes] = iter(())


class SSEDecoder:
    """Async iterator over the `data` of each event in `chunks`, as bytes (ready for
    `json.loads`). Lines of one event's data are joined with `\\n`; `event`, `id` and
    `retry` fields and comments are skipped, since the upstream APIs repeat the event type
    in the data. Lines end with `\\n` or `\\r\\n`; an event not ended by a blank line
    when the stream ends is dropped, as the SSE standard says.
    """

    __slots__ = ("_chunks", "_data", "_lines", "_tail")

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._lines = _NO_LINES  # complete lines of the last read not yet parsed
        self._tail = b""  # the incomplete last line of the last read
        self._data: list[bytes] = []  # data lines of the event being read

    def __aiter__(self) -> SSEDecoder:
        return self

    async def __anext__(self) -> bytes:
        data = self._data
        while True:
            # Resumes where the previous call returned: one read often holds many events.
            for line in self._lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
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
            lines = (self._tail + chunk).split(b"\n") if self._tail else chunk.split(b"\n")
            self._tail = lines.pop()
            self._lines = iter(lines)
