"""Reports and experiment statistics, read back from the state store."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _apps import MESSAGES, make_gateway, openai_entry
from gate_mw import AllAttemptsFailed, Gateway
from gate_mw.insights import Insights
from gate_mw.insights._stats import DURATION_BUCKETS, bucket_of, percentile
from gate_mw.routing import MemoryStore
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class _Experiment:
    name: str
    arms: tuple[str, ...]


def _gateways(up: FakeUpstream, store: MemoryStore) -> tuple[Gateway, Gateway]:
    """Two replicas sharing one state store."""
    entries = [openai_entry(up, "cheap", "gpt-4o-mini"), openai_entry(up, "dear", "gpt-4o")]
    return make_gateway(entries, state=store), make_gateway(entries, state=store)


async def test_report_groups_calls_across_replicas(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default("gpt-4o-mini", Reply("a", input_tokens=100, output_tokens=10))
    up.set_default("gpt-4o", Reply("b", input_tokens=1000, output_tokens=100))
    store = MemoryStore(clock=Clock())
    one, two = _gateways(up, store)
    async with one, two:
        for _ in range(3):
            await one.client(route="summary", caller="alice").chat(MESSAGES, model="cheap")
        await two.client(route="summary", caller="bob").chat(MESSAGES, model="dear")
        up.set_default("gpt-4o", Fault(500))
        with pytest.raises(AllAttemptsFailed):
            await two.client(route="ask", caller="bob").chat(MESSAGES, model="dear")
        report = await one.report(window="day", by=("caller", "route", "model"))
        by_model = await two.report(window="hour", by=("model",))

    rows = {tuple(row.group.values()): row for row in report.rows}
    assert set(rows) == {("alice", "summary", "cheap"), ("bob", "summary", "dear"), ("bob", "ask", "dear")}
    alice = rows["alice", "summary", "cheap"]
    assert (alice.calls, alice.errors, alice.input_tokens, alice.output_tokens) == (3, 0, 300, 30)
    assert alice.cost_usd > 0
    assert sum(alice.spend) == pytest.approx(alice.cost_usd)
    assert alice.latency_p50_s is not None
    assert 0 < alice.latency_p50_s <= DURATION_BUCKETS[-1]
    failed = rows["bob", "ask", "dear"]
    assert (failed.calls, failed.errors, failed.cost_usd, failed.error_rate) == (1, 1, 0.0, 1.0)
    assert report.rows[0].group["model"] == "dear"  # by spend, dearest first
    models = {row.group["model"]: row.calls for row in by_model.rows}
    assert models == {"cheap": 3, "dear": 2}
    assert by_model.cost_usd == pytest.approx(report.cost_usd)
    assert len(by_model.bucket_starts) == 12  # five-minute buckets over the hour


async def test_report_buckets_expire_and_windows_are_checked() -> None:
    clock = Clock()
    insights = Insights(MemoryStore(clock=clock), [])
    await insights.record("r", "c", None, None, ok=False, latency_s=0.5)
    assert len((await insights.report("day")).rows) == 1
    clock.now += 2 * 86400
    assert (await insights.report("day")).rows == ()
    assert len((await insights.report("week")).rows) == 1
    clock.now += 9 * 86400
    assert (await insights.report("week")).rows == ()
    with pytest.raises(ValueError, match="window must be one of hour, day, week"):
        await insights.report("month")
    with pytest.raises(ValueError, match="'tenant' is not one of caller, route, model"):
        await insights.report("day", by=("tenant",))


async def test_groups_are_bounded_the_rest_counts_as_other() -> None:
    store = MemoryStore()
    insights = Insights(store, [], max_groups=3)
    for caller in ("a", "b", "c", "d", "e"):
        await insights.record("r", caller, None, None, ok=True, latency_s=0.1)
    report = await insights.report("day", by=("caller",))
    assert {row.group["caller"]: row.calls for row in report.rows} == {"a": 1, "b": 1, "(other)": 3}
    assert len(await insights.counters.groups()) == 3


def _simulate(arms: dict[str, float], n: int, seed: int) -> list[tuple[str, float, float]]:
    rng = random.Random(seed)
    calls = []
    for arm, mean_cost in arms.items():
        for _ in range(n):
            # Costs spread like real calls: gamma-distributed around the arm's mean.
            calls.append((arm, rng.gammavariate(4.0, mean_cost / 4.0), rng.lognormvariate(-1.0, 0.4)))
    return calls


async def _record(insights: Insights, calls: list[tuple[str, float, float]], errors: int = 0) -> None:
    for index, (arm, cost, latency) in enumerate(calls):
        ok = index % 50 >= errors
        await insights.counters.add_arm("exp", arm, ok=ok, cost=cost, latency_s=latency)


async def test_a_true_30_percent_cost_difference_is_found_and_covered() -> None:
    insights = Insights(MemoryStore(), [_Experiment("exp", ("A", "B"))])
    await _record(insights, _simulate({"A": 0.010, "B": 0.007}, 800, seed=3))
    stats = await insights.experiment("exp")

    assert stats.control == "A"
    a, b = stats.arms["A"], stats.arms["B"]
    assert a.calls == b.calls == 800
    assert a.mean_cost_usd is not None
    assert a.mean_cost_usd.low < 0.010 < a.mean_cost_usd.high
    comparison = b.versus_control
    assert comparison is not None
    assert comparison.cost is not None
    assert comparison.cost.low < -0.30 < comparison.cost.high  # the interval covers the truth
    assert comparison.cost.high < 0  # and excludes "no difference"
    assert comparison.verdict.startswith("B is cheaper by ")
    assert "no difference in latency" in comparison.verdict
    assert a.latency_p50_s is not None
    assert a.latency_p95_s is not None
    assert a.latency_p50_s < a.latency_p95_s


async def test_an_a_a_test_says_no_difference() -> None:
    insights = Insights(MemoryStore(), [_Experiment("exp", ("A", "A2"))])
    await _record(insights, _simulate({"A": 0.010, "A2": 0.010}, 800, seed=5), errors=1)
    comparison = (await insights.experiment("exp")).arms["A2"].versus_control
    assert comparison is not None
    assert comparison.verdict.startswith("no difference in cost")
    assert "no difference in latency" in comparison.verdict
    assert "fails" not in comparison.verdict


async def test_few_calls_are_not_enough_data() -> None:
    insights = Insights(MemoryStore(), [_Experiment("exp", ("A", "B"))])
    await _record(insights, _simulate({"A": 0.010, "B": 0.005}, 5, seed=1))
    comparison = (await insights.experiment("exp", control="A")).arms["B"].versus_control
    assert comparison is not None
    assert comparison.verdict == "not enough data on cost yet; not enough data on latency yet"
    with pytest.raises(KeyError):
        await insights.experiment("nope")


@given(st.lists(st.floats(min_value=0.0, max_value=200.0), min_size=1, max_size=200), st.floats(0.0, 1.0))
def test_a_bucket_percentile_lies_in_the_bucket_of_the_true_one(samples: list[float], q: float) -> None:
    counts = [0.0] * (len(DURATION_BUCKETS) + 1)
    for sample in samples:
        counts[bucket_of(sample)] += 1
    estimate = percentile(counts, q)
    assert estimate is not None
    ordered = sorted(samples)
    true = ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 1)) - 1))]
    index = bucket_of(true)
    low = DURATION_BUCKETS[index - 1] if index else 0.0
    high = DURATION_BUCKETS[index] if index < len(DURATION_BUCKETS) else low
    assert low - 1e-9 <= estimate <= high + 1e-9


async def test_a_group_list_evicted_from_a_bounded_store_is_put_back() -> None:
    store = MemoryStore()
    insights = Insights(store, [])
    await insights.record("r", "alice", None, None, ok=True, latency_s=0.1)
    await store.set("ins:groups", None)  # as an LRU eviction would leave it
    [row] = (await insights.report("day")).rows
    assert (row.group["caller"], row.calls) == ("alice", 1)
