"""Routing figures kept in a `StateStore`: latency windows, in-flight calls, usage per
minute and per-arm experiment counts. One place owns the key names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

from ..state import Observation, ewma

if TYPE_CHECKING:
    from .._registry import Deployment
    from ..state import StateStore, Writes
    from ._request import RequestInfo

__all__ = ["ALL_FIGURES", "Figure", "LatencyStats", "RoutingState"]

#: What attempts can feed: latency windows, calls in flight, requests and tokens per minute.
Figure = Literal["latency", "in_flight", "usage"]
ALL_FIGURES: frozenset[Figure] = frozenset({"latency", "in_flight", "usage"})

_Z95 = 1.645  # one-sided 95 % quantile of the normal distribution
_MINUTE = 60.0
_ARM_FIELDS = ("calls", "errors", "latency_s", "cost_usd", "input_tokens", "output_tokens")


class LatencyStats(NamedTuple):
    """A deployment's recent latency: exponentially weighted mean and variance, from
    `samples` observations, the last at `updated` (store clock)."""

    mean: float
    variance: float
    samples: int
    updated: float

    @property
    def p95(self) -> float:
        """Estimated 95th percentile: mean + 1.645 weighted standard deviations."""
        return self.mean + _Z95 * math.sqrt(self.variance)


class RoutingState:
    """Reads and updates the figures strategies rank by.

    Latency is an EWMA whose old weight also halves every `half_life` seconds, so a
    deployment seen again after a while is judged mostly on its new answer.
    """

    __slots__ = ("alpha", "half_life", "latency_ttl", "store")

    def __init__(
        self, store: StateStore, *, alpha: float = 0.3, half_life: float = 60.0,
        latency_ttl: float = 3600.0,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self.store = store
        self.alpha = alpha
        self.half_life = half_life
        self.latency_ttl = latency_ttl

    def now(self) -> float:
        return self.store.clock()

    # -- latency -------------------------------------------------------------------------

    async def latency(
        self, deployments: Sequence[Deployment], request: RequestInfo | None = None, *,
        stream: bool = False,
    ) -> list[LatencyStats | None]:
        """Recent latency of each deployment (time to first token for streams); None if unseen.

        With `request`, its `stream` decides which, and figures read once are reused for
        the rest of its decision.
        """
        ids = [d.id for d in deployments]
        if request is not None:
            stream = request.stream
            memo = request.latencies
            if memo and all(i in memo for i in ids):
                return [memo[i] for i in ids]
        prefix = "ttft:" if stream else "lat:"
        raw = await self.store.get_many([prefix + i for i in ids])
        # The memory store hands back the stored LatencyStats itself; a shared one, lists.
        found = [r if r is None or type(r) is LatencyStats else LatencyStats(*r) for r in raw]
        if request is not None:
            memo.update(zip(ids, found, strict=True))
        return found

    def _observation(self, deployment_id: str, seconds: float, stream: bool) -> tuple[str, Observation]:
        key = ("ttft:" if stream else "lat:") + deployment_id
        return key, Observation(seconds, self.alpha, self.half_life, self.latency_ttl)

    async def observe_latency(self, deployment_id: str, seconds: float, *, stream: bool = False) -> None:
        key, sample = self._observation(deployment_id, seconds, stream)
        store = self.store
        for _ in range(3):  # lost races only lose one sample
            old = await store.get(key)
            new = LatencyStats(*ewma(old, sample, store.clock()))
            if await store.compare_and_set(key, old, new, ttl=self.latency_ttl):
                return

    def observe_into(
        self, writes: Writes, deployment_id: str, seconds: float, *, stream: bool = False
    ) -> None:
        """`observe_latency` as part of a call's one write after it (atomic in the store)."""
        writes.observe(*self._observation(deployment_id, seconds, stream))

    # -- load ----------------------------------------------------------------------------

    def _minute(self) -> int:
        return int(self.store.clock() // _MINUTE)

    async def in_flight(self, deployments: Sequence[Deployment]) -> list[int]:
        raw = await self.store.get_many(["busy:" + d.id for d in deployments])
        return [int(value or 0) for value in raw]

    async def usage(self, deployments: Sequence[Deployment]) -> list[tuple[int, int]]:
        """(requests, tokens) of each deployment in the current minute."""
        minute = self._minute()
        keys: list[str] = []
        for d in deployments:
            keys.append(f"req:{d.id}:{minute}")
            keys.append(f"tok:{d.id}:{minute}")
        raw = await self.store.get_many(keys)
        return [(int(raw[i] or 0), int(raw[i + 1] or 0)) for i in range(0, len(raw), 2)]

    async def started(self, deployment_id: str, *, in_flight: bool = True, usage: bool = True) -> None:
        """An attempt on the deployment begins: one more in flight and one more request
        this minute (each only if asked)."""
        store = self.store
        if in_flight:
            await store.incr({"busy:" + deployment_id: 1})
        if usage:
            await store.incr({f"req:{deployment_id}:{self._minute()}": 1}, ttl=2 * _MINUTE)

    async def finished(self, deployment_id: str) -> None:
        await self.store.incr({"busy:" + deployment_id: -1})

    def add_tokens(self, deployment_id: str, tokens: int, writes: Writes) -> None:
        writes.add(f"tok:{deployment_id}:{self._minute()}", tokens, 2 * _MINUTE)

    # -- experiments ---------------------------------------------------------------------

    def add_arm(
        self, experiment: str, arm: str, writes: Writes, *, ok: bool, latency_s: float = 0.0,
        cost_usd: float = 0.0, input_tokens: int = 0, output_tokens: int = 0,
    ) -> None:
        prefix = f"arm:{experiment}:{arm}:"
        values = (1, 0 if ok else 1, latency_s, cost_usd, input_tokens, output_tokens)
        for name, value in zip(_ARM_FIELDS, values, strict=True):
            if value:
                writes.add(prefix + name, value)

    async def arm_counts(self, experiment: str, arm: str) -> dict[str, float]:
        prefix = f"arm:{experiment}:{arm}:"
        raw = await self.store.get_many([prefix + name for name in _ARM_FIELDS])
        return {name: float(value or 0) for name, value in zip(_ARM_FIELDS, raw, strict=True)}
