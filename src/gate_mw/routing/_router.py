"""The router: turns a route policy into a per-call plan, and feeds back what attempts showed.

Policies are compiled once (when the gateway validates them): static filters applied,
strategy resolved, experiment arms compiled. A decision then only does the per-call work:
estimated cost, the strategy's order, budget downgrade and soft demotions.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..chat._tokens import estimate_messages
from ..errors import PolicyError, UpstreamError
from ..policy import RoutePolicy, make_policy
from ._experiments import Experiment, Experiments
from ._health import Admission, Breaker, CooldownState, Health
from ._request import RequestInfo
from ._state import Figure, RoutingState
from ._strategies import OrderedStrategy, Strategy, resolve_strategy, strategy_names

if TYPE_CHECKING:
    from .._context import RoutingContext
    from .._registry import Deployment, ModelRegistry
    from ..providers import ChatRequest
    from ..results import ChatResult
    from ..state import StateStore, Writes

__all__ = ["Decision", "Router"]

_MAX_ROUTES = 512  # compiled policies kept; a policy made per call must not grow this
# Fields read before the arm is drawn (they shape the request itself), so arms cannot vary them.
_ROUTE_ONLY = frozenset({"max_tokens", "temperature", "idle_timeout", "name"})


@dataclass(slots=True)
class Decision:
    """The plan of one call and why: shown on its route span and used by the chain."""

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
class _Route:
    """A policy compiled against a gateway's models."""

    policy: RoutePolicy
    strategy: Strategy
    candidates: tuple[Deployment, ...]
    excluded: dict[str, str]
    experiment: Experiment | None = None
    arms: dict[str, _Route] = field(default_factory=dict)
    override_header: bytes | None = None
    # Nothing per call to do beyond the declared chain: ordered, no filters, no budget.
    fixed: bool = False
    min_window: int | None = None
    #: The route span attributes of the declared chain, when `fixed`.
    fixed_attributes: Mapping[str, Any] | None = None


