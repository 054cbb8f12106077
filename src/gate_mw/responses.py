"""Answer an HTTP request with a `GateStream` in one line (Starlette and FastAPI):

    return sse_response(gate.stream(messages))       # OpenAI-compatible chunks
    return text_event_stream(gate.stream(messages))  # text/event-stream of plain text

The stream is opened before the response head is sent, so models fall back unseen and a
call that fails everywhere is answered with its HTTP error status (by `GatewayMiddleware`).
When the client disconnects, the upstream request is closed at once and the spans record
`error.type=client_disconnect`. The event formats are in docs/streaming.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from functools import partial

from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ._events import STREAM_HEADERS, openai_chunks, serve_stream, text_events
from ._streaming import GateStream

__all__ = ["GateStreamingResponse", "sse_response", "text_event_stream"]


class GateStreamingResponse(StreamingResponse):
    """A `StreamingResponse` of the bytes `body` makes from `stream`, which it opens before
    sending the head and closes on every exit, a client disconnect included."""

    def __init__(
        self, stream: GateStream, body: AsyncIterator[bytes], *, status_code: int = 200,
        headers: Mapping[str, str] | None = None, background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            body, status_code=status_code, headers={**STREAM_HEADERS, **(headers or {})},
            media_type="text/event-stream", background=background,
        )
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve_stream(self.stream, receive, partial(self.stream_response, send))
        if self.background is not None:
            await self.background()


def sse_response(
    stream: GateStream, *, headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> GateStreamingResponse:
    """OpenAI-compatible streaming chunks (`data: {...}`), a final usage chunk, then
    `data: [DONE]`; after a failure past the first token, `data: {"error": {...}}` instead
    of the usage and `[DONE]`."""
    return GateStreamingResponse(stream, openai_chunks(stream), headers=headers, background=background)


def text_event_stream(
    stream: GateStream, *, headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> GateStreamingResponse:
    """A `text/event-stream` of the text (one `data:` event per delta) for `EventSource`,
    ended by `event: done` with usage and cost, or by `event: error`."""
    return GateStreamingResponse(stream, text_events(stream), headers=headers, background=background)
