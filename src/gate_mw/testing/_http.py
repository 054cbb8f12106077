"""A minimal HTTP/1.1 server on asyncio protocols: keep-alive, pipelining, chunked responses.

Just enough HTTP for a fake upstream. Each request runs as its own task; when the client hangs
up mid-response the task is cancelled at once, so handler waits never outlive the client and the
handler can tell a client disconnect (``client_disconnected``) from its own ``close()``.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["HTTPConnection", "HTTPRequest", "HTTPServer", "Handler"]

logger = logging.getLogger("gate_mw.testing")

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_STATUS_LINES: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n"
    return line


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One parsed request; header names are lower-case, repeated headers joined by ``, ``."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


Handler = Callable[[HTTPRequest, "HTTPConnection"], Awaitable[None]]


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Head:
    method: str
    target: str
    headers: dict[str, str]
    keep_alive: bool
    body_start: int


def _parse_head(buffer: bytearray, end: int) -> _Head:
    lines = buffer[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        # Whitespace before the colon is a smuggling vector, so RFC 9112 makes it an error.
        if not sep or not name or name[-1] in " \t":
            raise _BadRequest(400, "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return _Head(method, target, headers, keep_alive, end + 4)


def _parse_chunked(buffer: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``: (body, end), or None while incomplete."""
    parts: list[bytes] = []
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buffer[pos:eol]).split(b";", 1)[0], 16)
        except ValueError:
            raise _BadRequest(400, "malformed chunk size") from None
        pos = eol + 2
        if size == 0:
            # Trailers are read and ignored up to the blank line ending the body.
            while True:
                eol = buffer.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        if len(buffer) < pos + size + 2:
            return None
        if buffer[pos + size : pos + size + 2] != b"\r\n":
            raise _BadRequest(400, "malformed chunk")
        parts.append(bytes(buffer[pos : pos + size]))
        pos += size + 2
        if pos > _MAX_BODY:
            raise _BadRequest(413, "request body too large")


