"""In a `MemoryStore`, a group's report counters of one bucket are one row, updated in place;
any other store keeps one counter per field, as a shared store does."""

from __future__ import annotations

import pytest

from _stores import store  # noqa: F401 (fixture)
from gate_mw.insights import Insights
from gate_mw.state import MemoryStore, StateStore

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


class _Watched(MemoryStore):
    """A subclass may watch or change operations: it gets the per-field keys."""


async def _record_three(insights: Insights) -> None:
    await insights.record("/chat", "ann", None, None, ok=True, latency_s=0.05)
    await insights.record("/chat", "ann", None, None, ok=False, latency_s=0.3)
    await insights.record("/chat", "bob", None, None, ok=True, latency_s=0.05)


async def test_rows_and_keys_report_the_same() -> None:
    rows, keys = MemoryStore(clock=lambda: NOW), _Watched(clock=lambda: NOW)
    found = []
    for each in (rows, keys):
        insights = Insights(each, [])
        await _record_three(insights)
        report = await insights.report("hour", by=("caller",))
        found.append([(r.group, r.calls, r.errors, r.latency_p50_s) for r in report.rows])
    assert found[0] == found[1]
    assert found[0][0][:3] == ({"caller": "ann"}, 2, 1)
    # The group list, then per group one row per granularity (five-minute and hourly).
    assert rows.counts == (1 + 2 * 2, 0)
    # Per granularity: ann's calls, errors and two latency buckets; bob's calls and one.
    assert keys.counts == (1 + 2 * (4 + 2), 0)


async def test_every_store_reports_the_same_counts(store: StateStore) -> None:  # noqa: F811
    insights = Insights(store, [])
    await _record_three(insights)
    await store.flush()  # a shared store sends writes behind the calls
    report = await insights.report("day", by=("caller",))
    found = {row.group["caller"]: (row.calls, row.errors) for row in report.rows}
    assert found == {"ann": (2, 1), "bob": (1, 0)}


async def test_a_row_expires_and_starts_again_from_zero() -> None:
    clock = [NOW]
    memory = MemoryStore(clock=lambda: clock[0])
    row = memory.row("r", 3, ttl=10.0, now=clock[0])
    row[1] += 2.0
    assert memory.row("r", 3, ttl=10.0, now=clock[0]) is row
    assert await memory.get("r") == [0.0, 2.0, 0.0]
    clock[0] += 11.0
    assert await memory.get("r") is None
    assert memory.row("r", 3, ttl=10.0, now=clock[0]) == [0.0, 0.0, 0.0]


async def test_rows_count_against_the_bound_least_recently_used_first() -> None:
    memory = MemoryStore(max_keys=2, clock=lambda: NOW)
    for key in ("a", "b"):
        memory.row(key, 1, ttl=60.0, now=NOW)[0] += 1.0
    memory.row("a", 1, ttl=60.0, now=NOW)  # used again: "b" is now the oldest
    memory.row("c", 1, ttl=60.0, now=NOW)
    assert memory.counts == (2, 0)
    assert await memory.get_many(["a", "b", "c"]) == [[1.0], None, [0.0]]
