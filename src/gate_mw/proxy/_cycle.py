"""uvicorn's httptools request cycle with a cheaper `send`: what `gate-mw serve` runs.

uvicorn's `send` checks every response header with two regular expressions and joins the
server's own headers (`date`, `server`) anew for every response: under callgrind that was
~13,000 instructions a request, more than the proxy's reading of the body and building
of the answer together. Here the checks are one search over the names and one over the
values (each expression matches a single character, so searching the joined bytes finds
what searching each one would), and the server's headers are joined once per second (as
often as uvicorn renews them). As the ASGI spec asks, the head waits for the first body
message: the transport holds it (`CoalescingTransport.hold`) and writes it with that body,
at once when the body completes the answer, or at close when the app fails first (so the
client receives what uvicorn would have sent). The rest is uvicorn's `send`, unchanged;
tests/proxy/test_cycle.py compares the bytes sent with uvicorn's.

Imported only where uvicorn and httptools are (the `proxy` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

    from ._uvicorn import CoalescingTransport

__all__ = ["Cycle"]

Headers = list[tuple[bytes, bytes]]

# Names whose value steers the response's framing: a server header with one of them
# goes through the per-response loop, as the app's headers do.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
# The server's headers last seen (uvicorn makes a new list each second) and their lines.
_server: list[object] = [None, b""]


def _check(headers: Headers) -> None:
    """uvicorn's header checks: the same errors, one search for all the names and one for
    all the values."""
    if headers:
        names, values = zip(*headers, strict=True)
        if HEADER_RE.search(b"".join(names)):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(b"".join(values)):
            raise RuntimeError("Invalid HTTP header value.")


def _server_lines(headers: Headers) -> bytes | None:
    """The lines of the server's own headers, joined once per list; None when one of them
    steers the framing (then they are handled with the app's)."""
    if headers is _server[0]:
        return _server[1]  # type: ignore[return-value]
    _check(headers)
    lines = [(name.lower(), value) for name, value in headers]
    if any(name in _FRAMING for name, _ in lines):
        return None
    joined = b"".join(b"%s: %s\r\n" % line for line in lines)
    _server[0], _server[1] = headers, joined
    return joined


def _unexpected(message: ASGISendEvent, text: str) -> RuntimeError:
    return RuntimeError(text.format(message["type"]))


class Cycle(RequestResponseCycle):
    """A request cycle whose response head is built by `_head` and sent with the first
    body message. `CoalescingHttpToolsProtocol` makes its cycles this class."""

    if TYPE_CHECKING:  # the protocol's transport (typing.cast would be a call a request)
        transport: CoalescingTransport  # type: ignore[assignment]

    def _head(self, status_code: int, headers: Headers) -> bytes:
        """uvicorn's response head (its status line, header lines and framing)."""
        server = _server_lines(self.default_headers)
        if server is None:
            server, headers = b"", self.default_headers + headers
        _check(headers)
        content = [STATUS_LINE[status_code], server]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            # Neither content-length nor transfer-encoding specified
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()  # pragma: no cover - a client that does not read
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise _unexpected(message, "Expected ASGI message 'http.response.start', but got '{}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            status_code = message["status"]
            if self.access_log:
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(self.scope),
                    self.scope["method"],
                    get_path_with_query_string(self.scope),
                    self.scope["http_version"],
                    status_code,
                )
            self.transport.hold(self._head(status_code, list(message.get("headers", ()))))
        elif not self.response_complete:
            if message["type"] != "http.response.body":
                raise _unexpected(message, "Expected ASGI message 'http.response.body', but got '{}'.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            data = b""
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
            elif self.chunked_encoding:
                if body:
                    data = b"%x\r\n%s\r\n" % (len(body), body)
                if not more_body:
                    data += b"0\r\n\r\n"
            else:
                if len(body) > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= len(body)
                data = body
            transport = self.transport
            # A complete answer goes out now (with its head); a stream's chunks are joined
            # per turn of the loop.
            (transport.write if more_body else transport.write_now)(data)
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
        else:
            raise _unexpected(message, "Unexpected ASGI message '{}' sent, after response already completed.")
