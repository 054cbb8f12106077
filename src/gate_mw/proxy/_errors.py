"""Errors the proxy answers, in OpenAI's or Anthropic's error JSON, mapped from gate_mw's
typed errors by status alone, so a new error type needs no change here."""

from __future__ import annotations

import math
from typing import Any, Literal

from ..errors import GateError

__all__ = ["Api", "ProxyError", "error_body", "from_gate_error"]

Api = Literal["openai", "anthropic"]

# The error `type` each API gives a status.
_OPENAI_TYPES = {
    402: "insufficient_quota",
    429: "rate_limit_exceeded",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class ProxyError(Exception):
    """A request the proxy answers with an error: status, message, and what OpenAI calls
    `param` and `code`. `headers` go on the response (e.g. `retry-after`)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers
        self.detail = detail


def from_gate_error(exc: GateError) -> ProxyError:
    """The answer to a gate_mw error: its own status and type, its safe details, and a
    `retry-after` header when it says when to come back."""
    headers: tuple[tuple[str, str], ...] = ()
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and math.isfinite(retry_after) and retry_after >= 0:
        headers = (("retry-after", str(max(1, math.ceil(retry_after)))),)
    detail = {k: v for k, v in exc.to_dict().items() if k not in ("type", "message")}
    status = exc.status_code if 400 <= exc.status_code <= 599 else 500
    return ProxyError(status, str(exc), code=exc.error_type, headers=headers, detail=detail or None)


def error_body(api: Api, error: ProxyError) -> dict[str, Any]:
    """The error JSON of `api` for `error`."""
    status = error.status
    if api == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        body: dict[str, Any] = {"type": kind, "message": error.message}
        if error.detail:
            body["gate"] = error.detail
        return {"type": "error", "error": body}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"message": error.message, "type": kind, "param": error.param, "code": error.code}
    if error.detail:
        body["gate"] = error.detail
    return {"error": body}
