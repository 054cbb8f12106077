"""Routing strategies: each orders the candidates of one call; the chain walks that order.

A strategy never has the last word on whether a call is answered: whatever it puts
first, the rest of its order is the fallback chain. Write your own by subclassing
`Strategy`, and pass the instance (or `register_strategy` a name) to `route_policy`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._classify import Classifier, classify_complexity
from ._state import ALL_FIGURES, Figure

if TYPE_CHECKING:
    from .._registry import Deployment
    from ..policy import RoutePolicy
    from ._request import RequestInfo
    from ._state import RoutingState

__all__ = [
    "CostStrategy",
    "HybridStrategy",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "OrderedStrategy",
    "ShuffleStrategy",
    "Strategy",
    "TaskStrategy",
    "UsageStrategy",
    "register_strategy",
    "resolve_strategy",
    "strategy_names",
]

DEFAULT_WEIGHTS: Mapping[str, float] = {"quality": 1.0, "cost": 1.0, "latency": 1.0}
DEFAULT_TIER_QUALITY: Mapping[str, int] = {"simple": 1, "medium": 2, "complex": 3}


class Strategy(abc.ABC):
    """Orders candidate deployments for one call.

    `plan` gets the deployments that passed the policy's filters, in declared order, and
    returns them (or a subset) best first. It must not keep per-call state on `self`:
    one instance serves concurrent calls. Shared figures (latency, load) come from `state`.
    """

    #: Shown on the route span as `gate.strategy`.
    name: str = "custom"
    #: The figures `plan` reads from `state`. Attempts only keep the figures some route
    #: reads, so a strategy that reads none costs nothing after its call; one written
    #: without saying reads them all.
    reads: ClassVar[frozenset[Figure]] = ALL_FIGURES

    def check(self, policy: RoutePolicy, deployments: Sequence[Deployment]) -> None:  # noqa: B027
        """Raise ValueError if this strategy cannot route `policy` (called at startup)."""

    @abc.abstractmethod
    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        """The candidates, best first."""


class OrderedStrategy(Strategy):
    """The declared chain, as it is."""

    name = "ordered"
    reads = frozenset()

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        return candidates


class CostStrategy(Strategy):
    """Cheapest estimated call first, among the models good enough for the request.

    `classifier` maps the request to a tier (default: `classify_complexity`; None to skip)
    and `tier_quality` the tier to a minimum quality. Models below it follow, best
    quality first, as fallback. Unknown prices sort last.
    """

    name = "cost"
    reads = frozenset()

    def __init__(
        self, *, classifier: Classifier | None = classify_complexity,
        tier_quality: Mapping[str, int] = DEFAULT_TIER_QUALITY,
    ) -> None:
        self.classifier = classifier
        self.tier_quality = dict(tier_quality)

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        floor = 0
        if self.classifier is not None:
            tier = request.tier = self.classifier(request)
            floor = self.tier_quality.get(tier, 0)
        ranked: list[tuple[int, int, float, int, Deployment]] = []
        for index, deployment in enumerate(candidates):
            quality = deployment.entry.quality
            cost = request.cost(deployment)
            below = quality < floor
            key = math.inf if cost is None else cost
            ranked.append((below, -quality if below else 0, key, index, deployment))
        ranked.sort()
        return [item[4] for item in ranked]


class LatencyStrategy(Strategy):
    """Lowest recent latency first (time to first token for streams).

    Deployments never seen go first, so each gets measured. Deployments within `buffer`
    (a fraction) of the best count as tied and one of them is picked at random, so
    near-equal deployments share the load. With probability `explore` the deployment
    whose figure is oldest goes first instead, so a recovered one gets seen again.
    `percentile=True` ranks by the p95 estimate instead of the mean.
    """

    name = "latency"
    reads = frozenset({"latency"})

    def __init__(self, *, explore: float = 0.05, buffer: float = 0.1, percentile: bool = False) -> None:
        if not 0 <= explore <= 1:
            raise ValueError("explore must be in [0, 1]")
        if buffer < 0:
            raise ValueError("buffer must be >= 0")
        self.explore = explore
        self.buffer = buffer
        self.percentile = percentile

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        stats = await state.latency(candidates, request)
        unseen: list[Deployment] = []
        seen: list[tuple[float, int, float, Deployment]] = []
        for index, (deployment, stat) in enumerate(zip(candidates, stats, strict=True)):
            if stat is None:
                unseen.append(deployment)
            else:
                seen.append((stat.p95 if self.percentile else stat.mean, index, stat.updated, deployment))
        if len(seen) > 1:
            seen.sort()
            rng = request.rng
            if self.explore and rng.random() < self.explore:
                stalest = min(range(1, len(seen)), key=lambda i: seen[i][2])
                seen.insert(0, seen.pop(stalest))
            else:
                limit = seen[0][0] * (1.0 + self.buffer)
                tied = 1
                while tied < len(seen) and seen[tied][0] <= limit:
                    tied += 1
                if tied > 1:
                    seen.insert(0, seen.pop(rng.randrange(tied)))
        return unseen + [item[3] for item in seen]


class TaskStrategy(Strategy):
    """Models tagged for the request's task first, then the rest as fallback.

    The task is the policy's `task_header` request header if present, else what
    `classifier` says, else the policy's `task`, else `default`. When no model is tagged
    for it, the models of the policy's task (or `default`) go first instead.
    """

    name = "task"
    reads = frozenset()

    def __init__(
        self, *, classifier: Callable[[RequestInfo], str | None] | None = None, default: str | None = None
    ) -> None:
        self.classifier = classifier
        self.default = default

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        policy = request.policy
        fallback = policy.task or self.default
        task = request.header(policy.task_header.lower().encode()) if policy.task_header else None
        if not task and self.classifier is not None:
            task = self.classifier(request)
        task = request.task = task or fallback
        for wanted in (task, fallback):
            if not wanted:
                continue
            tagged = [d for d in candidates if wanted in d.entry.tags]
            if tagged:
                request.task = wanted
                return tagged + [d for d in candidates if wanted not in d.entry.tags]
        return candidates


class HybridStrategy(Strategy):
    """Highest weighted score first: quality tier, cheapness and speed, each scaled to
    0..1 across the candidates and weighted by the policy's `weights` (default 1 each).

    An unknown price scores 0 for cost; an unseen deployment scores 1 for latency, so it
    gets measured.
    """

    name = "hybrid"
    reads = frozenset({"latency"})

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        if len(candidates) < 2:
            return candidates
        weights = request.policy.weights or DEFAULT_WEIGHTS
        w_quality = weights.get("quality", 0.0)
        w_cost = weights.get("cost", 0.0)
        w_latency = weights.get("latency", 0.0)
        scores = [0.0] * len(candidates)
        if w_quality:
            _add_scaled(scores, [d.entry.quality for d in candidates], w_quality, unknown=0.0)
        if w_cost:
            cheapness = [None if (c := request.cost(d)) is None else -c for d in candidates]
            _add_scaled(scores, cheapness, w_cost, unknown=0.0)
        if w_latency:
            stats = await state.latency(candidates, request)
            _add_scaled(scores, [None if s is None else -s.mean for s in stats], w_latency, unknown=1.0)
        # reverse=True keeps equal scores in declared order, as a stable sort should
        order = sorted(range(len(candidates)), key=scores.__getitem__, reverse=True)
        return [candidates[i] for i in order]


def _add_scaled(
    scores: list[float], values: Sequence[float | None] | Sequence[int], weight: float, *,
    unknown: float,
) -> None:
    """Add `weight` times each value scaled to 0 (lowest) .. 1 (highest); `unknown` for None."""
    known = [v for v in values if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    scale = weight / (high - low) if high > low else 0.0
    for i, value in enumerate(values):
        if value is None:
            scores[i] += weight * unknown
        else:
            scores[i] += (value - low) * scale if scale else weight


# -- load balancing across the deployments of one alias ------------------------------------


def _groups(candidates: Sequence[Deployment]) -> list[list[int]]:
    """Candidate indexes grouped by alias, aliases in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index, deployment in enumerate(candidates):
        groups.setdefault(deployment.alias, []).append(index)
    return list(groups.values())


