"""uvicorn's httptools protocol, sending each response's head and body in one write.

uvicorn writes a response's head as soon as the app sends `http.response.start`, and its
body at `http.response.body`: two `send` system calls for every JSON answer, each waking
the client. Profiled at 256 requests in flight, those writes were the serving process's
largest single cost after `gate.chat`. Here the writes a connection makes within one turn
of the event loop are joined and go out together at the end of it: a JSON answer (head
and body sent back to back) becomes one write; a stream's events still leave at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["HTTP_PROTOCOL", "CoalescingTransport"]


class CoalescingTransport:
    """`transport`, its writes within one turn of the loop joined into one; every other
    method is the transport's own. Closing writes what is pending first."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            pending.append(data)

    def flush(self) -> None:
        """Write what is pending now."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():  # a client gone meanwhile
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - the `proxy` extra installs uvicorn and httptools
    #: What `uvicorn.Config(http=...)` takes: uvicorn's own choice without httptools.
    HTTP_PROTOCOL: type[asyncio.Protocol] | str = "auto"
else:

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, its request cycles writing through a
        `CoalescingTransport` (module level: `--workers` pickles it by name)."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # Flow control and the addresses stay on the transport itself.
            self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]

    HTTP_PROTOCOL = CoalescingHttpToolsProtocol
