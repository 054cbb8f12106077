"""CPU cost of one routing decision, per strategy, with 10 and 200 deployments.

A decision is `Router.decide`: compiled policy lookup, prompt estimate, filters, the
strategy's order (reading latency, in-flight and usage figures from the in-memory state
store), budget check and soft demotions. No network: the deployments are simulated and
never called. Latency, load and spend figures are seeded so every strategy does its full
work.

Targets: at most 20 us per decision with 10 deployments, and no worse than linear in the
number of deployments (the 200-deployment time per deployment is not above the 10's).

Run: ``python bench/bench_strategies.py [--quick]``. It prints a table and PASS/FAIL per
target; it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script: make bench/ and gate_mw (from src/) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import print_table

from gate_mw import Budget, Experiment, Gateway, ModelEntry, RoutePolicy
from gate_mw.providers import ChatRequest
from gate_mw.state import Writes

TARGET_US = 20.0
SIZES = (10, 200)
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the attached meeting notes in three bullet points."},
]
BALANCERS = {"shuffle", "least_busy", "usage"}


def _entries(n: int, *, one_alias: bool) -> list[ModelEntry]:
    rng = random.Random(n)
    return [
        ModelEntry(
            name="pool" if one_alias else f"m{i}",
            id=f"m{i}",
            input_cost_per_mtok=round(rng.uniform(0.1, 15), 2),
            output_cost_per_mtok=round(rng.uniform(0.4, 60), 2),
            context_window=rng.choice((16_000, 128_000, 200_000)),
            quality=rng.randint(1, 5),
            tags=frozenset({"chat", rng.choice(("code", "general", "vision"))}),
            tpm=1_000_000,
            rpm=10_000,
        )
        for i in range(n)
    ]


def _policies(gateway: Gateway) -> dict[str, RoutePolicy]:
    models = tuple(gateway.registry.aliases)
    return {
        "ordered": RoutePolicy(models=models),
        "cost": RoutePolicy(models=models, strategy="cost", max_tokens=256),
        "cost+max_cost": RoutePolicy(models=models, strategy="cost", max_tokens=256, max_cost_usd=0.01),
        "latency": RoutePolicy(models=models, strategy="latency"),
        "task": RoutePolicy(models=models, strategy="task", task="code"),
        "hybrid": RoutePolicy(
            models=models, strategy="hybrid", max_tokens=256, max_cost_usd=0.05, max_latency=2.0,
            weights={"quality": 2, "cost": 1, "latency": 1},
        ),
        "shuffle": RoutePolicy(models=models, strategy="shuffle"),
        "least_busy": RoutePolicy(models=models, strategy="least_busy"),
        "usage": RoutePolicy(models=models, strategy="usage"),
        "experiment": RoutePolicy(
            models=models, experiment=Experiment("bench", arms={"a": {"strategy": "cost"}, "b": {}})
        ),
        "budget": RoutePolicy(models=models, strategy="cost", budget=Budget(limit_usd=1.0)),
    }


async def _seed(gateway: Gateway) -> None:
    """Latency, in-flight and usage figures for every deployment."""
    rng = random.Random(1)
    state = gateway.router.state
    for deployment in gateway.registry.deployments:
        for _ in range(3):
            await state.observe_latency(deployment.id, rng.uniform(0.2, 3.0))
        for _ in range(rng.randrange(4)):
            await state.started(deployment.id)
        writes = Writes()
        state.add_tokens(deployment.id, rng.randrange(100_000), writes)
        await state.store.write(writes)


async def _per_decision_us(gateway: Gateway, policy: RoutePolicy, name: str, rounds: int) -> float:
    validated = gateway.validate_policy(policy, name)
    router = gateway.router
    context = gateway.new_context(
        {"type": "http", "headers": [(b"x-gate-caller", b"bench-caller"), (b"x-request-id", b"r1")]}
    )
    request = ChatRequest(messages=MESSAGES, max_tokens=256)
    for _ in range(200):  # warm up caches and the interpreter's specialisations
        await router.decide(validated, name, context, request)
    best = float("inf")
    for _ in range(5):  # best of five runs: the least disturbed by other processes
        gc.disable()
        started = time.process_time()
        for _ in range(rounds):
            await router.decide(validated, name, context, request)
        elapsed = time.process_time() - started
        gc.enable()
        best = min(best, elapsed)
    return best / rounds * 1e6


async def main(quick: bool) -> None:
    rounds = 2_000 if quick else 20_000
    results: dict[str, dict[int, float]] = {}
    for size in SIZES:
        gateways = {
            one_alias: Gateway(_entries(size, one_alias=one_alias), seed=7)
            for one_alias in (False, True)
        }
        for gateway in gateways.values():
            await _seed(gateway)
        for one_alias, gateway in gateways.items():
            for name, policy in _policies(gateway).items():
                if (name in BALANCERS) != one_alias:
                    continue  # balancers order one alias's deployments; the rest, aliases
                per_call = await _per_decision_us(gateway, policy, name, max(200, rounds * 10 // size))
                results.setdefault(name, {})[size] = per_call

    rows: list[list[Any]] = []
    failures = 0
    small, large = SIZES
    for name, by_size in results.items():
        fast = by_size[small] <= TARGET_US
        linear = by_size[large] / large <= by_size[small] / small
        failures += (not fast) + (not linear)
        rows.append([
            name, f"{by_size[small]:.1f}", f"{by_size[large]:.1f}",
            f"{by_size[large] / by_size[small]:.1f}x", "PASS" if fast else "FAIL",
            "PASS" if linear else "FAIL",
        ])
    print("CPU per routing decision (us), best of 5 runs; balancers over one alias's deployments\n")
    print_table(
        ["strategy", f"{small} deps", f"{large} deps", "ratio", f"<= {TARGET_US:g} us", "<= linear"], rows
    )
    print(f"\n{'PASS' if not failures else 'FAIL'}: {failures} target(s) missed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    asyncio.run(main(parser.parse_args().quick))
