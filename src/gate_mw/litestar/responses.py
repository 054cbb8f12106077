"""Answer a Litestar request with a `GateStream` in one line, as `gate_mw.responses` does
for Starlette and FastAPI, with the same event formats and the same guarantees:

    @post("/chat/stream")
    async def chat(data: JSONBody[ChatIn], gate: GateClient) -> Stream:
        return sse_response(gate.stream(data.messages))

The stream is opened before the response head is sent, so models fall back unseen and a
call that fails everywhere is answered with its HTTP error status (by the plugin's error
handler); a client disconnect closes the upstream request at once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from litestar.response import Stream
from litestar.response.streaming import ASGIStreamingResponse

from .._events import STREAM_HEADERS, openai_chunks, serve_stream, text_events
from .._streaming import GateStream

if TYPE_CHECKING:
    from litestar import Litestar, Request
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.datastructures import Cookie
    from litestar.enums import MediaType
    from litestar.response.base import ASGIResponse
    from litestar.types import Receive, Scope, Send, TypeEncodersMap

__all__ = ["GateStreamResponse", "sse_response", "text_event_stream"]

_EVENT_STREAM = "text/event-stream"


class GateStreamResponse(Stream):
    """A `Stream` of the bytes `body` makes from `stream`, which it opens before sending
    the head and closes on every exit, a client disconnect included."""

    __slots__ = ("stream",)

    def __init__(
        self, stream: GateStream, body: AsyncIterator[bytes], *, status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | BackgroundTasks | None = None,
    ) -> None:
        super().__init__(
            body, status_code=status_code, headers={**STREAM_HEADERS, **(headers or {})},
            media_type=_EVENT_STREAM, background=background,
        )
        self.stream = stream

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        # As Stream.to_asgi_response, but making the ASGI response that opens the stream.
        return _ASGIGateStreamingResponse(
            self.stream,
            iterator=self.iterator,
            background=self.background or background,
            content_length=0,
            cookies=self.cookies if cookies is None else itertools.chain(self.cookies, cookies),
            encoded_headers=encoded_headers,
            encoding=self.encoding,
            headers=self.headers if headers is None else {**headers, **self.headers},
            is_head_response=is_head_response,
            media_type=_EVENT_STREAM,
            status_code=self.status_code or status_code,
        )


class _ASGIGateStreamingResponse(ASGIStreamingResponse):
    __slots__ = ("stream",)

    def __init__(self, stream: GateStream, **options: Any) -> None:
        super().__init__(**options)
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Errors while opening happen before the head, inside Litestar's exception
        # handling: the plugin's handler answers them as for any gate error.
        await serve_stream(self.stream, receive, partial(self._respond, send))  # type: ignore[arg-type]
        await self.after_response()

    async def _respond(self, send: Send) -> None:
        await self.start_response(send)
        if not self.is_head_response:
            async for chunk in self.iterator:
                body = chunk if isinstance(chunk, bytes) else chunk.encode(self.encoding)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def sse_response(
    stream: GateStream, *, headers: Mapping[str, str] | None = None,
    background: BackgroundTask | BackgroundTasks | None = None,
) -> GateStreamResponse:
    """OpenAI-compatible streaming chunks, as `gate_mw.responses.sse_response`."""
    return GateStreamResponse(stream, openai_chunks(stream), headers=headers, background=background)


def text_event_stream(
    stream: GateStream, *, headers: Mapping[str, str] | None = None,
    background: BackgroundTask | BackgroundTasks | None = None,
) -> GateStreamResponse:
    """A `text/event-stream` of the text, as `gate_mw.responses.text_event_stream`."""
    return GateStreamResponse(stream, text_events(stream), headers=headers, background=background)
