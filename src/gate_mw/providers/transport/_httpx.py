"""A user's own `httpx.AsyncClient` (proxies, mTLS, event hooks, respx in tests), first-class.

Also `default_http_client`: the client the gateway makes when given only an httpx
transport (an `httpx.ASGITransport`, a `MockTransport`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import httpx

from .._errors import aiohttp_errors
from ._base import Sender, read_capped

__all__ = ["HttpxTransport", "default_http_client"]

_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
_KEEPALIVE_SECONDS = 60.0


def default_http_client(
    max_connections: int, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A pooled httpx client sized for `max_connections` calls in flight, over `transport`
    (default: httpx's API over aiohttp's pool, from `httpx-aiohttp`)."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=_KEEPALIVE_SECONDS,
    )
    if transport is None:
        from httpx_aiohttp import AiohttpTransport  # loaded only on this path

        transport = AiohttpTransport(limits=limits)
    return httpx.AsyncClient(transport=transport, timeout=_TIMEOUT, follow_redirects=False)


class HttpxTransport(Sender[httpx.Response]):
    """Sends through `client`, which keeps its own settings (base headers, auth, hooks);
    the gateway closes it only if it made it (`owned`)."""

    def __init__(self, client: httpx.AsyncClient, *, owned: bool = False) -> None:
        self.client = client
        self._owned = owned
        # httpx's errors, and aiohttp's when loaded: a client over httpx-aiohttp's transport
        # lets some of them through unmapped (a reply that is not HTTP, broken chunking).
        self.errors: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError, *aiohttp_errors())

    @contextlib.asynccontextmanager
    async def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> AsyncIterator[httpx.Response]:
        client = self.client
        request = client.build_request("POST", url, content=body, headers=headers)
        response = await client.send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    def _head(self, response: httpx.Response) -> tuple[int, Mapping[str, str]]:
        return response.status_code, response.headers

    async def _read(self, response: httpx.Response, limit: int, *, cut: bool) -> bytes:
        declared = response.headers.get("content-length", "")
        return await read_capped(
            response.aiter_bytes(), limit, declared=int(declared) if declared.isdigit() else None, cut=cut
        )

    def _chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        return response.aiter_bytes()

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()
