"""Helpers shared by the routing tests: a fake clock, priced entries, a chi-square check."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from _apps import openai_entry
from gate_mw import ModelEntry, PriceTable, RoutePolicy
from gate_mw._registry import Deployment, ModelRegistry
from gate_mw.chat._tokens import estimate_messages
from gate_mw.routing import RequestInfo
from gate_mw.testing import FakeUpstream

__all__ = [
    "FakeClock",
    "UpstreamTimer",
    "chi_square_ok",
    "deployments",
    "priced",
    "request_info",
    "stub_entry",
]

# Critical values of the chi-square distribution at p = 0.01, by degrees of freedom.
_CRITICAL_01 = {1: 6.635, 2: 9.210, 3: 11.345, 4: 13.277, 5: 15.086, 6: 16.812, 7: 18.475, 8: 20.090}


class FakeClock:
    """A clock that moves only when told: `clock.advance(30)`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class UpstreamTimer:
    """An attempt timer that moves only by the latency set for each model the fake
    upstream has received a request for since it was last read.

    Injected as the router's timer, it makes latency routing rank by set figures
    instead of by wall-clock readings, which a loaded machine skews.
    """

    def __init__(self, upstream: FakeUpstream, latencies: Mapping[str, float]) -> None:
        self.upstream = upstream
        self.latencies = dict(latencies)
        self.now = 0.0
        self._seen = len(upstream.requests)

    def __call__(self) -> float:
        arrived = self.upstream.requests[self._seen:]
        self._seen += len(arrived)
        self.now += sum(self.latencies[r.model or ""] for r in arrived)
        return self.now


def chi_square_ok(observed: Mapping[str, int], weights: Mapping[str, float]) -> tuple[bool, float]:
    """Whether `observed` counts fit the `weights` at p > 0.01, and the statistic."""
    total = sum(observed.values())
    weight_sum = sum(weights.values())
    statistic = 0.0
    for key, weight in weights.items():
        expected = total * weight / weight_sum
        statistic += (observed.get(key, 0) - expected) ** 2 / expected
    return statistic < _CRITICAL_01[len(weights) - 1], statistic


def priced(
    up: FakeUpstream, name: str, input_per_mtok: float, output_per_mtok: float, **fields: Any
) -> ModelEntry:
    """An entry on the fake upstream with the given prices per 1M tokens."""
    return openai_entry(
        up, name, input_cost_per_mtok=input_per_mtok, output_cost_per_mtok=output_per_mtok, **fields
    )


def deployments(entries: Sequence[ModelEntry]) -> list[Deployment]:
    """Deployments of `entries`, without providers: enough for a strategy's `plan`."""
    return ModelRegistry(entries, PriceTable.bundled(), source=None).deployments


def request_info(
    policy: RoutePolicy | None = None, *, prompt: str = "hi", max_tokens: int | None = 100,
    rng: random.Random | None = None, stream: bool = False,
) -> RequestInfo:
    messages = [{"role": "user", "content": prompt}]
    return RequestInfo(
        messages=messages, prompt_tokens=estimate_messages(messages), max_tokens=max_tokens,
        policy=policy or RoutePolicy(), route="test", rng=rng or random.Random(7), stream=stream,
    )


def stub_entry(name: str, **fields: Any) -> ModelEntry:
    """An entry for strategy-only tests, which never call it."""
    return ModelEntry(name=name, provider="openai", api_base="http://127.0.0.1:9", **fields)
