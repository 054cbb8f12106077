"""Route policies: how one endpoint picks its model, and the limits it runs under.

`@route_policy(...)` validates at import time and only attaches metadata, so it may sit
above or below the framework's route decorator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._headers import header_name_problem
from .errors import PolicyError
from .limits._budget import Budget
from .limits._cache import Cache
from .limits._rate import Limit
from .routing._experiments import Experiment
from .routing._strategies import Strategy

__all__ = ["Backoff", "RoutePolicy", "policy_of", "route_name", "route_policy"]

_T = TypeVar("_T")
POLICY_ATTRIBUTE = "__gate_policy__"
POLICY_OPT_KEY = "gate_policy"
_WEIGHT_KEYS = ("quality", "cost", "latency")


class Backoff(BaseModel):
    """Exponential backoff with full jitter between retries of one deployment.

    The n-th retry waits a uniform random time in [0, min(maximum, initial * 2**n)];
    a `Retry-After` from the upstream replaces that, up to `retry_after_cap`; beyond the
    cap the deployment is left for the next model instead of waited for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    initial: float = Field(0.1, ge=0)
    maximum: float = Field(2.0, ge=0)
    retry_after_cap: float = Field(10.0, ge=0)


class RoutePolicy(BaseModel):
    """How a route chooses and calls its model."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True)

    models: tuple[str, ...] = Field(default=(), description="ordered fallback chain of aliases")
    strategy: str | Strategy = Field(
        "ordered", description="a strategy name (ordered, cost, latency, task, hybrid, shuffle, "
        "least_busy, usage) or a Strategy instance",
    )
    max_tokens: int | None = Field(None, gt=0, description="default and cap of output tokens")
    timeout: float | None = Field(None, gt=0, description="seconds per attempt")
    deadline: float | None = Field(None, gt=0, description="seconds for the whole call")
    ttft: float | None = Field(
        None, gt=0, description="streams: seconds from sending an attempt to its first token"
    )
    idle_timeout: float | None = Field(
        None, gt=0, description="streams: most seconds between chunks once the first arrived"
    )
    retries: int = Field(1, ge=0, le=10, description="extra tries of one deployment")
    # A factory, not an instance: building one at import would build Backoff's validator.
    backoff: Backoff = Field(default_factory=Backoff)
    temperature: float | None = Field(None, ge=0, le=2)
    name: str | None = Field(None, description="route name in spans and metrics")
    # Routing: filters every strategy honours, and what some strategies rank by.
    tags: frozenset[str] = Field(frozenset(), description="tags every model must have")
    min_quality: int | None = Field(None, ge=1, le=5, description="lowest quality tier allowed")
    max_cost_usd: float | None = Field(
        None, gt=0, description="most a call may cost (prompt estimate + max_tokens); per-call override"
    )
    max_latency: float | None = Field(
        None, gt=0, description="seconds; slower deployments (recent mean) are tried last"
    )
    task: str | None = Field(None, description="task strategy: the route's task")
    task_header: str | None = Field(None, description="task strategy: request header naming the task")
    weights: dict[str, float] | None = Field(
        None, description="hybrid strategy: weights of quality, cost and latency"
    )
    experiment: Experiment | None = None
    budget: Budget | tuple[Budget, ...] | None = Field(
        None, description="a Budget or several (per caller, route, global)"
    )
    limits: tuple[Limit, ...] = Field((), description="rate limits: Limit(rpm=...), Limit(tpm=...)")
    cache: Cache | None = Field(None, description="response cache of the route")

    @property
    def budgets(self) -> tuple[Budget, ...]:
        budget = self.budget
        return () if budget is None else (budget,) if isinstance(budget, Budget) else budget

    if not TYPE_CHECKING:  # type checkers keep the fields' signature

        def __init__(self, **data: Any) -> None:
            # Made in Python: a PolicyError naming the field, never pydantic's error.
            # (`make_policy` and `@route_policy` name the route as well.)
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise _policy_error(exc, "RoutePolicy(...)") from None
            except RecursionError:
                raise PolicyError("nested too deeply", route="RoutePolicy(...)") from None

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Any:
        if not isinstance(value, str | Strategy) or not value:
            raise ValueError("give a strategy name or a Strategy instance")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        for key, weight in (weights or {}).items():
            if key not in _WEIGHT_KEYS:
                raise ValueError(f"unknown weight {key!r} (use {', '.join(_WEIGHT_KEYS)})")
            if not weight > 0:
                raise ValueError(f"weight {key!r} must be positive, got {weight!r}")
        return weights

    @field_validator("experiment", "budget", "limits", "cache", mode="before")
    @classmethod
    def _value_objects(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if name in ("budget", "limits") and isinstance(value, list | tuple):
            return tuple(cls._value_object(item, name) for item in value)
        if name == "limits" and value is not None:
            raise ValueError("expected a list of Limit")
        return cls._value_object(value, name)

    @staticmethod
    def _value_object(value: Any, name: str) -> Any:
        kind: type[Any] = {
            "experiment": Experiment, "budget": Budget, "limits": Limit, "cache": Cache,
        }[name]
        if isinstance(value, Mapping):
            try:
                value = kind(**value)
            except (TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from None
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"expected {kind.__name__} or a mapping of its fields")
        if value is not None and (problem := value.problem()):
            raise ValueError(problem)
        return value

    @field_validator("task_header")
    @classmethod
    def _task_header(cls, name: str | None) -> str | None:
        if name is not None and (problem := header_name_problem(name)):
            raise ValueError(problem)
        return name

    @model_validator(mode="after")
    def _check(self) -> RoutePolicy:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models lists an alias twice")
        if self.deadline:
            for name in ("timeout", "ttft", "idle_timeout"):
                limit = getattr(self, name)
                if limit and limit > self.deadline:
                    raise ValueError(f"{name} is longer than deadline")
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
    return PolicyError(first["msg"].removeprefix("Value error, "), route=route, field=field)


def make_policy(route: str, fields: dict[str, Any]) -> RoutePolicy:
    """Validate policy fields, naming the route and field on error."""
    if not isinstance(fields, Mapping) or not all(isinstance(key, str) for key in fields):
        raise PolicyError("policy fields must be a mapping of field names", route=route)
    try:
        return RoutePolicy(**fields)
    except PolicyError as exc:
        raise PolicyError(exc.detail, route=route, field=exc.field) from None


def route_policy(policy: RoutePolicy | None = None, /, **fields: Any) -> Callable[[_T], _T]:
    """Declare how the decorated route picks its model.

    Pass the fields (`models=[...]`, `timeout=...`) or a ready `RoutePolicy`. The endpoint
    is returned unchanged; an invalid policy raises `PolicyError` at import time.
    """
    if policy is not None and fields:
        raise TypeError("pass either a RoutePolicy or policy fields, not both")

    def decorate(target: _T) -> _T:
        route = route_name(target)
        resolved = policy if policy is not None else make_policy(route, fields)
        if policy_of(target) is not None:
            raise TypeError(f"{route} already has a route policy; give it one @route_policy")
        opt = getattr(target, "opt", None)
        if isinstance(opt, dict):
            # A Litestar handler (slotted in Litestar 3): per-handler metadata lives in .opt.
            opt[POLICY_OPT_KEY] = resolved
        else:
            setattr(target, POLICY_ATTRIBUTE, resolved)
        return target

    return decorate


def policy_of(target: Any) -> RoutePolicy | None:
    """The policy attached to an endpoint function or handler, if any.

    On a Litestar handler the function's own policy (`@route_policy` below `@get`) comes
    first, then `opt["gate_policy"]`, which Litestar has merged from the app, routers,
    controller and handler, closest layer winning.
    """
    for candidate in (target, getattr(target, "fn", None)):
        found = getattr(candidate, POLICY_ATTRIBUTE, None)
        if isinstance(found, RoutePolicy):
            return found
    opt = getattr(target, "opt", None)
    found = opt.get(POLICY_OPT_KEY) if isinstance(opt, dict) else None
    if found is None or isinstance(found, RoutePolicy):
        return found
    raise PolicyError(
        f"opt[{POLICY_OPT_KEY!r}] must be a RoutePolicy, not {type(found).__name__}",
        route=route_name(target), field=POLICY_OPT_KEY,
    )
