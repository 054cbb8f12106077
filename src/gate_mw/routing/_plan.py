"""Route policies compiled against a gateway's models, and the plan of one call.

A policy is compiled once (when the gateway validates it): static filters applied,
strategy resolved, experiment arms compiled. What is left per call is the router's.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PolicyError
from ..policy import RoutePolicy, make_policy
from ._experiments import Experiment, Experiments
from ._health import breaker_keys
from ._request import RequestInfo
from ._state import Figure
from ._strategies import OrderedStrategy, Strategy, resolve_strategy, strategy_names

if TYPE_CHECKING:
    from .._registry import Deployment, ModelRegistry

__all__ = ["Decision", "Route", "Routes"]

_MAX_ROUTES = 512  # compiled policies kept; a policy made per call must not grow this
# Fields read before the arm is drawn (they shape the request itself), so arms cannot vary them.
_ROUTE_ONLY = frozenset({"max_tokens", "temperature", "idle_timeout", "name"})


@dataclass(slots=True)
class Decision:
    """The plan of one call and why: shown on its route span and used by the chain. Not
    changed once made: the decision of a fixed plan is shared by the calls that get it."""

    deployments: Sequence[Deployment]
    policy: RoutePolicy
    strategy: str
    reasons: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    experiment: str | None = None
    arm: str | None = None
    tier: str | None = None
    task: str | None = None
    downgraded: bool = False
    #: The span attributes of a plan fixed at compile time (the declared chain), shared
    #: by every call that gets it; None: built per call.
    fixed_attributes: Mapping[str, Any] | None = None
    #: The breaker keys of the plan, read before the call, when fixed with it; None:
    #: found per call.
    reads: Sequence[str] | None = None

    def span_attributes(self) -> Mapping[str, Any]:
        """The decision as route span attributes (not to be changed: may be shared)."""
        if self.fixed_attributes is not None and self.arm is None and not self.downgraded:
            return self.fixed_attributes
        attributes: dict[str, Any] = {
            "gate.strategy": self.strategy,
            "gate.candidates": tuple(d.id for d in self.deployments),
        }
        if self.reasons:
            attributes["gate.excluded"] = tuple(self.reasons)
        if self.arm is not None:
            attributes["gate.experiment.name"] = self.experiment
            attributes["gate.experiment.arm"] = self.arm
        if self.tier is not None:
            attributes["gate.tier"] = self.tier
        if self.task is not None:
            attributes["gate.task"] = self.task
        if self.downgraded:
            attributes["gate.budget.downgraded"] = True
        return attributes

    def metric_attributes(self) -> dict[str, Any] | None:
        if self.arm is None:
            return None
        return {"gate.experiment.name": self.experiment, "gate.experiment.arm": self.arm}


@dataclass(slots=True)
class Route:
    """A policy compiled against a gateway's models."""

    policy: RoutePolicy
    strategy: Strategy
    candidates: tuple[Deployment, ...]
    excluded: dict[str, str]
    experiment: Experiment | None = None
    arms: dict[str, Route] = field(default_factory=dict)
    override_header: bytes | None = None
    min_window: int | None = None
    #: When nothing per call is to be done beyond the declared chain (ordered, no filters,
    #: no budget): its decisions, plain and streamed, shared by the calls that get them
    #: (no Decision made per call: -2.5k instructions).
    fixed: tuple[Decision, Decision] | None = None


