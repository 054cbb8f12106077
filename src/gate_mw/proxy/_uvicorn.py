"""uvicorn's httptools protocol, sending each response's head and body in one write.

uvicorn writes a response's head as soon as the app sends `http.response.start`, and its
body at `http.response.body`: two `send` system calls for every JSON answer, each waking
the client. Profiled at 256 requests in flight, those writes were the serving process's
largest single cost after `gate.chat`. Here a response's head is held until its first
body message (`_cycle.Cycle`, which also builds the head for less), a complete answer goes
out in one write at once, and the writes of a stream within one turn of the event loop
are joined and go out together at the end of it.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from typing import Any

__all__ = ["HTTP_PROTOCOL", "SUPPORTED", "UVICORN_RELEASES", "CoalescingTransport"]


class CoalescingTransport:
    """`transport`, its writes within one turn of the loop joined into one; every other
    method is the transport's own. A response head held (`hold`) goes out with the next
    write; closing writes what is held or pending first."""

    __slots__ = ("_head", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._head: bytes | None = None

    def hold(self, head: bytes) -> None:
        """Keep `head` (a response's) to go out with the next write, or at close."""
        self._head = head

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        elif not data:
            return
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            pending.append(data)

    def write_now(self, data: bytes) -> None:
        """Write what is held or pending and `data` now: a response's last write, which
        nothing later in this turn of the loop would join."""
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        pending = self._pending
        if pending is not None:
            pending.append(data)
            self.flush()
        elif data and not self._transport.is_closing():
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is pending now."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():  # a client gone meanwhile
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.write_now(b"")
        self._transport.close()

    def is_closing(self) -> bool:
        # Asked after every response: here, not through `__getattr__`'s failed lookup.
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


#: The uvicorn releases `CoalescingHttpToolsProtocol` works with, as (major, minor) from and
#: below: it takes over parts of uvicorn's protocol, and tests/proxy/test_cycle.py (the bytes
#: sent, against uvicorn's own) passes on 0.45, 0.50, 0.53 and 0.54 and fails on 0.44. Under
#: any other release `gate-mw serve` runs uvicorn's own httptools protocol: the same answers,
#: one write more each.
UVICORN_RELEASES = ((0, 45), (0, 55))


def _release(version: str) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", version)
    return None if found is None else (int(found[1]), int(found[2]))


try:
    import httptools
    import uvicorn
    from uvicorn.protocols.http.flow_control import service_unavailable
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from ._cycle import Cycle
except ImportError:  # pragma: no cover - the `proxy` extra installs uvicorn and httptools
    #: What `uvicorn.Config(http=...)` takes: uvicorn's own choice without httptools.
    HTTP_PROTOCOL: type[asyncio.Protocol] | str = "auto"
    SUPPORTED = False
else:

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, its request cycles `Cycle`s writing through a
        `CoalescingTransport` (module level: `--workers` pickles it by name)."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # Flow control and the addresses stay on the transport itself.
            self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]

        # The keep-alive timer. uvicorn cancels it as every request arrives and arms a new
        # one after every response: ~5,800 instructions a request (callgrind). Here the
        # timer stays armed while the connection works, and when it fires, closes the
        # connection if idle for the timeout, or waits for the rest of it.

        #: When the connection fell idle (loop time); None while it has a request.
        _idle_since: float | None = None

        def _unset_keepalive_if_required(self) -> None:
            self._idle_since = None
            if self.transport.is_closing():  # the connection is lost: the timer goes too
                super()._unset_keepalive_if_required()

        def on_response_complete(self) -> None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            loop = self.loop
            self._idle_since = now = loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = loop.call_at(
                    now + self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

        def timeout_keep_alive_handler(self) -> None:
            self.timeout_keep_alive_task = None
            idle_since = self._idle_since
            if idle_since is None or self.transport.is_closing():
                return  # working: its next response arms the timer again
            left = idle_since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self.timeout_keep_alive_task = self.loop.call_later(left, self.timeout_keep_alive_handler)
            else:
                self.transport.close()

        def on_headers_complete(self) -> None:
            # uvicorn's, making a `Cycle` (a cycle made by uvicorn and then given that class
            # would lose CPython's fast attribute access: its values move to a dict).
            parser = self.parser
            http_version = parser.get_http_version()
            scope = self.scope
            scope["method"] = parser.get_method().decode("ascii")
            if http_version != "1.1":
                scope["http_version"] = http_version
            if parser.should_upgrade() and self._should_upgrade():
                return
            parsed_url = httptools.parse_url(self.url)
            raw_path = parsed_url.path
            path = raw_path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
            scope["path"] = self.root_path + path
            scope["raw_path"] = self.root_path.encode("ascii") + raw_path
            scope["query_string"] = parsed_url.query or b""
            limit = self.limit_concurrency
            app = self.app
            if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
                app = service_unavailable
                self.logger.warning("Exceeded concurrency limit.")
            existing_cycle = self.cycle
            self.cycle = Cycle(
                scope=scope,
                transport=self.transport,
                flow=self.flow,
                logger=self.logger,
                access_logger=self.access_logger,
                access_log=self.access_log,
                default_headers=self.server_state.default_headers,
                message_event=asyncio.Event(),
                expect_100_continue=self.expect_100_continue,
                keep_alive=http_version != "1.0" and parser.should_keep_alive(),
                on_response=self.on_response_complete,
            )
            if existing_cycle is None or existing_cycle.response_complete:
                self._start_asgi_task(self.cycle, app)
            else:  # pipelined: queued until the response before it is complete
                self.flow.pause_reading()
                self.pipeline.appendleft((self.cycle, app))

    release = _release(uvicorn.__version__)
    #: Whether this uvicorn is one `CoalescingHttpToolsProtocol` works with.
    SUPPORTED = release is not None and UVICORN_RELEASES[0] <= release < UVICORN_RELEASES[1]
    HTTP_PROTOCOL = CoalescingHttpToolsProtocol if SUPPORTED else "httptools"
