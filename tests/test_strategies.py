"""Routing strategies end to end: gateway -> real HTTP -> FakeUpstream with per-model latency
and faults, and each strategy's `plan` on its own where that is the clearer test."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

from _apps import build_app, make_gateway, openai_entry, serve
from _routing import FakeClock, UpstreamTimer, chi_square_ok, deployments, priced, request_info, stub_entry
from conftest import Telemetry
from gate_mw import Gateway, NoCandidates, PolicyError, RoutePolicy, route_policy
from gate_mw._registry import Deployment
from gate_mw.chat._tokens import estimate_messages
from gate_mw.routing import (
    CostStrategy,
    LatencyStrategy,
    RequestInfo,
    RoutingState,
    ShuffleStrategy,
    Strategy,
    TaskStrategy,
    register_strategy,
)
from gate_mw.state import MemoryStore
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def first_tried(result: Any) -> str:
    return str(result.attempts[0].deployment)


def route_span_attributes(telemetry: Telemetry) -> dict[str, Any]:
    span = telemetry.spans("gate.route")[-1]
    return dict(span.attributes or {})


# -- ordered -------------------------------------------------------------------------------


async def test_ordered_walks_the_declared_chain_and_the_span_says_so(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    up.set_default("or-a", Fault(500))
    gateway = make_gateway(
        [openai_entry(up, "or-a"), openai_entry(up, "or-b")], telemetry=telemetry.config
    )
    async with gateway:
        result = await gateway.client(RoutePolicy(models=("or-a", "or-b"), retries=0)).chat(user("hi"))
    assert [attempt.deployment for attempt in result.attempts] == ["or-a", "or-b"]
    attributes = route_span_attributes(telemetry)
    assert attributes["gate.strategy"] == "ordered"
    assert attributes["gate.candidates"] == ("or-a", "or-b")
    assert attributes["gate.deployment"] == "or-b"


# -- cost ----------------------------------------------------------------------------------

COST_MODELS = {  # name: (input, output USD per 1M tokens, quality)
    "c-nano": (0.1, 0.4, 1),
    "c-mini": (0.5, 2.0, 2),
    "c-mid": (3.0, 15.0, 3),
    "c-big": (15.0, 60.0, 4),
}


def cost_gateway(up: FakeUpstream, **options: Any) -> Gateway:
    entries = [
        priced(up, name, input_price, output_price, quality=quality)
        for name, (input_price, output_price, quality) in COST_MODELS.items()
    ]
    entries.append(openai_entry(up, "c-unpriced", quality=2))  # not in the price table
    return make_gateway(entries, **options)


# Prices that cross: which is cheapest depends on the prompt and output lengths.
CROSSING = {  # name: (input, output USD per 1M tokens)
    "x-reader": (0.02, 4.0),
    "x-writer": (4.0, 0.1),
    "x-balanced": (0.3, 1.2),
    "x-dear": (15.0, 60.0),
}


def estimated_cost(name: str, prompt_tokens: int, max_tokens: int) -> float:
    input_price, output_price = CROSSING[name]
    return (prompt_tokens * input_price + max_tokens * output_price) / 1_000_000


async def test_cost_picks_the_cheapest_model_within_max_cost_and_never_one_above(
    fake_upstream: FakeUpstream,
) -> None:
    up = fake_upstream
    rng = random.Random(2024)
    entries = [priced(up, name, *prices) for name, prices in CROSSING.items()]
    gateway = make_gateway([*entries, openai_entry(up, "x-unpriced")])
    policy = RoutePolicy(
        models=(*CROSSING, "x-unpriced"), strategy=CostStrategy(classifier=None), retries=0
    )
    picked: Counter[str] = Counter()
    refused = 0
    async with gateway:
        gate = gateway.client(policy)
        for _ in range(60):
            messages = user("x" * int(10 ** rng.uniform(1, 5)))
            max_tokens = int(10 ** rng.uniform(1, 3.5))
            limit = 10 ** rng.uniform(-5, -1.5)
            prompt = estimate_messages(messages)
            fitting = sorted(
                (estimated_cost(name, prompt, max_tokens), name) for name in CROSSING
                if estimated_cost(name, prompt, max_tokens) <= limit
            )
            if not fitting:
                refused += 1
                with pytest.raises(NoCandidates) as caught:
                    await gate.chat(messages, max_tokens=max_tokens, max_cost_usd=limit)
                assert set(caught.value.reasons) == {*CROSSING, "x-unpriced"}
                assert "over max_cost_usd" in caught.value.reasons["x-balanced"]
                assert "price unknown" in caught.value.reasons["x-unpriced"]
                continue
            result = await gate.chat(messages, max_tokens=max_tokens, max_cost_usd=limit)
            chosen = first_tried(result)
            assert chosen == fitting[0][1]
            assert estimated_cost(chosen, prompt, max_tokens) <= limit
            picked[chosen] += 1
    # The sample reached every cheapest model and a refusal, so each branch was exercised.
    assert set(picked) == {"x-reader", "x-writer", "x-balanced"}
    assert refused >= 1


async def test_cost_policy_limit_applies_and_a_call_may_override_it(fake_upstream: FakeUpstream) -> None:
    gateway = cost_gateway(fake_upstream)
    # 100 output tokens: c-nano $0.00004, c-mini $0.0002, c-mid $0.0015, c-big $0.006.
    policy = RoutePolicy(
        models=("c-big", "c-mid"), strategy="cost", max_cost_usd=0.002, max_tokens=100, retries=0
    )
    async with gateway:
        gate = gateway.client(policy)
        result = await gate.chat(user("hi"))
        assert [a.deployment for a in result.attempts] == ["c-mid"]
        with pytest.raises(NoCandidates) as caught:
            await gate.chat(user("hi"), max_cost_usd=0.001)
        assert set(caught.value.reasons) == {"c-big", "c-mid"}
        result = await gate.chat(user("hi"), max_cost_usd=0.01)
        assert first_tried(result) == "c-mid"  # both fit now: cheapest first
    assert fake_upstream.calls("c-big") == 0


@pytest.mark.parametrize(
    ("prompt", "tier", "first"),
    [
        ("What is the capital of France?", "simple", "c-nano"),
        ("Explain how a hash map works.", "medium", "c-mini"),
        ("Explain and prove why this loop ends:\n```python\nwhile n > 1: n //= 2\n```", "complex", "c-mid"),
    ],
)
async def test_cost_uses_the_complexity_tier_as_a_quality_floor(
    fake_upstream: FakeUpstream, telemetry: Telemetry, prompt: str, tier: str, first: str
) -> None:
    gateway = cost_gateway(fake_upstream, telemetry=telemetry.config)
    async with gateway:
        result = await gateway.client(RoutePolicy(models=tuple(COST_MODELS), strategy="cost")).chat(
            user(prompt)
        )
    assert first_tried(result) == first
    attributes = route_span_attributes(telemetry)
    assert attributes["gate.tier"] == tier
    candidates = attributes["gate.candidates"]
    assert candidates[0] == first
    if tier == "complex":  # models below the floor follow as fallback, best quality first
        assert candidates == ("c-mid", "c-big", "c-mini", "c-nano")


async def test_cost_classifier_is_replaceable_by_a_callable(fake_upstream: FakeUpstream) -> None:
    seen: list[int] = []

    def classify(request: RequestInfo) -> str:
        seen.append(request.prompt_tokens)
        return "complex" if "legal" in str(request.messages[-1]["content"]) else "simple"

    gateway = cost_gateway(fake_upstream)
    policy = RoutePolicy(models=tuple(COST_MODELS), strategy=CostStrategy(classifier=classify))
    async with gateway:
        gate = gateway.client(policy)
        assert first_tried(await gate.chat(user("hi"))) == "c-nano"
        assert first_tried(await gate.chat(user("a legal question"))) == "c-mid"
    assert len(seen) == 2


# -- latency -------------------------------------------------------------------------------


async def test_latency_moves_to_the_faster_deployment_and_back_after_recovery(
    fake_upstream: FakeUpstream,
) -> None:
    up = fake_upstream
    clock = FakeClock()
    gateway = make_gateway(
        [openai_entry(up, "lat-a"), openai_entry(up, "lat-b")], state=MemoryStore(clock=clock)
    )
    # Attempts are timed by the latency set for each model, not by the wall clock, which
    # a loaded machine skews by more than the gap between the two.
    timer = gateway.router.timer = UpstreamTimer(up, {"lat-a": 0.0, "lat-b": 0.05})
    models = ("lat-a", "lat-b")
    # Two routes over the same latency figures: one never explores, one explores 20 %.
    exploit = gateway.client(RoutePolicy(models=models, strategy=LatencyStrategy(explore=0.0)))
    explore = gateway.client(RoutePolicy(models=models, strategy=LatencyStrategy(explore=0.2)))

    async def firsts(gate: Any, n: int) -> list[str]:
        return [first_tried(await gate.chat(user("hi"))) for _ in range(n)]

    async with gateway:
        for model in models * 4:  # measured a few times each
            await gateway.client().chat(user("warm up"), model=model)
        assert await firsts(exploit, 5) == ["lat-a"] * 5

        timer.latencies["lat-a"] = 0.25  # lat-a slows down: 5x lat-b
        after_slowdown = await firsts(exploit, 8)
        moved = after_slowdown.index("lat-b")
        assert 1 <= moved <= 3  # the EWMA passes lat-b's within a few slow answers
        assert after_slowdown == ["lat-a"] * moved + ["lat-b"] * (8 - moved)

        timer.latencies["lat-a"] = 0.0  # lat-a recovers
        clock.advance(300)  # five half-lives: its old figure now weighs next to nothing
        # Without exploration nobody would find out.
        assert await firsts(exploit, 4) == ["lat-b"] * 4
        after_recovery = await firsts(explore, 30)
        back = after_recovery.index("lat-a")  # the first exploration measures it...
        assert back <= 20
        rest = after_recovery[back:]  # ...and it leads again, but for lat-b's explorations
        assert Counter(rest)["lat-a"] >= 0.6 * len(rest)


async def test_latency_tries_unseen_deployments_first() -> None:
    found = deployments([stub_entry("u-a"), stub_entry("u-b"), stub_entry("u-c")])
    state = RoutingState(MemoryStore())
    await state.observe_latency("u-b", 0.5)
    strategy = LatencyStrategy(explore=0.0)
    assert [d.id for d in await strategy.plan(found, request_info(), state)] == ["u-a", "u-c", "u-b"]


async def test_latency_spreads_near_ties_instead_of_herding() -> None:
    entries = [stub_entry(f"tie-{i}") for i in range(3)]
    found = deployments(entries)
    state = RoutingState(MemoryStore())
    for deployment, seconds in zip(found, (0.100, 0.104, 0.5), strict=True):
        await state.observe_latency(deployment.id, seconds)
    strategy = LatencyStrategy(explore=0.0, buffer=0.1)
    rng = random.Random(5)
    leads: Counter[str] = Counter()
    for _ in range(400):
        leads[(await strategy.plan(found, request_info(rng=rng), state))[0].id] += 1
    assert set(leads) == {"tie-0", "tie-1"}  # tie-2 is far slower: never first
    assert min(leads.values()) > 150


async def test_latency_ranks_streams_by_time_to_first_token() -> None:
    found = deployments([stub_entry("s-a"), stub_entry("s-b")])
    state = RoutingState(MemoryStore())
    await state.observe_latency("s-a", 2.0)  # whole answers: s-a slow
    await state.observe_latency("s-b", 1.0)
    await state.observe_latency("s-a", 0.1, stream=True)  # first tokens: s-a fast
    await state.observe_latency("s-b", 0.5, stream=True)
    strategy = LatencyStrategy(explore=0.0, buffer=0.0)
    assert [d.id for d in await strategy.plan(found, request_info(), state)] == ["s-b", "s-a"]
    streamed = await strategy.plan(found, request_info(stream=True), state)
    assert [d.id for d in streamed] == ["s-a", "s-b"]


# -- task ----------------------------------------------------------------------------------


def task_entries(up: FakeUpstream) -> list[Any]:
    return [
        openai_entry(up, "t-general"),
        openai_entry(up, "t-code", tags=frozenset({"code"})),
        openai_entry(up, "t-chat", tags=frozenset({"chat"})),
    ]


async def test_task_from_header_then_policy_with_fallback_to_the_policy_task(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    gateway = make_gateway(task_entries(fake_upstream), telemetry=telemetry.config)
    app = build_app(gateway, {
        "models": ["t-general", "t-code", "t-chat"], "strategy": "task", "task": "code",
        "task_header": "X-Task",
    })
    async with serve(app) as client:
        by_header = (await client.post("/chat", json={}, headers={"x-task": "chat"})).json()
        assert route_span_attributes(telemetry)["gate.task"] == "chat"
        by_policy = (await client.post("/chat", json={})).json()
        unknown_task = (await client.post("/chat", json={}, headers={"x-task": "poetry"})).json()
    assert by_header["attempts"][0]["deployment"] == "t-chat"
    assert by_policy["attempts"][0]["deployment"] == "t-code"
    assert unknown_task["attempts"][0]["deployment"] == "t-code"  # no model for poetry
    assert route_span_attributes(telemetry)["gate.task"] == "code"


async def test_task_from_a_classifier_and_the_strategy_default(fake_upstream: FakeUpstream) -> None:
    def classify(request: RequestInfo) -> str | None:
        return "code" if "def " in str(request.messages[-1]["content"]) else None

    gateway = make_gateway(task_entries(fake_upstream))
    policy = RoutePolicy(
        models=("t-general", "t-code", "t-chat"),
        strategy=TaskStrategy(classifier=classify, default="chat"),
    )
    async with gateway:
        gate = gateway.client(policy)
        code = await gate.chat(user("def f(): pass  # what does this do?"))
        other = await gate.chat(user("hello"))
    assert first_tried(code) == "t-code"
    assert first_tried(other) == "t-chat"


async def test_task_plan_keeps_untagged_models_as_fallback() -> None:
    found = deployments([
        stub_entry("a"), stub_entry("b", tags=frozenset({"code"})), stub_entry("c"),
    ])
    policy = RoutePolicy(task="code")
    plan = await TaskStrategy().plan(found, request_info(policy), RoutingState(MemoryStore()))
    assert [d.id for d in plan] == ["b", "a", "c"]
    nothing = await TaskStrategy().plan(found, request_info(), RoutingState(MemoryStore()))
    assert [d.id for d in nothing] == ["a", "b", "c"]


# -- hybrid --------------------------------------------------------------------------------


def hybrid_entries(up: FakeUpstream) -> list[Any]:
    return [
        priced(up, "h-cheap", 0.1, 0.4, quality=1),
        priced(up, "h-mid", 1.0, 4.0, quality=3),
        priced(up, "h-good", 10.0, 30.0, quality=5),
    ]


@pytest.mark.parametrize(
    ("weights", "first"),
    [
        ({"quality": 1.0}, "h-good"),
        ({"cost": 1.0}, "h-cheap"),
        # quality 0 / 0.5 / 1 plus cheapness 1 / 0.88 / 0: the middle model wins.
        ({"quality": 1.0, "cost": 1.0}, "h-mid"),
        ({"latency": 1.0}, "h-good"),
        ({"quality": 1.0, "latency": 3.0}, "h-good"),
        # Speed tips it: h-cheap is the slowest, h-mid half-way.
        ({"cost": 1.0, "latency": 0.5}, "h-mid"),
    ],
)
async def test_hybrid_ranks_by_the_policy_weights(
    fake_upstream: FakeUpstream, weights: dict[str, float], first: str
) -> None:
    up = fake_upstream
    gateway = make_gateway(hybrid_entries(up))
    # Timed by set latencies, not by a wall clock that load skews.
    gateway.router.timer = UpstreamTimer(up, {"h-cheap": 0.12, "h-mid": 0.06, "h-good": 0.0})
    policy = RoutePolicy(
        models=("h-cheap", "h-mid", "h-good"), strategy="hybrid", weights=weights, max_tokens=100
    )
    async with gateway:
        for name in ("h-cheap", "h-mid", "h-good"):  # one measured answer each
            await gateway.client(policy).chat(user("warm up"), model=name)
        result = await gateway.client(policy).chat(user("hi"))
    assert first_tried(result) == first


async def test_hybrid_filters_by_cost_and_demotes_slow_deployments(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    gateway = make_gateway(hybrid_entries(up), telemetry=telemetry.config)
    gateway.router.timer = UpstreamTimer(up, {"h-cheap": 0.0, "h-mid": 0.12, "h-good": 0.0})
    policy = RoutePolicy(
        models=("h-cheap", "h-mid", "h-good"), strategy="hybrid", weights={"quality": 1.0},
        max_tokens=100, max_cost_usd=0.001, max_latency=0.08,
    )
    async with gateway:
        await gateway.client(policy).chat(user("warm up"), model="h-mid")
        result = await gateway.client(policy).chat(user("hi"))
    attributes = route_span_attributes(telemetry)
    # h-good ($0.003) is over the limit; h-mid is better but slower than max_latency: last.
    assert attributes["gate.candidates"] == ("h-cheap", "h-mid")
    assert attributes["gate.excluded"] == ("h-good",)
    assert first_tried(result) == "h-cheap"


async def test_attempts_keep_only_the_figures_some_route_ranks_by(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    store = MemoryStore()
    gateway = make_gateway([openai_entry(up, "fig")], state=store)
    state = RoutingState(store)
    (deployment,) = gateway.registry.deployments
    async with gateway:
        await gateway.client(RoutePolicy(models=("fig",))).chat(user("hi"))
        # Ordered routes rank by nothing: no latency, in-flight or per-minute figures.
        assert await state.latency([deployment]) == [None]
        assert await state.usage([deployment]) == [(0, 0)]
        await gateway.client(RoutePolicy(models=("fig",), strategy="latency")).chat(user("hi"))
        await gateway.client(RoutePolicy(models=("fig",), strategy="usage")).chat(user("hi"))
        await gateway.client(RoutePolicy(models=("fig",))).chat(user("hi"))
    (stats,) = await state.latency([deployment])
    assert stats is not None
    assert stats.samples == 3  # every attempt since a route read it
    ((requests, tokens),) = await state.usage([deployment])
    assert requests == 2
    assert tokens > 0
    assert await state.in_flight([deployment]) == [0]  # no route reads it: never counted


# -- load balancing across one alias's deployments ----------------------------------------


def pool_entries(up: FakeUpstream, n: int = 3, **fields: Any) -> list[Any]:
    return [openai_entry(up, "pool", f"pool-{i}", id=f"pool-{i}", **fields) for i in range(1, n + 1)]


@pytest.mark.parametrize(("strategy", "spread"), [("least_busy", [2, 2, 2]), ("ordered", [6, 0, 0])])
async def test_least_busy_spreads_calls_in_flight(
    fake_upstream: FakeUpstream, strategy: str, spread: list[int]
) -> None:
    up = fake_upstream
    models = [f"pool-{i}" for i in range(1, 4)]
    for model in models:
        up.hold(model)
    gateway = make_gateway(pool_entries(up))
    gate = gateway.client(RoutePolicy(models=("pool",), strategy=strategy))
    results: list[Any] = []

    async def one() -> None:
        results.append(await gate.chat(user("hi")))

    async with gateway, anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(one)
        assert await up.wait_for_in_flight_async(None, 6)
        assert [up.in_flight(model) for model in models] == spread
        for model in models:
            up.release(model)
    assert len(results) == 6
    assert await gateway.router.state.in_flight(gateway.registry.deployments) == [0, 0, 0]


async def test_usage_prefers_the_least_used_deployment_within_its_tpm(fake_upstream: FakeUpstream) -> None:
    up = fake_upstream
    up.set_default(None, Reply(input_tokens=400, output_tokens=600))
    clock = FakeClock()
    gateway = make_gateway(pool_entries(up, tpm=1_500), state=MemoryStore(clock=clock))
    gate = gateway.client(RoutePolicy(models=("pool",), strategy="usage"))
    async with gateway:
        firsts = [first_tried(await gate.chat(user("hi"))) for _ in range(6)]
        # 1,000 tokens a call: each deployment once, then again (each under 1,500 before).
        assert firsts == ["pool-1", "pool-2", "pool-3", "pool-1", "pool-2", "pool-3"]
        # Now each used 2,000 of 1,500 tokens this minute: all at the limit, so each is
        # skipped rather than tried last.
        with pytest.raises(NoCandidates, match="pool-1: at its tokens limit"):
            await gate.chat(user("hi"))
        usage = await gateway.router.state.usage(gateway.registry.deployments)
        assert usage == [(2, 2_000), (2, 2_000), (2, 2_000)]
        clock.advance(60)  # a new minute
        assert await gateway.router.state.usage(gateway.registry.deployments) == [(0, 0)] * 3
        assert first_tried(await gate.chat(user("hi"))) == "pool-1"  # refilled


async def test_weighted_shuffle_matches_the_weights_over_10000_plans() -> None:
    weights = {"w-1": 1.0, "w-2": 2.0, "w-3": 3.0, "w-4": 4.0}
    found = deployments([stub_entry("w", model=k, id=k, weight=w) for k, w in weights.items()])
    strategy = ShuffleStrategy()
    state = RoutingState(MemoryStore())
    info = request_info(rng=random.Random(11))
    leads: Counter[str] = Counter()
    for _ in range(10_000):
        plan = await strategy.plan(found, info, state)
        assert sorted(d.id for d in plan) == sorted(weights)  # a permutation, nothing lost
        leads[plan[0].id] += 1
    ok, statistic = chi_square_ok(leads, weights)
    assert ok, f"chi-square {statistic:.2f} over the p=0.01 critical value; counts {leads}"


async def test_balancers_keep_the_alias_order_of_the_chain(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([*pool_entries(fake_upstream), openai_entry(fake_upstream, "solo")])
    policy = RoutePolicy(models=("solo", "pool"), strategy="shuffle")
    async with gateway:
        result = await gateway.client(policy).chat(user("hi"))
    assert first_tried(result) == "solo"


# -- soft requirements ---------------------------------------------------------------------


async def test_deployments_whose_window_cannot_hold_the_prompt_go_last(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    up = fake_upstream
    gateway = make_gateway(
        [openai_entry(up, "w-small", context_window=200), openai_entry(up, "w-big", context_window=100_000)],
        telemetry=telemetry.config,
    )
    async with gateway:
        gate = gateway.client(RoutePolicy(models=("w-small", "w-big")))
        assert first_tried(await gate.chat(user("short"))) == "w-small"
        assert first_tried(await gate.chat(user("long " * 400))) == "w-big"
    assert route_span_attributes(telemetry)["gate.candidates"] == ("w-big", "w-small")


# -- custom strategies ---------------------------------------------------------------------


class Reverse(Strategy):
    name = "reverse"

    async def plan(
        self, candidates: Sequence[Deployment], request: RequestInfo, state: RoutingState
    ) -> Sequence[Deployment]:
        return list(reversed(candidates))


async def test_a_custom_strategy_by_instance_or_registered_name(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    register_strategy("reverse", Reverse)
    up = fake_upstream
    gateway = make_gateway(
        [openai_entry(up, "cu-a"), openai_entry(up, "cu-b")], telemetry=telemetry.config
    )
    async with gateway:
        for strategy in (Reverse(), "reverse"):
            result = await gateway.client(RoutePolicy(models=("cu-a", "cu-b"), strategy=strategy)).chat(
                user("hi")
            )
            assert first_tried(result) == "cu-b"
            assert route_span_attributes(telemetry)["gate.strategy"] == "reverse"


# -- bad policies --------------------------------------------------------------------------


def app_with(policy: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.post("/routed")
    @route_policy(**policy)
    async def routed() -> None:  # never called: startup fails first
        raise AssertionError

    return app


@pytest.mark.parametrize(
    ("policy", "field", "words"),
    [
        ({"strategy": "fastest"}, "strategy", "unknown strategy 'fastest'"),
        ({"tags": ["vision"]}, "tags", "lacks tag(s) vision"),
        ({"min_quality": 5}, "min_quality", "below min_quality 5"),
        ({"max_cost_usd": 1e-7, "max_tokens": 1000}, "max_cost_usd", "no model fits"),
        ({"strategy": "task", "task": "poetry"}, "task", "no model is tagged 'poetry'"),
        (
            {"experiment": {"name": "e", "arms": {"a": "c-nano", "b": "c-gone"}}},
            "experiment.arms.b.models", "unknown model 'c-gone'",
        ),
    ],
)
async def test_a_bad_policy_fails_at_startup_naming_route_and_field(
    fake_upstream: FakeUpstream, policy: dict[str, Any], field: str, words: str
) -> None:
    gateway = cost_gateway(fake_upstream)
    with pytest.raises(PolicyError) as caught:
        await gateway.start(app_with({"models": list(COST_MODELS), **policy}))
    assert caught.value.field == field
    assert "routed" in caught.value.route
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"strategy": "hybrid", "weights": {"cost": 0}}, "weights"),
        ({"strategy": "hybrid", "weights": {"speed": 1}}, "weights"),
        (
            {"experiment": {"name": "e", "arms": {"a": "x", "b": "y"}, "weights": {"a": 1, "b": -1}}},
            "experiment",
        ),
        ({"budget": {"limit_usd": 0}}, "budget"),
        ({"strategy": 42}, "strategy"),
    ],
)
def test_invalid_fields_fail_when_the_route_is_declared(policy: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        app_with(policy)
    assert caught.value.field == field
    assert "routed" in caught.value.route

