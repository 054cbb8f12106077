"""Two uvicorn processes of one app sharing one Redis: budgets, rate limits, breakers and
the cache hold across them."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from _replica_app import CALLER_BUDGET_USD, MAX_TOKENS, ROUTE_BUDGET_USD
from _stores import REDIS_URL
from gate_mw.chat._tokens import estimate_messages
from gate_mw.testing import FakeUpstream, Fault, Reply

pytestmark = pytest.mark.anyio
TESTS = Path(__file__).resolve().parent


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as made:
        yield made


@pytest.fixture
def fake_upstream(upstream: FakeUpstream) -> FakeUpstream:
    """The module's upstream; each test scripts the models it uses."""
    return upstream


@pytest.fixture(scope="module")
def replicas(upstream: FakeUpstream) -> Iterator[list[str]]:
    """Two replica processes, shared by this module's tests (each uses its own routes,
    callers and texts); requests queue on their pre-bound sockets until they serve."""
    fake_upstream = upstream
    env = {
        **os.environ, "GATE_UPSTREAM": fake_upstream.openai_base, "GATE_REDIS_URL": REDIS_URL,
        "GATE_PREFIX": f"test:replicas:{uuid.uuid4().hex[:12]}:", "PYTHONPATH": str(TESTS),
    }
    sockets = [listening_socket() for _ in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "_replica_app:app", "--fd", str(sock.fileno()),
             "--log-level", "warning", "--no-access-log"],
            env=env, pass_fds=[sock.fileno()], cwd=TESTS,
        )
        for sock in sockets
    ]
    try:
        yield [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in sockets]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for sock in sockets:
            sock.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as made:
        yield made


def exact_costs(up: FakeUpstream, text: str) -> float:
    """Make the upstream report what the gateway estimates, so reservations are exact."""
    prompt = estimate_messages([{"role": "user", "content": text}])
    up.set_default(None, Reply(input_tokens=prompt, output_tokens=MAX_TOKENS))
    return (prompt * 10.0 + MAX_TOKENS * 30.0) / 1e6


async def test_caller_and_route_budgets_hold_across_replicas(
    replicas: list[str], client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    cost = exact_costs(fake_upstream, "hello")
    per_caller = math.floor(CALLER_BUDGET_USD / cost + 1e-9)  # 6 calls
    per_route = math.floor(ROUTE_BUDGET_USD / cost + 1e-9)  # 16 calls: fewer than 3 callers' 18
    for replica in replicas:  # both serving before the burst
        assert (await client.get(f"{replica}/cooldowns")).status_code == 200
    callers = ["ann", "ben", "cat"]
    responses = await asyncio.gather(*(
        client.post(f"{replicas[i % 2]}/budget", json={"text": "hello"},
                    headers={"x-gate-caller": callers[i % 3]})
        for i in range(60)
    ))
    assert {r.status_code for r in responses} == {200, 402}
    served = [r.json() for r in responses if r.status_code == 200]
    spent = sum(answer["cost"] for answer in served)
    # Estimates are exact here, so not even one call's estimation error of overshoot.
    assert spent <= ROUTE_BUDGET_USD + 1e-9
    assert len(served) == per_route
    for caller in callers:
        mine = [answer for answer in served if answer["caller"] == caller]
        assert len(mine) <= per_caller
        assert sum(answer["cost"] for answer in mine) <= CALLER_BUDGET_USD + 1e-9
    refusals = {r.json()["error"]["limit"] for r in responses if r.status_code == 402}
    assert "route:budget" in refusals
    # One budget, not one per process: each replica now refuses everyone.
    for replica in replicas:
        again = await client.post(
            f"{replica}/budget", json={"text": "hello"}, headers={"x-gate-caller": "dee"}
        )
        assert again.status_code == 402
        assert again.json()["error"]["limit"] == "route:budget"


async def test_an_rpm_limit_holds_across_replicas_with_exact_counts(
    replicas: list[str], client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    exact_costs(fake_upstream, "hello")
    responses = await asyncio.gather(*(
        client.post(f"{replicas[i % 2]}/limited", json={"text": "hello"}, headers={"x-gate-caller": "erin"})
        for i in range(20)
    ))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 7
    assert statuses.count(429) == 13
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    served = [r for r in responses if r.status_code == 200]
    assert {r.headers["x-ratelimit-limit-requests"] for r in served} == {"7"}
    # Each replica reads its own clock for the refill, and Redis may run two replicas' scripts
    # in the other order than their clocks were read, so one call can see a sliver less than
    # the next: two calls may then show the same whole number remaining. The range is exact.
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in served)
    assert remaining[0] == 0
    assert remaining[-1] >= 5
    assert all(0 <= left <= 6 for left in remaining)
    other = await client.post(f"{replicas[0]}/limited", json={"text": "hi"}, headers={"x-gate-caller": "fay"})
    assert other.status_code == 200  # per caller


async def test_a_breaker_opened_in_one_replica_skips_the_deployment_in_the_other(
    replicas: list[str], client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    exact_costs(fake_upstream, "hello")
    fake_upstream.set_default("rep-flaky", Fault(500))
    first, second = replicas
    for _ in range(2):  # two failures in the first replica open the breaker (failures=2)
        answer = (await client.post(f"{first}/fallback", json={})).json()
        assert answer == {"model": "rep-backup", "attempts": 2}
    flaky_calls = fake_upstream.calls("rep-flaky")
    answer = (await client.post(f"{second}/fallback", json={})).json()
    assert answer == {"model": "rep-backup", "attempts": 1}  # skipped without a try
    assert fake_upstream.calls("rep-flaky") == flaky_calls
    assert (await client.get(f"{second}/cooldowns")).json()["rep-flaky"] == "open"


async def test_a_cache_entry_written_by_one_replica_is_a_hit_in_the_other(
    replicas: list[str], client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    exact_costs(fake_upstream, "cache me")
    first = await client.post(f"{replicas[0]}/cached", json={"text": "cache me"})
    assert first.headers["x-gate-cache"] == "miss"
    calls = fake_upstream.calls()
    second = await client.post(f"{replicas[1]}/cached", json={"text": "cache me"})
    assert second.headers["x-gate-cache"] == "hit"
    assert second.json() == {**first.json(), "cached": True}
    assert second.headers["x-gate-model"] == "rep-main"
    assert second.headers["x-gate-cost-usd"] == "0.000000"
    assert fake_upstream.calls() == calls