class Routes:
    """The compiled form of each policy in use: a bounded LRU, by policy identity."""

    def __init__(self, registry: ModelRegistry, experiments: Experiments) -> None:
        self.registry = registry
        self.experiments = experiments
        self._routes: OrderedDict[int, Route] = OrderedDict()
        # The route used last, which is last in the LRU order already: most calls use the
        # same route as the one before, found without the dict (-1.5k instructions a call).
        self._last: Route | None = None
        # The figures some compiled route ranks by: attempts keep only these. Routes are
        # compiled at startup (or on first use), so figures are kept from then on.
        self.figures: frozenset[Figure] = frozenset()
        #: What an attempt counts (in flight, per-minute usage), from `figures`; None: nothing.
        self.counted: tuple[bool, bool] | None = None

    def compile(self, policy: RoutePolicy, route: str) -> None:
        """Check `policy` against the models and keep its compiled form; PolicyError naming
        the route and field otherwise."""
        if self._cached(policy) is None:
            self._remember(policy, self._compile(policy, route, ""))

    def compiled(self, policy: RoutePolicy) -> bool:
        """Whether `policy` is compiled (and so checked) already."""
        return self._cached(policy) is not None

    def _cached(self, policy: RoutePolicy) -> Route | None:
        last = self._last
        if last is not None and last.policy is policy:
            return last
        key = id(policy)
        found = self._routes.get(key)
        if found is not None and found.policy is policy:
            self._routes.move_to_end(key)
            self._last = found
            return found
        return None

    def _remember(self, policy: RoutePolicy, compiled: Route) -> None:
        self._routes[id(policy)] = compiled
        self._routes.move_to_end(id(policy))
        self._last = compiled
        if len(self._routes) > _MAX_ROUTES:
            self._routes.popitem(last=False)

    def _compile(self, policy: RoutePolicy, route: str, prefix: str) -> Route:
        def fail(field_name: str, message: str) -> PolicyError:
            return PolicyError(message, route=route, field=prefix + field_name)

        try:
            strategy = resolve_strategy(policy.strategy)
        except KeyError:
            known = ", ".join(strategy_names())
            raise fail("strategy", f"unknown strategy {policy.strategy!r} (known: {known})") from None
        if unknown := self.registry.unknown(policy.models):
            raise fail("models", f"unknown model {unknown[0]!r}")
        declared = self.registry.chain(policy.models)
        try:
            strategy.check(policy, declared)
        except ValueError as exc:
            raise fail("strategy", f"{strategy.name}: {exc}") from None
        candidates, excluded = _static_filter(policy, declared)
        if not candidates:
            field_name = "tags" if policy.tags else "min_quality"
            raise fail(field_name, "no model meets the filters: " + "; ".join(
                f"{dep}: {why}" for dep, why in excluded.items()
            ))
        if policy.max_cost_usd is not None:
            _check_affordable(policy, candidates, fail)
        if policy.task is not None and not any(policy.task in d.entry.tags for d in candidates):
            raise fail("task", f"no model is tagged {policy.task!r}")
        self.figures |= strategy.reads
        if policy.max_latency is not None:
            self.figures |= {"latency"}
        busy, usage = "in_flight" in self.figures, "usage" in self.figures
        self.counted = (busy, usage) if busy or usage else None
        compiled = Route(policy, strategy, candidates, excluded)
        if type(strategy) is OrderedStrategy and policy.max_cost_usd is None and policy.max_latency is None:
            attributes = Decision(candidates, policy, "ordered", excluded).span_attributes()
            reads = tuple(breaker_keys(candidates))
            plain, streamed = (
                Decision(
                    candidates, policy, "ordered", excluded, stream, fixed_attributes=attributes,
                    reads=reads,
                )
                for stream in (False, True)
            )
            compiled.fixed = plain, streamed
        windows = [d.context_window for d in candidates if d.context_window is not None]
        compiled.min_window = min(windows) if windows else None
        if policy.experiment is not None:
            if prefix:
                raise fail("experiment", "an experiment arm cannot hold another experiment")
            self._compile_experiment(compiled, policy.experiment, route, fail)
        return compiled

    def _compile_experiment(
        self, compiled: Route, experiment: Experiment, route: str,
        fail: Callable[[str, str], PolicyError],
    ) -> None:
        if problem := self.experiments.add(experiment):
            raise fail("experiment.name", problem)
        base = {name: value for name, value in compiled.policy if name != "experiment"}
        for arm, spec in experiment.arms.items():
            where = f"experiment.arms.{arm}"
            if isinstance(spec, str):
                overrides: dict[str, Any] = {"models": (spec,)}
            elif isinstance(spec, Sequence):
                overrides = {"models": tuple(spec)}
            else:
                overrides = dict(spec)
            if "experiment" in overrides:
                raise fail(where, "an arm cannot hold another experiment")
            if fixed := sorted(_ROUTE_ONLY & overrides.keys()):
                raise fail(f"{where}.{fixed[0]}", "a request setting: set it on the route, not an arm")
            variant = make_policy(route, {**base, **overrides})
            if not variant.models:
                variant = variant.model_copy(update={"models": compiled.policy.models})
            compiled.arms[arm] = self._compile(variant, route, where + ".")
        if experiment.override_header:
            compiled.override_header = experiment.override_header.lower().encode()
        compiled.experiment = experiment

    def get(self, policy: RoutePolicy, route: str) -> Route:
        """The compiled form of `policy`, compiled now if it is new."""
        compiled = self._cached(policy)
        if compiled is None:  # a policy the gateway did not validate (a Gate made by hand)
            compiled = self._compile(policy, route, "")
            self._remember(policy, compiled)
        return compiled


def _static_filter(
    policy: RoutePolicy, deployments: Sequence[Deployment]
) -> tuple[tuple[Deployment, ...], dict[str, str]]:
    kept: list[Deployment] = []
    excluded: dict[str, str] = {}
    for deployment in deployments:
        entry = deployment.entry
        if missing := policy.tags - entry.tags:
            excluded[deployment.id] = f"lacks tag(s) {', '.join(sorted(missing))}"
        elif policy.min_quality is not None and entry.quality < policy.min_quality:
            excluded[deployment.id] = f"quality {entry.quality} below min_quality {policy.min_quality}"
        else:
            kept.append(deployment)
    return tuple(kept), excluded


def _check_affordable(
    policy: RoutePolicy, candidates: Sequence[Deployment], fail: Callable[[str, str], PolicyError]
) -> None:
    """Even an empty prompt must fit max_cost_usd on some model, or no call ever will."""
    limit = policy.max_cost_usd
    assert limit is not None
    info = RequestInfo(
        messages=(), prompt_tokens=0, max_tokens=policy.max_tokens, policy=policy, route="",
        rng=random.Random(0),
    )
    costs = [info.cost(d) for d in candidates]
    if not any(cost is not None and cost <= limit for cost in costs):
        known = [cost for cost in costs if cost is not None]
        cheapest = f"the cheapest costs ${min(known):.6f}" if known else "no model has a price"
        message = f"no model fits max_cost_usd={limit:g} even for an empty prompt; {cheapest}"
        raise fail("max_cost_usd", message)
