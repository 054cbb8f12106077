"""Map upstream failures (statuses, bodies, transport errors) onto `ErrorKind`."""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .._redact import redact
from ..errors import ErrorKind, UpstreamError
from .transport import Reply

__all__ = [
    "aiohttp_errors", "error_from_event", "error_from_exception", "error_from_response", "error_from_status",
]

_CONTEXT_LENGTH = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long"
    r"|input is too long|reduce the length",
    re.IGNORECASE,
)
# A proxy asked for a model it does not serve (LiteLLM: "Invalid model name passed in
# model=..."; OpenRouter: "... is not a valid model ID"; OpenAI: "The model `x` does not exist").
_UNKNOWN_MODEL = re.compile(
    r"invalid model|not a valid model|no such model|unknown model|model_not_found"
    r"|model\b[^.]{0,80}?\b(does not exist|not found)",
    re.IGNORECASE,
)
_MODERATION = re.compile(r"moderation|flagged|content[ _-]?(policy|filter|management)", re.IGNORECASE)
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "moderation_blocked"})
_MAX_MESSAGE = 300
# URLs, IPv4 and bracketed IPv6 addresses (with a port or not), and localhost:port: an
# upstream's message may name its own or its backends' addresses, which end users must
# not see.
_ADDRESS = re.compile(
    r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"
    r"|\[[0-9a-f:.]+\](?::\d{1,5})?|\blocalhost:\d{1,5}\b",
    re.IGNORECASE,
)


def client_safe(message: str) -> str:
    """`message` with network addresses replaced, fit for an end user's error body."""
    return _ADDRESS.sub("[address]", message)


def _kind_for_status(status: int, message: str, code: str | None) -> ErrorKind:
    if status in (400, 413, 422) and (
        code == "context_length_exceeded" or status == 413 or _CONTEXT_LENGTH.search(message)
    ):
        return ErrorKind.CONTEXT_LENGTH
    if status in (400, 403) and (code in _FILTER_CODES or (status == 403 and _MODERATION.search(message))):
        return ErrorKind.CONTENT_FILTER
    if status == 402:
        return ErrorKind.PAYMENT_REQUIRED
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404 or (status == 400 and (code == "model_not_found" or _UNKNOWN_MODEL.search(message))):
        return ErrorKind.NOT_FOUND
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status == 409 or status >= 500:
        return ErrorKind.SERVER
    return ErrorKind.BAD_REQUEST


# LiteLLM's proxy passes the upstream's headers on with this prefix.
_RETRY_AFTER_MS = ("retry-after-ms", "llm_provider-retry-after-ms")
_RETRY_AFTER = ("retry-after", "llm_provider-retry-after")


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The upstream's Retry-After (or retry-after-ms), in seconds; None when absent or
    unparseable (then ignored: backoff applies as if it had not been sent)."""
    for name in _RETRY_AFTER_MS:
        if (millis := headers.get(name)) is not None and (ms := _seconds(millis)) is not None:
            return ms / 1000
    value = next((found for name in _RETRY_AFTER if (found := headers.get(name)) is not None), None)
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read as such
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return max(0.0, parsed.timestamp() - time.time())


def _message_and_code(body: Any) -> tuple[str, str | None]:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or ""), None if code is None else str(code)
    if isinstance(error, str):
        return error, None
    return "", None


def error_from_status(
    status: int, message: str, *, code: str | None = None, retry_after: float | None = None,
    secrets: Iterable[str] = (), detail: str | None = None,
) -> UpstreamError:
    """An `UpstreamError` for an HTTP status, with a redacted, bounded message free of
    network addresses; `detail` (default: the message) keeps them, for logs and spans."""
    kept = redact(message if detail is None else detail, secrets)[:_MAX_MESSAGE]
    text = client_safe(redact(message, secrets))[:_MAX_MESSAGE] or f"HTTP {status}"
    return UpstreamError(
        _kind_for_status(status, detail or message, code), text, status=status,
        retry_after=retry_after, detail=kept or text,
    )


def error_from_response(
    response: Reply, secrets: Iterable[str] = (), *, body: bytes | None = None
) -> UpstreamError:
    """The error an upstream reported in a non-2xx response (`body`: its bytes as read,
    when the response was streamed). A body that is not the API's JSON error (an HTML page
    from a proxy, say) is kept for logs and spans only: the message says just the status."""
    raw = response.content if body is None else body
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    message, code = _message_and_code(parsed)
    detail = None
    if not message:
        detail = raw.decode("utf-8", "replace").strip() if raw else None
        message = f"HTTP {response.status_code}" + (" (not a JSON error body)" if detail else "")
    return error_from_status(
        response.status_code, message, code=code, retry_after=_retry_after(response.headers),
        secrets=secrets, detail=detail,
    )


def aiohttp_errors() -> tuple[type[BaseException], ...]:
    """aiohttp's connection and HTTP-framing errors, or none if aiohttp is not loaded."""
    # Not imported here, to keep `import gate_mw` light: if aiohttp is not loaded yet,
    # nothing raised one of its errors.
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return ()
    return (aiohttp.ClientError, sys.modules["aiohttp.http_exceptions"].HttpProcessingError)


def httpx_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """httpx's transport errors and its timeouts, or none if httpx is not loaded: the
    gateway's own aiohttp pool never needs httpx, so it is not imported for this."""
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return (), ()
    return (httpx.TransportError,), (httpx.TimeoutException,)


def error_from_exception(exc: BaseException, secrets: Iterable[str] = ()) -> UpstreamError:
    """The error for a transport failure or a malformed reply. Its message names only the
    kind of failure; the upstream's address and the like stay in the detail."""
    loaded = aiohttp_errors()
    transport, timeout = httpx_errors()
    if isinstance(exc, transport) and isinstance(exc.__cause__, loaded):
        # httpx-aiohttp maps every aiohttp connection error (refused, reset, dropped) to
        # httpx.ConnectTimeout: judge by the aiohttp error underneath instead.
        exc = exc.__cause__
    if isinstance(exc, (TimeoutError, *timeout)):
        return UpstreamError(ErrorKind.TIMEOUT, "upstream timed out")
    name = type(exc).__name__
    if isinstance(exc, (*transport, *loaded, OSError)):
        detail = redact(f"{name}: {exc}", secrets)[:_MAX_MESSAGE]
        message = f"connection to the upstream failed ({name})"
        return UpstreamError(ErrorKind.CONNECTION, message, detail=detail)
    return UpstreamError(ErrorKind.PROTOCOL, f"malformed reply: {name}")


def error_from_event(body: Any, secrets: Iterable[str] = ()) -> UpstreamError:
    """The error an upstream sent inside a stream after answering 200: Anthropic's `error`
    event, or OpenRouter's chunk with an `error` object and `finish_reason: "error"`.

    A numeric code (OpenRouter's) is read as an HTTP status; a rate limit is known by its
    code; anything else is a server error, never the caller's fault, since the request was
    accepted."""
    message, code = _message_and_code(body)
    if code is not None and code.isascii() and code.isdigit() and 400 <= int(code) <= 599:
        kind = _kind_for_status(int(code), message, code)
        kind = ErrorKind.SERVER if kind is ErrorKind.BAD_REQUEST else kind
    else:
        kind = ErrorKind.RATE_LIMIT if code and "rate_limit" in code else ErrorKind.SERVER
    redacted = redact(message, secrets)
    text = client_safe(redacted)[:_MAX_MESSAGE] or "the upstream ended the stream with an error"
    return UpstreamError(kind, text, detail=redacted[:_MAX_MESSAGE] or text)
