"""A finished call reaches the report counters in one store operation, whichever store holds them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from gate_mw.insights import Insights
from gate_mw.state import MemoryStore, Writes

pytestmark = pytest.mark.anyio


class _Counting(MemoryStore):
    def __init__(self) -> None:
        super().__init__(clock=lambda: 1_800_000_000.0)
        self.operations: list[str] = []

    async def incr(self, deltas: Mapping[str, float], *, ttl: float | None = None) -> list[float]:
        self.operations.append("incr")
        return await super().incr(deltas, ttl=ttl)

    async def write(self, writes: Writes) -> None:
        self.operations.append("write")
        await super().write(writes)

    async def get(self, key: str) -> Any:
        self.operations.append("get")
        return await super().get(key)

    async def compare_and_set(self, key: str, expected: Any, value: Any, *, ttl: float | None = None) -> bool:
        self.operations.append("compare_and_set")
        return await super().compare_and_set(key, expected, value, ttl=ttl)


class _Decision:
    experiment = "exp"
    arm = "b"
    deployments = ()


async def test_a_call_is_one_write_once_its_group_is_known() -> None:
    store = _Counting()
    insights = Insights(store, [])
    await insights.record("/chat", "ann", _Decision(), None, ok=False, latency_s=0.2)
    # The first call also registers its group (a read and a compare-and-set).
    assert store.operations.count("write") == 1
    assert "incr" not in store.operations
    store.operations.clear()
    await insights.record("/chat", "ann", _Decision(), None, ok=False, latency_s=0.3)
    assert store.operations == ["write"]
    report = await insights.report("hour")
    (row,) = report.rows
    assert (row.calls, row.errors) == (2, 2)
    arm = await insights.counters.arm("exp", "b")
    assert (arm["calls"], arm["errors"]) == (2, 2)
