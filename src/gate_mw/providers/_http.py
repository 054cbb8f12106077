"""The shared part of providers that speak JSON over HTTP through one pooled transport."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .._json import dumps_plain, is_plain, loads
from ..config import UpstreamLimits
from ..errors import ErrorKind, UpstreamError
from ..telemetry._propagation import outgoing
from ._base import Provider
from ._errors import error_from_exception, error_from_response
from ._sse import SSEDecoder
from .transport import Reply, Transport

__all__ = ["HTTPProvider"]

_JSON = {"content-type": "application/json"}
# No circular check (a dict of ids per call): the gate hands over checked copies, which
# hold no cycles and nest at most `chat._validate.MAX_DEPTH` deep.
_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
).encode


def _encoded(payload: Mapping[str, Any], plain: bool = False) -> bytes:
    """`payload` as JSON bytes; by orjson when it is `plain` data (`_json.is_plain`), the
    encoder that refuses NaN otherwise. The gate checked the request already; a payload
    that still cannot be encoded (NaN, a lone surrogate, an object) is the caller's fault,
    never the model's: a BAD_REQUEST, which no breaker counts."""
    if plain and (encoded := dumps_plain(payload)) is not None:
        return encoded
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
        self._plain_body = is_plain(self._body)  # see `_request`
        self._omit = omit
        # Built once: every request sends these. Read-only: the aiohttp transport keeps its
        # own form of them, found by identity.
        self._headers: Mapping[str, str] = MappingProxyType({**headers, **_JSON})
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

    def _request(self, path: str, payload: Mapping[str, Any], plain: bool) -> tuple[str, bytes]:
        """The URL and body. `plain`: the payload is plain JSON data (`_json.is_plain`),
        as a request the gate checked makes it, so the fast encoder writes it as the
        refusing one would."""
        if self._body:
            payload = {**self._body, **payload}
            plain = plain and self._plain_body
        if self._omit:
            payload = {key: value for key, value in payload.items() if key not in self._omit}
        url = self._base_url + path + self._query
        # `_encoded`'s fast path, one call fewer.
        if plain and (encoded := dumps_plain(payload)) is not None:
            return url, encoded
        return url, _encoded(payload)

    # A plain call awaits the transport's `post` itself, `_send` and `_body` around it: no
    # coroutine of ours sits between the provider and the transport while the reply is
    # awaited. `except self._errors` reads the transport's errors only when one is raised.

    def _send(
        self, path: str, payload: Mapping[str, Any], plain: bool = False
    ) -> Coroutine[Any, Any, Reply]:
        """POST `payload` as JSON (`plain`: see `_request`); await it under
        `except self._errors` and map those with `_failure`."""
        url, content = self._request(path, payload, plain)
        return self._client().post(
            url, outgoing(self._headers), content, limit=self._max_body, error_limit=self._max_error_body
        )

    @property
    def _errors(self) -> tuple[type[BaseException], ...]:
        """What the transport raises for a failed connection or HTTP framing."""
        return self._client().errors

    def _failure(self, exc: BaseException) -> UpstreamError:
        return error_from_exception(exc, self._secrets)

    def _json(self, reply: Reply) -> Any:
        """The reply's JSON; `UpstreamError` for an error status or a body that is no JSON."""
        if reply.status_code >= 400:
            raise error_from_response(reply, self._secrets)
        try:
            return loads(reply.content)
        except ValueError as exc:
            raise error_from_exception(exc) from None

    @contextlib.asynccontextmanager
    async def _events(
        self, path: str, payload: Mapping[str, Any], plain: bool = False
    ) -> AsyncIterator[SSEDecoder]:
        """POST for a streamed reply and read its server-sent events (`plain`: see
        `_request`).

        The response is closed on every exit, so leaving early (an error, a timeout, the
        client gone) closes the upstream connection rather than paying for unread tokens.
        """
        url, content = self._request(path, payload, plain)
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
