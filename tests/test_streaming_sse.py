"""The SSE decoder: event data from bytes however the network splits them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from gate_mw.providers._sse import SSEDecoder

pytestmark = pytest.mark.anyio


async def _chunks(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _decode(*parts: bytes) -> list[bytes]:
    return [data async for data in SSEDecoder(_chunks(parts))]


STREAM = (
    b": a comment\n"
    b"event: message_start\n"
    b'data: {"a":1}\n'
    b"\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"data:no space\n"
    b"\n"
    b"data: first line\n"
    b"data:  second, with its own leading space\n"
    b"\n"
    b"data\n"
    b"\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    b'{"a":1}',
    b"no space",
    b"first line\n second, with its own leading space",
    b"",
    b"[DONE]",
]


async def test_fields_comments_and_multiline_data() -> None:
    assert await _decode(STREAM) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
async def test_any_split_of_the_bytes_decodes_the_same(size: int) -> None:
    parts = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert await _decode(*parts) == EXPECTED


async def test_crlf_line_endings() -> None:
    stream = STREAM.replace(b"\n", b"\r\n")
    # Split between CR and LF, the worst place for a line parser.
    cut = stream.index(b"\r\n") + 1
    assert await _decode(stream[:cut], stream[cut:]) == EXPECTED


async def test_an_event_cut_off_by_the_end_of_the_stream_is_dropped() -> None:
    assert await _decode(b"data: whole\n\ndata: cut") == [b"whole"]
    assert await _decode(b"data: whole\n\ndata: no blank line\n") == [b"whole"]


async def test_empty_stream() -> None:
    assert await _decode() == []
    assert await _decode(b"", b"") == []
