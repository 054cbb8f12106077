"""`Insights`: records every finished call into the state store and answers reports and
experiment statistics from it, so every replica sharing the store sees the same figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..state import Writes
from ._store import Counters

if TYPE_CHECKING:
    from ..results import ChatResult
    from ..state import StateStore
    from ._experiments import ExperimentStats
    from ._report import Report

__all__ = ["Insights"]

_NONE = "(none)"


class _Decision(Protocol):
    """What a routing decision tells: the plan's models, and the experiment arm."""

    @property
    def experiment(self) -> str | None: ...
    @property
    def arm(self) -> str | None: ...
    @property
    def deployments(self) -> Sequence[_Deployment]: ...


class _Deployment(Protocol):
    @property
    def alias(self) -> str: ...


class _Experiment(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def arms(self) -> Iterable[str]: ...


class Insights:
    """Spend, calls, tokens, errors and latency per (caller, route, model) in time buckets,
    and per experiment arm. At most `max_groups` groups are kept (the rest count as one
    "(other)" group); bucket counters expire with their bucket."""

    def __init__(
        self, store: StateStore, experiments: Iterable[_Experiment], *, max_groups: int = 500
    ) -> None:
        self.counters = Counters(store, max_groups=max_groups)
        self._experiments = experiments

    async def record(
        self, route: str, caller: str | None, decision: _Decision | None,
        result: ChatResult | None, *, ok: bool, latency_s: float, writes: Writes | None = None,
    ) -> None:
        """Count one finished call. The model is the one that answered, else the first
        of the plan; `result` is what was paid for (a cut stream's part, too). With
        `writes`, the counts join the call's one write after it."""
        if result is not None:
            model = result.model
        elif decision is not None and decision.deployments:
            model = decision.deployments[0].alias
        else:
            model = _NONE
        cost = (result.cost_usd or 0.0) if result is not None else 0.0
        usage = result.usage if result is not None else None
        # Without the call's writes (the counters have a store of their own), one write here.
        batch = Writes() if writes is None else writes
        await self.counters.add(
            (caller or _NONE, route, model), ok=ok, cost=cost,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0, latency_s=latency_s, writes=batch,
        )
        if decision is not None and decision.experiment is not None and decision.arm is not None:
            await self.counters.add_arm(
                decision.experiment, decision.arm, ok=ok, cost=cost, latency_s=latency_s, writes=batch
            )
        if writes is None:
            await self.counters.store.write(batch)

    async def report(
        self, window: str = "day", by: Sequence[str] = ("caller", "route", "model")
    ) -> Report:
        from ._report import build_report  # here: a gateway records calls without reading reports

        return await build_report(self.counters, window, by)

    def experiment_names(self) -> list[str]:
        return [experiment.name for experiment in self._experiments]

    async def experiment(self, name: str, control: str | None = None) -> ExperimentStats:
        """Statistics of the experiment `name` (KeyError if no route declares it)."""
        from ._experiments import experiment_stats  # here, as `build_report` above

        for experiment in self._experiments:
            if experiment.name == name:
                return await experiment_stats(self.counters, name, list(experiment.arms), control)
        raise KeyError(f"no route declares experiment {name!r}")
