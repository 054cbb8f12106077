"""A/B experiments: sticky weighted assignment, override header, and per-arm figures in
spans, response headers, metrics and `gateway.experiments.summary`."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from _apps import build_app, make_gateway, openai_entry, serve
from _routing import chi_square_ok, priced
from conftest import Telemetry
from gate_mw import Breaker, Experiment, PolicyError, RoutePolicy
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio

WEIGHTS = {"a": 1.0, "b": 2.0, "c": 7.0}


def three_arms(salt: str = "") -> Experiment:
    return Experiment("homepage", arms={"a": "m-a", "b": "m-b", "c": "m-c"}, weights=WEIGHTS, salt=salt)


# -- assignment ----------------------------------------------------------------------------


def test_arm_weights_hold_over_10000_callers() -> None:
    experiment = three_arms()
    counts = Counter(experiment.assign(f"user-{i}", random.Random(0)) for i in range(10_000))
    ok, statistic = chi_square_ok(counts, WEIGHTS)
    assert ok, f"chi-square {statistic:.2f} over the p=0.01 critical value; counts {counts}"


def test_requests_without_a_caller_get_a_random_arm_by_weight() -> None:
    experiment = three_arms()
    rng = random.Random(3)
    counts = Counter(experiment.assign(None, rng) for _ in range(10_000))
    ok, statistic = chi_square_ok(counts, WEIGHTS)
    assert ok, f"chi-square {statistic:.2f}; counts {counts}"


def test_a_caller_always_gets_the_same_arm() -> None:
    experiment = three_arms()
    again = three_arms()  # a new object (another process, a restart): same name and salt
    for i in range(2_000):
        caller = f"tenant-{i}"
        arm = experiment.assign(caller, random.Random(i))
        assert experiment.assign(caller, random.Random(i + 1)) == arm
        assert again.assign(caller, random.Random(0)) == arm


def test_changing_the_salt_reshuffles_callers() -> None:
    even = {"a": 1.0, "b": 1.0}
    before = Experiment("checkout", arms={"a": "m-a", "b": "m-b"}, weights=even)
    after = Experiment("checkout", arms={"a": "m-a", "b": "m-b"}, weights=even, salt="round-2")
    callers = [f"user-{i}" for i in range(10_000)]
    old = [before.assign(c, random.Random(0)) for c in callers]
    new = [after.assign(c, random.Random(0)) for c in callers]
    moved = sum(o != n for o, n in zip(old, new, strict=True)) / len(callers)
    assert 0.45 < moved < 0.55  # independent 50/50 draws: half the callers change arm
    assert chi_square_ok(Counter(new), even)[0]


# -- through the gateway -------------------------------------------------------------------


def experiment_gateway(up: FakeUpstream, telemetry: Telemetry) -> Any:
    up.set_default("ex-a", Reply(latency=0.0, input_tokens=100, output_tokens=50))
    up.script("ex-b", Fault(500), Fault(500))  # arm b's first two calls fail
    up.set_default("ex-b", Reply(latency=0.08, input_tokens=100, output_tokens=50))
    return make_gateway(
        [priced(up, "ex-a", 1.0, 2.0), priced(up, "ex-b", 10.0, 20.0)],
        telemetry=telemetry.config, breaker=Breaker(failures=10),
    )


EXPERIMENT = Experiment("summary-style", arms={"a": "ex-a", "b": "ex-b"}, weights={"a": 1, "b": 1})


async def test_arms_show_on_headers_spans_metrics_and_in_the_summary(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    gateway = experiment_gateway(fake_upstream, telemetry)
    app = build_app(gateway, {"models": ["ex-a"], "retries": 0, "experiment": EXPERIMENT})
    callers = [f"caller-{i}" for i in range(16)]
    expected = {caller: EXPERIMENT.assign(caller, random.Random(0)) for caller in callers}
    assert set(expected.values()) == {"a", "b"}
    costs = {"a": 0.0, "b": 0.0}
    async with serve(app) as client:
        for round_ in range(2):
            for caller in callers:
                response = await client.post("/chat", json={}, headers={"x-gate-caller": caller})
                arm = expected[caller]
                assert response.headers["x-gate-arm"] == arm  # sticky across rounds
                if response.status_code == 200:
                    assert response.json()["model"] == f"ex-{arm}"
                    costs[arm] += float(response.headers["x-gate-cost-usd"])
                else:
                    assert (arm, round_, response.status_code) == ("b", 0, 502)
        summary = await gateway.experiments.summary("summary-style")

    calls = Counter(expected.values())
    a, b = summary["a"], summary["b"]
    assert (a.calls, b.calls) == (2 * calls["a"], 2 * calls["b"])
    assert (a.errors, b.errors) == (0, 2)
    assert b.error_rate == pytest.approx(2 / b.calls)
    assert a.mean_latency_s is not None
    assert b.mean_latency_s is not None
    assert b.mean_latency_s > 0.08 > a.mean_latency_s
    assert a.cost_usd == pytest.approx(costs["a"])
    assert b.cost_usd == pytest.approx(costs["b"])
    assert (a.input_tokens, a.output_tokens) == (100 * a.calls, 50 * a.calls)

    routes = telemetry.spans("gate.route")
    assert Counter(span.attributes["gate.experiment.arm"] for span in routes) == {  # type: ignore[index]
        arm: 2 * n for arm, n in calls.items()
    }
    assert {span.attributes["gate.experiment.name"] for span in routes} == {"summary-style"}  # type: ignore[index]
    points = telemetry.points("gen_ai.client.operation.duration")
    arms = {point.attributes.get("gate.experiment.arm") for point in points}  # type: ignore[attr-defined]
    assert arms == {"a", "b"}


async def test_the_override_header_picks_an_arm_for_testing(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    gateway = make_gateway([openai_entry(up, "ex-a"), openai_entry(up, "ex-b")], telemetry=telemetry.config)
    app = build_app(gateway, {"models": ["ex-a"], "experiment": EXPERIMENT})
    caller = next(c for c in (f"u{i}" for i in range(100)) if EXPERIMENT.assign(c, random.Random(0)) == "a")
    async with serve(app) as client:
        forced = await client.post("/chat", json={}, headers={"x-gate-caller": caller, "x-gate-arm": "b"})
        bogus = await client.post("/chat", json={}, headers={"x-gate-caller": caller, "x-gate-arm": "zz"})
    assert (forced.headers["x-gate-arm"], forced.json()["model"]) == ("b", "ex-b")
    assert (bogus.headers["x-gate-arm"], bogus.json()["model"]) == ("a", "ex-a")


async def test_an_arm_may_change_the_strategy_and_other_policy_fields(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    gateway = make_gateway(
        [priced(up, "ar-dear", 10.0, 20.0), priced(up, "ar-cheap", 0.1, 0.2)], telemetry=telemetry.config
    )
    experiment = Experiment(
        "strategy-trial",
        arms={"control": ["ar-dear", "ar-cheap"], "cost": {"strategy": "cost", "retries": 0}},
    )
    policy = RoutePolicy(models=("ar-dear", "ar-cheap"), experiment=experiment)
    async with gateway:
        for arm in ("control", "cost"):
            gate = gateway.client(policy)
            gate.context.scope["headers"] = [(b"x-gate-arm", arm.encode())]
            result = await gate.chat([{"role": "user", "content": "hi"}])
            assert result.arm == arm
            assert result.model == ("ar-dear" if arm == "control" else "ar-cheap")
    strategies = [span.attributes["gate.strategy"] for span in telemetry.spans("gate.route")]  # type: ignore[index]
    assert strategies == ["ordered", "cost"]


async def test_experiment_names_are_unique_per_gateway(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "m-a"), openai_entry(fake_upstream, "m-b")])
    gateway.validate_policy(RoutePolicy(experiment=Experiment("x", arms={"a": "m-a"})), "first")
    gateway.validate_policy(RoutePolicy(experiment=Experiment("x", arms={"a": "m-a"})), "same")
    with pytest.raises(PolicyError) as caught:
        gateway.validate_policy(RoutePolicy(experiment=Experiment("x", arms={"b": "m-b"})), "other")
    assert (caught.value.route, caught.value.field) == ("other", "experiment.name")
    with pytest.raises(KeyError):
        await gateway.experiments.summary("never-declared")


def test_arms_cannot_change_request_settings(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "m-a")])
    experiment = Experiment("settings", arms={"a": {"max_tokens": 10}, "b": "m-a"})
    with pytest.raises(PolicyError) as caught:
        gateway.validate_policy(RoutePolicy(experiment=experiment), "route")
    assert caught.value.field == "experiment.arms.a.max_tokens"
