"""The shared part of providers that speak JSON over HTTP through one pooled transport."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..config import UpstreamLimits
from ..errors import ErrorKind, UpstreamError
from ..telemetry._propagation import outgoing
from ._base import Provider, billed_cost
from ._errors import error_from_exception, error_from_response
from ._sse import SSEDecoder
from .transport import Transport

__all__ = ["HTTPProvider"]

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


class HTTPProvider(Provider):
    """POSTs JSON to `{base_url}{path}{query}`; maps every failure to an `UpstreamError`.

    `body` holds fields every request of this deployment carries unless the request sets
    them (OpenRouter's `usage: {include: true}`); `omit` names fields the upstream refuses,
    left out of every request (Mistral answers 422 to `stream_options`); `query` is a query
    string such as Azure's `?api-version=...`. `client` gives the gateway's transport;
    `limits` bound what is read of each reply.
    """

    def __init__(
        self, *, system: str, base_url: str, headers: Mapping[str, str],
        secrets: tuple[str, ...], client: Callable[[], Transport],
        query: str = "", body: Mapping[str, Any] | None = None, omit: frozenset[str] = frozenset(),
        limits: UpstreamLimits | None = None,
    ) -> None:
        self.system = system
        self._base_url = base_url.rstrip("/")
        self._query = query
        self._body = dict(body or {})
        self._omit = omit
        self._headers = {**headers, **_JSON}  # built once: every request sends these
        self._secrets = secrets
        self._client = client
        limits = limits or UpstreamLimits()
        self._max_body = limits.max_body_bytes
        self._max_error_body = limits.max_error_body_bytes
        self._max_sse_line = limits.max_sse_line_bytes
        parts = urlsplit(self._base_url)
        self.server_address = parts.hostname
        self.server_port = parts.port or (443 if parts.scheme == "https" else 80)

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"<{type(self).__name__} {self._base_url}>"

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
        transport = self._client()
        try:
            reply = await transport.post(
                url, outgoing(self._headers), content, limit=self._max_body, error_limit=self._max_error_body
            )
        except transport.errors as exc:
            raise error_from_exception(exc, self._secrets) from None
        if reply.status_code >= 400:
            raise error_from_response(reply, self._secrets)
        try:
            body = json.loads(reply.content)
        except ValueError as exc:
            raise error_from_exception(exc) from None
        return body, billed_cost(reply.headers.get("x-litellm-response-cost"), free=False)

    @contextlib.asynccontextmanager
    async def _events(self, path: str, payload: Mapping[str, Any]) -> AsyncIterator[SSEDecoder]:
        """POST for a streamed reply and read its server-sent events.

        The response is closed on every exit, so leaving early (an error, a timeout, the
        client gone) closes the upstream connection rather than paying for unread tokens.
        """
        url, content = self._request(path, payload)
        transport = self._client()
        try:
            headers = outgoing(self._headers)
            stream = transport.stream(url, headers, content, error_limit=self._max_error_body)
            async with stream as reply:
                if reply.status_code >= 400:
                    raise error_from_response(reply, self._secrets)
                yield SSEDecoder(reply.chunks, max_line=self._max_sse_line)
        except transport.errors as exc:
            raise error_from_exception(exc, self._secrets) from None
