"""The shared part of providers that speak JSON over HTTP through one pooled client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError

from ..config import UpstreamLimits
from ..errors import ErrorKind, UpstreamError
from ..telemetry._propagation import outgoing
from ._base import Provider, billed_cost
from ._errors import error_from_exception, error_from_response
from ._sse import SSEDecoder

__all__ = ["HTTPProvider", "read_capped"]

_DEFAULT_LIMITS = UpstreamLimits()
# What a broken connection or reply raises, below httpx's own errors included: the aiohttp
# pool's (a reply that is not HTTP, broken chunked framing) are not all mapped by httpx.
_TRANSPORT_ERRORS = (httpx.HTTPError, aiohttp.ClientError, HttpProcessingError, OSError)
_JSON = {"content-type": "application/json"}
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _encoded(payload: Mapping[str, Any]) -> bytes:
    """`payload` as JSON bytes. The gate checked the request already; a payload that still
    cannot be encoded (NaN, a lone surrogate, an object) is the caller's fault, never the
    model's: a BAD_REQUEST, which no breaker counts."""
    try:
        return _encode(payload).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        raise UpstreamError(
            ErrorKind.BAD_REQUEST, f"the request cannot be encoded as JSON ({type(exc).__name__})",
            status=400,
        ) from None


async def read_capped(response: httpx.Response, limit: int, *, cut: bool = False) -> bytes:
    """The decoded body of a streamed `response`, at most `limit` bytes: longer fails as a
    protocol error or, with `cut`, is cut at `limit` (the rest is never read)."""
    declared = response.headers.get("content-length", "")
    if not cut and declared.isdigit() and int(declared) > limit:
        raise UpstreamError(ErrorKind.PROTOCOL, f"reply body over the {limit}-byte limit")
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if not cut:
                raise UpstreamError(ErrorKind.PROTOCOL, f"reply body over the {limit}-byte limit")
            parts.append(chunk[: len(chunk) - (size - limit)])
            break
        parts.append(chunk)
    return b"".join(parts)


class HTTPProvider(Provider):
    """POSTs JSON to `{base_url}{path}{query}`; maps every failure to an `UpstreamError`.

    `body` holds fields every request of this deployment carries unless the request sets
    them (OpenRouter's `usage: {include: true}`); `omit` names fields the upstream refuses,
    left out of every request (Mistral answers 422 to `stream_options`); `query` is a query
    string such as Azure's `?api-version=...`.
    """

    def __init__(
        self, *, system: str, base_url: str, headers: Mapping[str, str],
        secrets: tuple[str, ...], client: Callable[[], httpx.AsyncClient],
        query: str = "", body: Mapping[str, Any] | None = None, omit: frozenset[str] = frozenset(),
        limits: UpstreamLimits | None = None,
    ) -> None:
        self.system = system
        self._base_url = base_url.rstrip("/")
        self._query = query
        self._body = dict(body or {})
        self._omit = omit
        self._headers = {**headers, **_JSON}
        self._secrets = secrets
        self._client = client
        self._limits = limits or _DEFAULT_LIMITS
        parts = urlsplit(self._base_url)
        self.server_address = parts.hostname
        self.server_port = parts.port or (443 if parts.scheme == "https" else 80)

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"<{type(self).__name__} {self._base_url}>"

    async def _failure(self, response: httpx.Response) -> UpstreamError:
        """The error a non-2xx `response` reports, from at most the error-body limit."""
        body = await read_capped(response, self._limits.max_error_body_bytes, cut=True)
        return error_from_response(response, self._secrets, body=body)

    def _request(self, path: str, payload: Mapping[str, Any]) -> tuple[str, bytes]:
        if self._body:
            payload = {**self._body, **payload}
        if self._omit:
            payload = {key: value for key, value in payload.items() if key not in self._omit}
        return self._base_url + path + self._query, _encoded(payload)

    async def _post(self, path: str, payload: Mapping[str, Any]) -> Any:
        return (await self._post_billed(path, payload))[0]

    async def _post_billed(self, path: str, payload: Mapping[str, Any]) -> tuple[Any, float | None]:
        """The reply's JSON, and the cost a LiteLLM proxy reported in its header."""
        url, content = self._request(path, payload)
        client = self._client()
        try:
            request = client.build_request("POST", url, content=content, headers=outgoing(self._headers))
            response = await client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    raise await self._failure(response)
                body = await read_capped(response, self._limits.max_body_bytes)
            finally:
                await response.aclose()
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc, self._secrets) from None
        try:
            reply = json.loads(body)
        except ValueError as exc:
            raise error_from_exception(exc) from None
        return reply, billed_cost(response.headers.get("x-litellm-response-cost"), free=False)

    @contextlib.asynccontextmanager
    async def _events(self, path: str, payload: Mapping[str, Any]) -> AsyncIterator[SSEDecoder]:
        """POST for a streamed reply and read its server-sent events.

        The response is closed on every exit, so leaving early (an error, a timeout, the
        client gone) closes the upstream connection rather than paying for unread tokens.
        """
        url, content = self._request(path, payload)
        client = self._client()
        request = client.build_request("POST", url, content=content, headers=outgoing(self._headers))
        try:
            response = await client.send(request, stream=True)
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc, self._secrets) from None
        try:
            if response.status_code >= 400:
                raise await self._failure(response)
            yield SSEDecoder(response.aiter_bytes(), max_line=self._limits.max_sse_line_bytes)
        except _TRANSPORT_ERRORS as exc:
            raise error_from_exception(exc, self._secrets) from None
        finally:
            await response.aclose()