class Router:
    """Routing for one gateway: compiled policies, decisions, and the state behind them."""

    def __init__(
        self, registry: ModelRegistry, store: StateStore, breaker: Breaker, rng: random.Random,
        *, timer: Callable[[], float] = perf_counter,
    ) -> None:
        self.registry = registry
        # Times attempts for the latency windows; tests inject one to rank by set latencies.
        self.timer = timer
        self.store = store
        self.state = RoutingState(store)
        self.health = Health(store, breaker)
        self.experiments = Experiments(self.state)
        self.rng = rng
        self._routes: OrderedDict[int, _Route] = OrderedDict()
        # The figures some compiled route ranks by: attempts keep only these. Routes are
        # compiled at startup (or on first use), so figures are kept from then on.
        self._figures: frozenset[Figure] = frozenset()

    # -- compiling policies --------------------------------------------------------------

    def compile(self, policy: RoutePolicy, route: str) -> None:
        """Check `policy` against the models and keep its compiled form; PolicyError naming
        the route and field otherwise."""
        if self._cached(policy) is None:
            self._remember(policy, self._compile(policy, route, ""))

    def compiled(self, policy: RoutePolicy) -> bool:
        """Whether `policy` is compiled (and so checked) already."""
        return self._cached(policy) is not None

    def _cached(self, policy: RoutePolicy) -> _Route | None:
        found = self._routes.get(id(policy))
        if found is not None and found.policy is policy:
            self._routes.move_to_end(id(policy))
            return found
        return None

    def _remember(self, policy: RoutePolicy, compiled: _Route) -> None:
        self._routes[id(policy)] = compiled
        self._routes.move_to_end(id(policy))
        if len(self._routes) > _MAX_ROUTES:
            self._routes.popitem(last=False)

    def _compile(self, policy: RoutePolicy, route: str, prefix: str) -> _Route:
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
        self._figures |= strategy.reads
        if policy.max_latency is not None:
            self._figures |= {"latency"}
        compiled = _Route(policy, strategy, candidates, excluded)
        compiled.fixed = type(strategy) is OrderedStrategy and (
            policy.max_cost_usd is None and policy.max_latency is None
        )
        if compiled.fixed:
            compiled.fixed_attributes = Decision(
                candidates, policy, "ordered", excluded
            ).span_attributes()
        windows = [d.context_window for d in candidates if d.context_window is not None]
        compiled.min_window = min(windows) if windows else None
        if policy.experiment is not None:
            if prefix:
                raise fail("experiment", "an experiment arm cannot hold another experiment")
            self._compile_experiment(compiled, policy.experiment, route, fail)
        return compiled

    def _compile_experiment(
        self, compiled: _Route, experiment: Experiment, route: str,
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

    def _route(self, policy: RoutePolicy, route: str) -> _Route:
        compiled = self._cached(policy)
        if compiled is None:  # a policy the gateway did not validate (a Gate made by hand)
            compiled = self._compile(policy, route, "")
            self._remember(policy, compiled)
        return compiled

    # -- deciding ------------------------------------------------------------------------

    async def decide(
        self, policy: RoutePolicy, route: str, context: RoutingContext, request: ChatRequest,
        *, models: tuple[str, ...] | None = None, max_cost_usd: float | None = None,
        stream: bool = False,
    ) -> Decision:
        """The plan of one call: which deployments, in which order, and why."""
        compiled = self._route(policy, route)
        experiment = compiled.experiment
        arm: str | None = None
        if experiment is not None:
            arm = self._assign(compiled, context)
            context.arm = arm
            compiled = compiled.arms[arm]
            name: str | None = experiment.name
        else:
            name = None
        policy = compiled.policy
        if models is not None:
            chain = self.registry.chain(models)
            return Decision(chain, policy, "explicit", stream=stream, experiment=name, arm=arm)
        if compiled.fixed and max_cost_usd is None:
            deployments: Sequence[Deployment] = compiled.candidates
            window = compiled.min_window
            fixed = compiled.fixed_attributes
            if window is not None and (prompt := estimate_messages(request.messages)) > window:
                deployments, fixed = _demote(deployments, prompt, set()), None
            return Decision(
                deployments, policy, "ordered", compiled.excluded, stream, name, arm,
                fixed_attributes=fixed,
            )
        prompt = estimate_messages(request.messages)
        info = RequestInfo(
            messages=request.messages, prompt_tokens=prompt,
            max_tokens=request.max_tokens, policy=policy, route=route, rng=self.rng,
            context=context, max_cost_usd=max_cost_usd, stream=stream,
        )
        reasons = dict(compiled.excluded)
        candidates: Sequence[Deployment] = compiled.candidates
        limit = policy.max_cost_usd if max_cost_usd is None else max_cost_usd
        if limit is not None:
            candidates = _within_cost(candidates, info, limit, reasons)
        ordered: Sequence[Deployment] = ()
        if candidates:
            ordered = await compiled.strategy.plan(candidates, info, self.state)
            slow: set[str] = set()
            if policy.max_latency is not None:
                slow = await self._slow(ordered, info, policy.max_latency)
            if slow or (compiled.min_window is not None and prompt > compiled.min_window):
                ordered = _demote(ordered, prompt, slow)
        return Decision(
            tuple(ordered), policy, compiled.strategy.name, reasons, stream, name, arm,
            info.tier, info.task,
        )

    def downgrade(self, decision: Decision, request: ChatRequest) -> None:
        """Re-sort the plan cheapest estimated call first (a budget near its limit); the
        dearer models stay as fallback."""
        info = RequestInfo(
            messages=request.messages, prompt_tokens=estimate_messages(request.messages),
            max_tokens=request.max_tokens, policy=decision.policy, route="", rng=self.rng,
        )
        decision.deployments = tuple(sorted(decision.deployments, key=lambda d: _cost_key(info, d)))
        decision.downgraded = True

    def _assign(self, compiled: _Route, context: RoutingContext) -> str:
        experiment = compiled.experiment
        assert experiment is not None
        if compiled.override_header is not None:
            forced = context.header(compiled.override_header)
            if forced is not None and forced in compiled.arms:
                return forced
        return experiment.assign(context.caller, self.rng)

    async def _slow(self, ordered: Sequence[Deployment], info: RequestInfo, limit: float) -> set[str]:
        stats = await self.state.latency(ordered, info)
        return {d.id for d, s in zip(ordered, stats, strict=True) if s is not None and s.mean > limit}

    # -- feedback ------------------------------------------------------------------------

    @property
    def counted(self) -> tuple[bool, bool] | None:
        """What an attempt starting now counts (in flight, per-minute usage), when some
        compiled route ranks by either; None otherwise. Read once per attempt, so a route
        compiled meanwhile cannot unbalance the counts."""
        figures = self._figures
        busy, usage = "in_flight" in figures, "usage" in figures
        return (busy, usage) if busy or usage else None

    async def begin(self, deployment_id: str, counted: tuple[bool, bool]) -> None:
        """An attempt starts (`counted` from `counted`)."""
        await self.state.started(deployment_id, in_flight=counted[0], usage=counted[1])

    async def end(self, deployment_id: str) -> None:
        """An attempt counted in flight ended, whatever its outcome."""
        await self.state.finished(deployment_id)

    def succeeded(
        self, deployment_id: str, admission: Admission, stream: bool, writes: Writes,
        failures: Any, seconds: float,
    ) -> Awaitable[None] | None:
        """Feed an attempt's success (it took `seconds`) to the breaker and, where some
        route ranks by it, the latency window: into the call's one write after it; what
        must be awaited now (a half-open probe closing its breaker), if anything.

        A stream's attempt ends at its first token, but its outcome is known only when it
        ends: a stream cut later is as much a failure. So a stream's success is left to
        `stream_ended`; its failures before the first token are counted as any other's
        (`health.failed`). `failures` is the consecutive-failure count read before the
        call (None: unknown)."""
        if stream:
            return None
        if "latency" in self._figures:
            self.state.observe_into(writes, deployment_id, seconds)
        if admission.probe:
            return self.health.succeeded(deployment_id, admission)
        self.health.success_writes(deployment_id, writes, reset=failures != 0)
        return None

    async def stream_ended(
        self, deployment_id: str, admission: Admission, ttft: float,
        error: UpstreamError | None, *, abandoned: bool = False,
    ) -> None:
        """A stream committed to `deployment_id` ended: done (`error` None), failed after
        its first token (`error`), or left by its consumer (`abandoned`, which says nothing
        about the deployment). Feeds the breaker and the time-to-first-token window."""
        if abandoned:
            await self.health.abandoned(deployment_id, admission)
        elif error is not None:
            await self.health.failed(deployment_id, admission, error.kind)
        else:
            if "latency" in self._figures:
                await self.state.observe_latency(deployment_id, ttft, stream=True)
            await self.health.succeeded(deployment_id, admission)

    def settle(
        self, decision: Decision, result: ChatResult | None, writes: Writes, *, ok: bool
    ) -> None:
        """Account a finished call into `writes`: tokens per deployment, arm figures.

        `result` is what was paid for, even when the call failed part-way (a stream cut
        after its first tokens); `ok` says whether it succeeded."""
        state = self.state
        if result is not None and not result.cached:
            usage = result.usage
            if usage.total_tokens and "usage" in self._figures:
                state.add_tokens(result.deployment, usage.total_tokens, writes)
        if decision.arm is not None and decision.experiment is not None:
            if not ok or result is None:
                state.add_arm(decision.experiment, decision.arm, writes, ok=False)
            else:
                state.add_arm(
                    decision.experiment, decision.arm, writes, ok=True, latency_s=result.latency_s,
                    cost_usd=result.cost_usd or 0.0, input_tokens=result.usage.input_tokens,
                    output_tokens=result.usage.output_tokens,
                )

    async def cooldowns(self) -> list[CooldownState]:
        return await self.health.states([d.id for d in self.registry.deployments])


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


def _within_cost(
    candidates: Sequence[Deployment], info: RequestInfo, limit: float, reasons: dict[str, str]
) -> list[Deployment]:
    kept: list[Deployment] = []
    for deployment in candidates:
        cost = info.cost(deployment)
        if cost is None:
            reasons[deployment.id] = "price unknown, so max_cost_usd cannot be checked"
        elif cost > limit:
            reasons[deployment.id] = f"estimated cost ${cost:.6f} over max_cost_usd ${limit:g}"
        else:
            kept.append(deployment)
    return kept


def _demote(ordered: Sequence[Deployment], prompt: int, slow: set[str]) -> list[Deployment]:
    """Move deployments whose context window is below the prompt estimate, or that are
    slower than max_latency, to the end, keeping order.

    Both are estimates, so such a deployment stays in the chain as a last resort rather
    than leaving the call with nothing.
    """
    keep: list[Deployment] = []
    demoted: list[Deployment] = []
    for deployment in ordered:
        window = deployment.context_window
        if (window is not None and window < prompt) or deployment.id in slow:
            demoted.append(deployment)
        else:
            keep.append(deployment)
    return keep + demoted


def _cost_key(info: RequestInfo, deployment: Deployment) -> tuple[bool, float]:
    cost = info.cost(deployment)
    return (cost is None, cost or 0.0)
