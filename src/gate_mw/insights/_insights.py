"""`Insights`: records every finished call into the state store and answers reports and
experiment statistics from it, so every replica sharing the store sees the same figures."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
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
        pending = self.count(route, caller, decision, result, ok, latency_s, writes)
        if pending is not None:
            await pending

    def count(
        self, route: str, caller: str | None, decision: _Decision | None,
        result: ChatResult | None, ok: bool, latency_s: float, writes: Writes | None,
    ) -> Awaitable[None] | None:
        """`record`, without a wait where none is needed: what must still be awaited (the
        group's first sight here, an experiment arm, a write of its own), if anything.
        Arguments by position: a gateway counts every call here (keywords cost ~200
        instructions a call)."""
        if result is not None:
            model, cost, usage = result.model, result.cost_usd or 0.0, result.usage
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        else:
            model = decision.deployments[0].alias if decision is not None and decision.deployments else _NONE
            cost, input_tokens, output_tokens = 0.0, 0, 0
        group = (caller or _NONE, route, model)
        counters = self.counters
        experiment = None if decision is None or decision.arm is None else decision.experiment
        # Most calls: a known group, no experiment, counted in place or into the call's write.
        if experiment is None and counters.count(
            group, ok, cost, input_tokens, output_tokens, latency_s, writes
        ):
            return None
        return self._record(group, (ok, cost, input_tokens, output_tokens, latency_s), decision, writes)

    async def _record(
        self, group: tuple[str, str, str], figures: tuple[bool, float, int, int, float],
        decision: _Decision | None, writes: Writes | None,
    ) -> None:
        """`count`'s other calls: registers a group seen first here, and without `writes`,
        sends what is not counted in place in one write of its own."""
        counters = self.counters
        # Rows are counted in place; keys go in the call's write or, without one (the
        # counters have a store of their own), in one write here.
        batch = writes if writes is not None or counters.rows else Writes()
        if not counters.count(group, *figures, batch):  # first sight here: register it
            counters.count(group, *figures, batch, gid=await counters.register(group))
        if decision is not None and decision.experiment is not None and decision.arm is not None:
            ok, cost, _input, _output, latency_s = figures
            if batch is None:
                batch = Writes()
            await counters.add_arm(
                decision.experiment, decision.arm, ok=ok, cost=cost, latency_s=latency_s, writes=batch
            )
        if writes is None and batch:
            await counters.store.write(batch)

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
