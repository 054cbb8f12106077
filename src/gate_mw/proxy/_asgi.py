"""The proxy's answers and its endpoints as ASGI apps: what every framework mounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from .._context import RoutingContext
from .._events import STREAM_HEADERS, serve_stream
from .._json import dumps
from .._streaming import GateStream
from ..errors import GateError
from ._errors import Api, ProxyError, from_gate_error

if TYPE_CHECKING:
    from ._core import Proxy

__all__ = ["Endpoint", "Handler", "Reply", "Streamed"]

Handler = Callable[[Scope, Receive, RoutingContext], Awaitable["Reply"]]
_JSON = (b"content-type", b"application/json")
_STREAM_HEADERS = [(name.encode(), value.encode()) for name, value in STREAM_HEADERS.items()]


class Reply:
    """A JSON answer; `Streamed` is the streamed one."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or []

    async def send(self, receive: Receive, send: Send) -> None:
        payload = dumps(self.body)
        headers = [_JSON, (b"content-length", str(len(payload)).encode()), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


class Streamed(Reply):
    """An event stream, opened already: a failure before its first token was answered as
    an error, so this sends the head, the events, and closes the stream on every exit."""

    __slots__ = ("events", "stream")

    def __init__(
        self, stream: GateStream, events: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]]
    ) -> None:
        super().__init__(200, None, headers)
        self.stream, self.events = stream, events

    async def send(self, receive: Receive, send: Send) -> None:
        async def respond() -> None:
            head = [(b"content-type", b"text/event-stream"), *_STREAM_HEADERS, *self.headers]
            await send({"type": "http.response.start", "status": 200, "headers": head})
            async for chunk in self.events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        await serve_stream(self.stream, receive, respond)


class Endpoint:
    """One proxy endpoint as an ASGI app: Starlette, FastAPI and Litestar mount it as is."""

    __slots__ = ("api", "handler", "methods", "proxy")

    def __init__(self, proxy: Proxy, api: Api, methods: frozenset[str], handler: Handler) -> None:
        self.proxy, self.api, self.methods, self.handler = proxy, api, methods, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = self.proxy.context(scope)
        try:
            if scope["method"] not in self.methods:
                allowed = ", ".join(sorted(self.methods))
                raise ProxyError(405, f"{scope['method']} is not allowed here (use {allowed})")
            reply = await self.handler(scope, receive, context)
        except ProxyError as exc:
            reply = self.proxy.error(self.api, exc, context)
        except GateError as exc:
            reply = self.proxy.error(self.api, from_gate_error(exc), context)
        await reply.send(receive, send)
