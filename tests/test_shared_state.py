"""Routing state shared through one Redis by two gateways (two replicas in one process):
experiment summaries, cooldowns and latency figures read the shared view."""

from __future__ import annotations

import uuid

import pytest

from _apps import MESSAGES, make_gateway, openai_entry
from _stores import REDIS_URL
from gate_mw import Breaker, Experiment, Gateway, RoutePolicy
from gate_mw.state import RedisStore
from gate_mw.testing import FakeUpstream, Fault

pytestmark = pytest.mark.anyio
POLICY = RoutePolicy(
    models=("s-a",), retries=0,
    experiment=Experiment("shared", arms={"a": "s-a", "b": "s-b"}, override_header=None),
)


def replica(up: FakeUpstream, prefix: str) -> Gateway:
    entries = [openai_entry(up, "s-a"), openai_entry(up, "s-b"), openai_entry(up, "s-flaky")]
    store = RedisStore(REDIS_URL, prefix=prefix, timeout=2.0)
    return make_gateway(entries, state=store, breaker=Breaker(failures=1, cooldown=600))


async def test_two_gateways_on_one_redis_share_arms_cooldowns_and_latency(
    fake_upstream: FakeUpstream,
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    first, second = replica(fake_upstream, prefix), replica(fake_upstream, prefix)
    async with first, second:
        for i in range(10):
            gateway = first if i % 2 else second
            await gateway.client(POLICY, caller=f"user-{i}").chat(MESSAGES)
        await first.state.flush()
        await second.state.flush()
        for gateway in (first, second):
            summary = await gateway.experiments.summary("shared")
            assert sum(arm.calls for arm in summary.values()) == 10

        fake_upstream.set_default("s-flaky", Fault(500))
        with pytest.raises(Exception, match="attempts failed"):
            await first.client(RoutePolicy(models=("s-flaky",), retries=0)).chat(MESSAGES)
        states = {state.deployment: state.state for state in await second.cooldowns()}
        assert states["s-flaky"] == "open"

        await first.router.state.observe_latency("s-a", 0.25)
        (stats,) = await second.router.state.latency([second.registry.by_alias["s-a"][0]])
        assert stats is not None
        assert stats.mean == pytest.approx(0.25)
