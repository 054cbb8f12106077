"""Route policies: how one endpoint picks its model, and the limits it runs under.

`@route_policy(...)` validates at import time and only attaches metadata, so it may sit
above or below the framework's route decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import PolicyError

__all__ = ["Backoff", "RoutePolicy", "policy_of", "route_name", "route_policy"]

_T = TypeVar("_T")
POLICY_ATTRIBUTE = "__gate_policy__"
POLICY_OPT_KEY = "gate_policy"


class Backoff(BaseModel):
    """Exponential backoff with full jitter between retries of one deployment.

    The n-th retry waits a uniform random time in [0, min(maximum, initial * 2**n)];
    a `Retry-After` from the upstream replaces that, up to `retry_after_cap`; beyond the
    cap the deployment is left for the next model instead of waited for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: float = Field(0.1, ge=0)
    maximum: float = Field(2.0, ge=0)
    retry_after_cap: float = Field(10.0, ge=0)


class RoutePolicy(BaseModel):
    """How a route chooses and calls its model."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    models: tuple[str, ...] = Field(default=(), description="ordered fallback chain of aliases")
    strategy: str = "ordered"
    max_tokens: int | None = Field(None, gt=0, description="default and cap of output tokens")
    timeout: float | None = Field(None, gt=0, description="seconds per attempt")
    deadline: float | None = Field(None, gt=0, description="seconds for the whole call")
    retries: int = Field(1, ge=0, le=10, description="extra tries of one deployment")
    backoff: Backoff = Backoff()
    temperature: float | None = Field(None, ge=0, le=2)
    name: str | None = Field(None, description="route name in spans and metrics")

    @model_validator(mode="after")
    def _check(self) -> RoutePolicy:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models lists an alias twice")
        if self.timeout and self.deadline and self.timeout > self.deadline:
            raise ValueError("timeout is longer than deadline")
        return self


def route_name(target: Any) -> str:
    """A readable name for a decorated endpoint or handler."""
    fn = getattr(target, "fn", target)  # Litestar handlers wrap the function in .fn
    fn = getattr(fn, "value", fn)  # older Litestar: AsyncCallable
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _policy_error(exc: ValidationError, route: str) -> PolicyError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return PolicyError(first["msg"], route=route, field=field)


def make_policy(route: str, fields: dict[str, Any]) -> RoutePolicy:
    """Validate policy fields, naming the route and field on error."""
    try:
        return RoutePolicy(**fields)
    except ValidationError as exc:
        raise _policy_error(exc, route) from None


def route_policy(policy: RoutePolicy | None = None, /, **fields: Any) -> Callable[[_T], _T]:
    """Declare how the decorated route picks its model.

    Pass the fields (`models=[...]`, `timeout=...`) or a ready `RoutePolicy`. The endpoint
    is returned unchanged; an invalid policy raises `PolicyError` at import time.
    """
    if policy is not None and fields:
        raise TypeError("pass either a RoutePolicy or policy fields, not both")

    def decorate(target: _T) -> _T:
        resolved = policy if policy is not None else make_policy(route_name(target), fields)
        opt = getattr(target, "opt", None)
        if isinstance(opt, dict):
            opt[POLICY_OPT_KEY] = resolved  # Litestar handler: metadata lives in .opt
        else:
            setattr(target, POLICY_ATTRIBUTE, resolved)
        return target

    return decorate


def policy_of(target: Any) -> RoutePolicy | None:
    """The policy attached to an endpoint function or handler, if any."""
    opt = getattr(target, "opt", None)
    if isinstance(opt, dict) and isinstance(found := opt.get(POLICY_OPT_KEY), RoutePolicy):
        return found
    for candidate in (target, getattr(target, "fn", None)):
        found = getattr(candidate, POLICY_ATTRIBUTE, None)
        if isinstance(found, RoutePolicy):
            return found
    return None
