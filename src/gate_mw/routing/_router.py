"""The router: turns a route policy into a per-call plan, and feeds back what attempts showed.

Policies are compiled once (`_plan.py`); a decision then only does the per-call work:
estimated cost, the strategy's order, budget downgrade and soft demotions.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..chat._tokens import estimate_messages
from ..errors import UpstreamError
from ..policy import RoutePolicy
from ._experiments import Experiments
from ._health import Admission, Breaker, CooldownState, Health
from ._plan import Decision, Route, Routes
from ._request import RequestInfo
from ._state import RoutingState

if TYPE_CHECKING:
    from .._context import RoutingContext
    from .._registry import Deployment, ModelRegistry
    from ..providers import ChatRequest
    from ..results import ChatResult
    from ..state import StateStore, Writes

__all__ = ["Decision", "Router"]


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
        self.routes = Routes(registry, self.experiments)

    # -- compiling policies --------------------------------------------------------------
    def compile(self, policy: RoutePolicy, route: str) -> None:
        """Check `policy` against the models and keep its compiled form; PolicyError naming
        the route and field otherwise."""
        self.routes.compile(policy, route)

    # -- deciding ------------------------------------------------------------------------

    async def decide(
        self, policy: RoutePolicy, route: str, context: RoutingContext, request: ChatRequest,
        *, models: tuple[str, ...] | None = None, max_cost_usd: float | None = None,
        stream: bool = False,
    ) -> Decision:
        """The plan of one call: which deployments, in which order, and why."""
        compiled = self.routes.get(policy, route)
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
        if compiled.fixed is not None and max_cost_usd is None:
            fixed = compiled.fixed[stream]
            deployments: Sequence[Deployment] = compiled.candidates
            window = compiled.min_window
            # Demoting the only deployment would leave the plan as it is: no estimate then.
            if (
                window is not None and len(deployments) > 1
                and (prompt := estimate_messages(request.messages)) > window
            ):
                deployments = _demote(deployments, prompt, set())
                return Decision(deployments, policy, "ordered", compiled.excluded, stream, name, arm)
            if arm is None:
                return fixed
            return Decision(
                deployments, policy, "ordered", compiled.excluded, stream, name, arm, reads=fixed.reads
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

    def downgrade(self, decision: Decision, request: ChatRequest) -> Decision:
        """`decision` with its plan re-sorted cheapest estimated call first (a budget near
        its limit); the dearer models stay as fallback."""
        info = RequestInfo(
            messages=request.messages, prompt_tokens=estimate_messages(request.messages),
            max_tokens=request.max_tokens, policy=decision.policy, route="", rng=self.rng,
        )
        return dataclasses.replace(
            decision, deployments=tuple(sorted(decision.deployments, key=lambda d: _cost_key(info, d))),
            downgraded=True,
        )

    def _assign(self, compiled: Route, context: RoutingContext) -> str:
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
        return self.routes.counted

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
        if "latency" in self.routes.figures:
            self.state.observe_into(writes, deployment_id, seconds)
        if admission.probe:
            return self.health.succeeded(deployment_id, admission)
        self.health.success(deployment_id, writes, reset=failures != 0)
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
            if "latency" in self.routes.figures:
                await self.state.observe_latency(deployment_id, ttft, stream=True)
            await self.health.succeeded(deployment_id, admission)

    def settle(
        self, decision: Decision, result: ChatResult | None, writes: Writes, *, ok: bool
    ) -> None:
        """Account a finished call into `writes`: tokens per deployment, arm figures.

        `result` is what was paid for, even when the call failed part-way (a stream cut
        after its first tokens); `ok` says whether it succeeded."""
        state = self.state
        if "usage" in self.routes.figures and result is not None and not result.cached:
            usage = result.usage
            if tokens := usage.input_tokens + usage.output_tokens:
                state.add_tokens(result.deployment, tokens, writes)
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
