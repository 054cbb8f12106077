"""The exceptions gate_mw raises, each typed so callers can catch exactly what they mean."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import Attempt, ChatResult

__all__ = [
    "AllAttemptsFailed",
    "BudgetExceeded",
    "ConfigError",
    "DeadlineExceeded",
    "ErrorKind",
    "GateError",
    "NoCandidates",
    "PolicyError",
    "RateLimited",
    "RequestRejected",
    "StateUnavailable",
    "StreamInterrupted",
    "UpstreamError",
]


class ErrorKind(enum.StrEnum):
    """Why one upstream attempt failed; decides retry, fallback or return to the caller."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMIT = "rate_limit"
    SERVER = "server_error"
    AUTH = "auth"
    #: 402: the account behind the deployment is out of credits (OpenRouter).
    PAYMENT_REQUIRED = "payment_required"
    #: The upstream's moderation refused the content (OpenRouter 403, Azure `content_filter`);
    #: another provider may take it, and it says nothing about the deployment's health.
    CONTENT_FILTER = "content_filter"
    NOT_FOUND = "not_found"
    CONTEXT_LENGTH = "context_length"
    BAD_REQUEST = "bad_request"
    PROTOCOL = "protocol"
    DEADLINE = "deadline"
    COOLDOWN = "cooldown"
    INVALID_OUTPUT = "invalid_output"
    UNSUPPORTED = "unsupported"

    @property
    def retryable(self) -> bool:
        """The same deployment may answer if asked again."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.RATE_LIMIT, ErrorKind.SERVER, ErrorKind.PROTOCOL,
     ErrorKind.INVALID_OUTPUT}
)


class GateError(Exception):
    """Base class of every gate_mw error."""

    status_code: int = 500
    error_type: str = "gate_error"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description, free of secrets, for error bodies."""
        return {"type": self.error_type, "message": str(self)}


class ConfigError(GateError, ValueError):
    """The gateway configuration is invalid; names the source, entry and field."""

    error_type = "config_error"

    def __init__(
        self, message: str, *, source: str | None = None, entry: str | None = None,
        field: str | None = None,
    ) -> None:
        where = ", ".join(
            f"{label} {value}"
            for label, value in (("in", source), ("entry", entry), ("field", field))
            if value
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.detail, self.source, self.entry, self.field = message, source, entry, field

    def located(self, source: str | None) -> ConfigError:
        """The same error, naming the file it came from."""
        return ConfigError(self.detail, source=source, entry=self.entry, field=self.field)


class PolicyError(GateError, ValueError):
    """A route policy is invalid; names the route and the field."""

    error_type = "policy_error"

    def __init__(self, message: str, *, route: str, field: str | None = None) -> None:
        where = f"route {route}" + (f", field {field}" if field else "")
        super().__init__(f"{where}: {message}")
        self.detail, self.route, self.field = message, route, field


class UpstreamError(GateError):
    """One upstream attempt failed. Messages are redacted before they get here.

    The message is short and safe to show the end user (it goes into error bodies);
    `detail` may say more (the upstream's address, the start of a non-JSON body) and goes
    only to logs and spans.
    """

    error_type = "upstream_error"

    def __init__(
        self, kind: ErrorKind, message: str, *, status: int | None = None,
        retry_after: float | None = None, detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind, self.status, self.retry_after = kind, status, retry_after
        self.detail = message if detail is None else detail


class _AttemptsError(GateError):
    """An error that carries the attempts made before it was raised."""

    def __init__(self, message: str, attempts: Sequence[Attempt], *, request_id: str | None) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)
        self.request_id = request_id

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["request_id"] = self.request_id
        body["attempts"] = [attempt.to_dict() for attempt in self.attempts]
        return body


class AllAttemptsFailed(_AttemptsError):
    """Every model in the chain failed; answered as 502 when unhandled."""

    status_code = 502
    error_type = "all_attempts_failed"


class DeadlineExceeded(AllAttemptsFailed):
    """The policy's total deadline ran out before any model answered; answered as 504."""

    status_code = 504
    error_type = "deadline_exceeded"


class RequestRejected(_AttemptsError):
    """The upstream rejected the request itself (a 400-class error); not retried."""

    error_type = "request_rejected"

    def __init__(
        self, message: str, attempts: Sequence[Attempt], *, request_id: str | None,
        status: int,
    ) -> None:
        super().__init__(message, attempts, request_id=request_id)
        self.status_code = status if 400 <= status < 500 else 400


class NoCandidates(_AttemptsError):
    """No deployment could be tried: each was filtered out or cooling down."""

    status_code = 503
    error_type = "no_candidates"

    def __init__(
        self, message: str, reasons: dict[str, str], *, request_id: str | None,
        attempts: Sequence[Attempt] = (),
    ) -> None:
        super().__init__(message, attempts, request_id=request_id)
        self.reasons = dict(reasons)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["reasons"] = self.reasons
        return body


class StreamInterrupted(_AttemptsError):
    """A stream failed after its first token went out, too late to fall back.

    `kind` says why; `partial` holds the text received, its estimated usage and cost.
    """

    status_code = 502
    error_type = "stream_interrupted"

    def __init__(
        self, message: str, attempts: Sequence[Attempt], *, request_id: str | None,
        kind: ErrorKind, partial: ChatResult,
    ) -> None:
        super().__init__(message, attempts, request_id=request_id)
        self.kind, self.partial = kind, partial

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["kind"] = self.kind.value
        return body


class LimitError(GateError):
    """A call refused before any attempt because a limit has no room for it.

    `limit` is the limit's label (`caller:rpm`, `route:budget`...), `limit_value` its
    capacity, `used` what is taken, `reset` seconds until it has room again."""

    def __init__(
        self, message: str, *, limit: str, limit_value: float, used: float, reset: float,
        request_id: str | None = None, status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.limit, self.limit_value, self.used, self.reset = limit, limit_value, used, reset
        self.reset_at = time.time() + reset
        self.request_id = request_id
        if status is not None:
            self.status_code = status

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait, for a `Retry-After` header (at least 1)."""
        return max(1, int(-(-self.reset // 1)))

    def to_dict(self) -> dict[str, Any]:
        reset_at = datetime.fromtimestamp(self.reset_at, UTC).isoformat(timespec="seconds")
        return {
            **super().to_dict(), "limit": self.limit, "limit_value": self.limit_value,
            "used": self.used, "reset_seconds": round(self.reset, 3), "reset_at": reset_at,
            "request_id": self.request_id,
        }


class BudgetExceeded(LimitError):
    """A budget cannot cover the call's estimated cost; answered as 402 (or the budget's
    `status`, e.g. 429) when unhandled. `used` is the USD spent and reserved."""

    status_code = 402
    error_type = "budget_exceeded"

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body.update(budget=self.limit, limit_usd=self.limit_value, spent_usd=self.used)
        return body


class RateLimited(LimitError):
    """A rate limit (requests, tokens or USD per window) is reached; answered as 429 with
    `Retry-After` when unhandled."""

    status_code = 429
    error_type = "rate_limited"


class StateUnavailable(GateError):
    """The shared state store cannot be reached and the gateway is set to fail closed;
    answered as 503."""

    status_code = 503
    error_type = "state_unavailable"
