"""The gateway's own pool: aiohttp, spoken directly.

httpx's own pool collapses with hundreds of requests in flight (measured: 256 in flight
against a 200 ms upstream gave ~61 calls/s, p99 16 s), and httpx's API over aiohttp's pool
costs about one more raw call in CPU. So when the gateway owns the pool it uses aiohttp with
nothing in between: the body is already bytes, the URL parsed once per deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._base import Reply, Sender, read_capped

__all__ = ["AiohttpTransport"]

# Connect fast or fail over; reads are bounded by each attempt's own timeout.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
_KEEPALIVE_SECONDS = 60.0
_MAX_URLS = 256  # parsed URLs kept: one per deployment and path, so a handful
_MAX_HEADERS = 64  # header sets kept: one per deployment, made once (see `_headers`)


class AiohttpTransport(Sender[aiohttp.ClientResponse]):
    """A pooled aiohttp session for `max_connections` calls in flight, made on first use
    (it needs the running loop). No cookies are kept: replies from one caller's upstream
    must never reach another's request."""

    errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, HttpProcessingError, OSError)

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        # id -> (the mapping given, kept so that its id stays its own; aiohttp's form of it)
        self._prepared: dict[int, tuple[Mapping[str, str], CIMultiDictProxy[str]]] = {}

    def _client(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=_KEEPALIVE_SECONDS
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector, timeout=_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True, raise_for_status=False,
            )
        return session

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    def _headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """`headers` as aiohttp takes them without copying them into a new `CIMultiDict`
        first. A provider passes its own read-only headers, made once, on every call
        without a trace context to propagate: converted once, found by identity. Any
        other mapping (one made per call, with a `traceparent`) goes as it is."""
        if type(headers) is not MappingProxyType:
            return headers
        prepared = self._prepared.get(id(headers))
        if prepared is not None and prepared[0] is headers:
            return prepared[1]
        if len(self._prepared) >= _MAX_HEADERS:
            self._prepared.clear()
        proxy = CIMultiDictProxy(CIMultiDict(headers))
        self._prepared[id(headers)] = (headers, proxy)
        return proxy

    def _send(self, url: str, headers: Mapping[str, str], body: bytes) -> Any:
        return self._client().post(
            self._url(url), data=body, headers=self._headers(headers), allow_redirects=False
        )

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, *, limit: int, error_limit: int
    ) -> Reply:
        # `Sender.post` with its steps inlined: the one coroutine a call awaits in here. So
        # are the lookups of `_client`, `_url` and `_headers` that find what is made already:
        # three calls fewer (~1.5k instructions, estimated).
        session = self._session
        if session is None or session.closed:
            session = self._client()
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._url(url)
        prepared = self._prepared.get(id(headers))
        sent = prepared[1] if prepared is not None and prepared[0] is headers else self._headers(headers)
        async with session.post(parsed, data=body, headers=sent, allow_redirects=False) as response:
            status, head = response.status, response.headers
            failed = status >= 400
            declared = response.content_length
            if not failed and declared is not None and declared <= limit and "Content-Encoding" not in head:
                content = await response.read()  # as `_read`: one read of the declared length
            else:
                content = await self._read(response, error_limit if failed else limit, cut=failed)
            return Reply(status, head, content)

    def _head(self, response: aiohttp.ClientResponse) -> tuple[int, Mapping[str, str]]:
        return response.status, response.headers

    async def _read(self, response: aiohttp.ClientResponse, limit: int, *, cut: bool) -> bytes:
        # With a Content-Length and no encoding, aiohttp reads exactly that many bytes: one
        # read. A compressed or chunked body is counted as it is decoded instead.
        declared = response.content_length
        if declared is not None and declared <= limit and "Content-Encoding" not in response.headers:
            return await response.read()
        return await read_capped(response.content.iter_any(), limit, declared=declared, cut=cut)

    def _chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        return response.content.iter_any()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