class _Balancer(Strategy):
    """Keeps the aliases in declared order and orders each alias's deployments by `_keys`."""

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        if len(candidates) < 2:
            return candidates
        keys = await self._keys(candidates, request, state)
        ordered: list[Deployment] = []
        for group in _groups(candidates):
            if len(group) > 1:
                group.sort(key=keys.__getitem__)
            ordered.extend(candidates[i] for i in group)
        return ordered

    @abc.abstractmethod
    async def _keys(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> list[Any]:
        """A sort key per candidate, smallest first."""


class ShuffleStrategy(_Balancer):
    """Weighted random order of each alias's deployments: a deployment goes first with
    probability weight / total weight of its alias (`ModelEntry.weight`)."""

    name = "shuffle"
    reads = frozenset()

    async def _keys(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> list[Any]:
        # Efraimidis-Spirakis: ordering by -u**(1/w) samples without replacement by weight.
        random = request.rng.random
        return [-(random() ** (1.0 / d.entry.weight)) for d in candidates]


class LeastBusyStrategy(_Balancer):
    """Fewest calls in flight (per unit of `ModelEntry.weight`) first; ties keep declared order."""

    name = "least_busy"
    reads = frozenset({"in_flight"})

    async def _keys(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> list[Any]:
        busy = await state.in_flight(candidates)
        return [n / d.entry.weight for n, d in zip(busy, candidates, strict=True)]


class UsageStrategy(_Balancer):
    """Fewest tokens used this minute first, among deployments under their `rpm` and
    `tpm`; deployments at a limit go last."""

    name = "usage"
    reads = frozenset({"usage"})

    async def _keys(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> list[Any]:
        usage = await state.usage(candidates)
        keys: list[tuple[bool, int]] = []
        for deployment, (requests, tokens) in zip(candidates, usage, strict=True):
            entry = deployment.entry
            limited = (entry.rpm is not None and requests >= entry.rpm) or (
                entry.tpm is not None and tokens >= entry.tpm
            )
            keys.append((limited, tokens))
        return keys


# -- registry ------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], Strategy]] = {
    "ordered": OrderedStrategy,
    "cost": CostStrategy,
    "latency": LatencyStrategy,
    "task": TaskStrategy,
    "hybrid": HybridStrategy,
    "shuffle": ShuffleStrategy,
    "least_busy": LeastBusyStrategy,
    "usage": UsageStrategy,
}
_instances: dict[str, Strategy] = {}


def register_strategy(name: str, factory: Callable[[], Strategy]) -> None:
    """Make `strategy=name` in a policy use `factory()` (one instance, shared)."""
    if not name:
        raise ValueError("a strategy name must not be empty")
    _FACTORIES[name] = factory
    _instances.pop(name, None)


def strategy_names() -> list[str]:
    return sorted(_FACTORIES)


def resolve_strategy(spec: str | Strategy) -> Strategy:
    """The strategy named `spec` (or `spec` itself); KeyError for an unknown name."""
    if isinstance(spec, Strategy):
        return spec
    found = _instances.get(spec)
    if found is None:
        found = _instances[spec] = _FACTORIES[spec]()
    return found