class HTTPConnection(asyncio.Protocol):
    """One client connection; also the response writer handed to the handler."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._task: asyncio.Task[None] | None = None
        self._request: HTTPRequest | None = None
        self._started = False
        self._finished = False
        self._closing = False
        self._lost = False
        self._shutting_down = False
        self._sent_continue = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._gone = server.loop.create_future()
        # Known from the moment the loop accepts the socket, before connection_made runs,
        # so a stop in between still closes this connection's transport.
        server.connections.add(self)
        self.client_disconnected = False
        """True once the client closed the connection while a response was in progress."""
        self.on_finish: Callable[[], None] | None = None
        """Called once, just before the last bytes of the current response are written (or the
        connection is closed by us), so observers never see a response end after the client."""

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, as the server makes (uvloop's is not a subclass of asyncio's).
        self._transport = typing.cast("asyncio.Transport", transport)
        if self._shutting_down:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is None:
            self._next_request()

    def eof_received(self) -> bool | None:
        # A half-closed client cannot take a reply as far as we care: treat EOF as a hang-up.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._server.connections.discard(self)
        if not self._gone.done():
            self._gone.set_result(None)
        self._wake_drain()
        task = self._task
        if task is not None and not task.done():
            if not (self._closing or self._shutting_down):
                self.client_disconnected = True
            task.cancel()

    def pause_writing(self) -> None:
        if self._drain_waiter is None:
            self._drain_waiter = self._server.loop.create_future()

    def resume_writing(self) -> None:
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- request parsing ------------------------------------------------------------------

    def _next_request(self) -> None:
        try:
            request = self._parse()
        except _BadRequest as exc:
            self._reject(exc.status, str(exc))
            return
        if request is not None:
            self._request = request
            self._started = self._finished = False
            self.on_finish = None
            self._task = self._server.loop.create_task(self._run(request))

    def _parse(self) -> HTTPRequest | None:
        buffer = self._buffer
        head = self._head
        if head is None:
            # Clients may send stray CRLFs between requests (RFC 9112 section 2.2).
            while buffer[:2] == b"\r\n":
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise _BadRequest(431, "request head too large")
                return None
            head = self._head = _parse_head(buffer, end)
            self._sent_continue = False
        start = head.body_start
        if "transfer-encoding" in head.headers:
            if head.headers["transfer-encoding"].lower() != "chunked":
                raise _BadRequest(501, "unsupported transfer-encoding")
            parsed = _parse_chunked(buffer, start)
            if parsed is None:
                self._maybe_continue(head)
                return None
            body, end = parsed
        else:
            raw_length = head.headers.get("content-length", "0")
            if not raw_length.isdigit():
                raise _BadRequest(400, "malformed content-length")
            length = int(raw_length)
            if length > _MAX_BODY:
                raise _BadRequest(413, "request body too large")
            end = start + length
            if len(buffer) < end:
                self._maybe_continue(head)
                return None
            body = bytes(buffer[start:end])
        del buffer[:end]
        self._head = None
        return HTTPRequest(head.method, head.target, head.headers, body, head.keep_alive)

    def _maybe_continue(self, head: _Head) -> None:
        if not self._sent_continue and head.headers.get("expect", "").lower() == "100-continue":
            self._sent_continue = True
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _reject(self, status: int, reason: str) -> None:
        body = f"{reason}\n".encode()
        self._write(
            f"{_status_line(status)}content-type: text/plain\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode("latin-1")
            + body
        )
        self.close()

    async def _run(self, request: HTTPRequest) -> None:
        try:
            await self._server.handler(request, self)
        except Exception:
            logger.exception("fake upstream handler failed for %s %s", request.method, request.target)
            if not self._started:
                self._reject(500, "internal error in the fake upstream")
        if not self._finished and not self._closing:
            # A handler that returns mid-response leaves the framing broken: only closing is safe.
            self.close()
        self._task = None
        if self._closing or self._lost:
            return
        if not request.keep_alive:
            self.close()
        elif self._buffer:
            self._next_request()

    # -- response writing -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is closing or gone; writes are then dropped."""
        return self._closing or self._lost

    def _finishing(self) -> None:
        hook, self.on_finish = self.on_finish, None
        if hook is not None:
            hook()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def _head_bytes(self, status: int, headers: Iterable[tuple[str, str]], framing: str) -> bytes:
        assert self._request is not None
        lines = [_status_line(status)]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        lines.append(framing)
        if not self._request.keep_alive:
            lines.append("connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """Send a whole response with ``Content-Length`` in one write."""
        assert self._request is not None
        assert not self._started
        self._started = self._finished = True
        head = self._head_bytes(status, headers, f"content-length: {len(body)}\r\n")
        self._finishing()
        self._write(head if self._request.method == "HEAD" else head + body)

    def start_chunked(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """Send the head of a ``Transfer-Encoding: chunked`` response."""
        assert self._request is not None
        assert not self._started
        self._started = True
        self._write(self._head_bytes(status, headers, "transfer-encoding: chunked\r\n"))

    def send_chunk(self, data: bytes) -> None:
        """Send one chunk of a chunked body; empty data is skipped (it would end the body)."""
        if data:
            self._write(b"%x\r\n%b\r\n" % (len(data), data))

    def end_chunked(self, data: bytes = b"") -> None:
        """Send the last chunk (if any) and the terminating zero-length chunk."""
        self._finished = True
        self._finishing()
        self._write((b"%x\r\n%b\r\n" % (len(data), data) if data else b"") + b"0\r\n\r\n")

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as it is in place of a response, then close the connection."""
        assert not self._started
        self._started = True
        self._write(data)
        self.close()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        waiter = self._drain_waiter
        if waiter is not None:
            await waiter

    def close(self) -> None:
        """Close after flushing what was written; a mid-body close truncates the response."""
        self._closing = True
        self._finishing()
        if self._transport is not None:
            self._transport.close()

    def _shutdown(self) -> asyncio.Task[None] | None:
        self._shutting_down = True
        if self._transport is not None:
            self._transport.abort()
        task = self._task
        if task is not None:
            task.cancel()
        return task


class HTTPServer:
    """Listens on a TCP port and runs ``handler`` for each request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.connections: set[HTTPConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        # A deep backlog: benchmarks open hundreds of connections at once, and a dropped SYN
        # costs the client a full second before it retries.
        self._server = await self.loop.create_server(lambda: HTTPConnection(self), host, port, backlog=4096)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening, abort every connection and wait until each one is gone."""
        if self._server is not None:
            self._server.close()
        # Sockets the loop accepted just before the listener closed get their connection in
        # tasks already queued ahead of this one: a turn lets them exist, to be aborted too.
        # (Python 3.11's Server.wait_closed does not wait for connections.)
        await asyncio.sleep(0)
        connections = list(self.connections)
        tasks = [t for t in (c._shutdown() for c in connections) if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # connection_lost runs once each aborted transport has closed its socket; bounded, so
        # a connection whose transport never came to be cannot hang a test's teardown.
        if connections:
            await asyncio.wait([asyncio.ensure_future(c._gone) for c in connections], timeout=5.0)
