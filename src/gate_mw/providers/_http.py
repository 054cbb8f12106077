"""The shared part of providers that speak JSON over HTTP through one pooled client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._base import Provider, billed_cost
from ._errors import error_from_exception, error_from_response
from ._sse import SSEDecoder

__all__ = ["HTTPProvider"]


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
    ) -> None:
        self.system = system
        self._base_url = base_url.rstrip("/")
        self._query = query
        self._body = dict(body or {})
        self._omit = omit
        self._headers = dict(headers)
        self._secrets = secrets
        self._client = client
        parts = urlsplit(self._base_url)
        self.server_address = parts.hostname
        self.server_port = parts.port or (443 if parts.scheme == "https" else 80)

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"<{type(self).__name__} {self._base_url}>"

    def _request(self, path: str, payload: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        if self._body:
            payload = {**self._body, **payload}
        if self._omit:
            payload = {key: value for key, value in payload.items() if key not in self._omit}
        return self._base_url + path + self._query, payload

    async def _post(self, path: str, payload: Mapping[str, Any]) -> Any:
        return (await self._post_billed(path, payload))[0]

    async def _post_billed(self, path: str, payload: Mapping[str, Any]) -> tuple[Any, float | None]:
        """The reply's JSON, and the cost a LiteLLM proxy reported in its header."""
        url, payload = self._request(path, payload)
        try:
            response = await self._client().post(url, json=payload, headers=self._headers)
        except (httpx.HTTPError, OSError) as exc:
            raise error_from_exception(exc, self._secrets) from None
        if response.status_code >= 400:
            raise error_from_response(response, self._secrets)
        try:
            body = response.json()
        except ValueError as exc:
            raise error_from_exception(exc) from None
        return body, billed_cost(response.headers.get("x-litellm-response-cost"), free=False)

    @contextlib.asynccontextmanager
    async def _events(self, path: str, payload: Mapping[str, Any]) -> AsyncIterator[SSEDecoder]:
        """POST for a streamed reply and read its server-sent events.

        The response is closed on every exit, so leaving early (an error, a timeout, the
        client gone) closes the upstream connection rather than paying for unread tokens.
        """
        client = self._client()
        url, payload = self._request(path, payload)
        request = client.build_request("POST", url, json=payload, headers=self._headers)
        try:
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, OSError) as exc:
            raise error_from_exception(exc, self._secrets) from None
        try:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response, self._secrets)
            yield SSEDecoder(response.aiter_bytes())
        except (httpx.HTTPError, OSError) as exc:
            raise error_from_exception(exc, self._secrets) from None
        finally:
            await response.aclose()
