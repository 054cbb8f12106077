"""The app the replica tests run in two uvicorn processes, sharing one Redis.

Configured by environment: GATE_UPSTREAM (the fake upstream's OpenAI base URL),
GATE_REDIS_URL and GATE_PREFIX (a unique key prefix per test).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request

from gate_mw import Breaker, Budget, Cache, Gateway, GatewayMiddleware, Limit, ModelEntry, route_policy
from gate_mw.fastapi import GateClient

MAX_TOKENS = 100
ROUTE_BUDGET_USD = 0.05
CALLER_BUDGET_USD = 0.02


def _entry(name: str) -> ModelEntry:
    return ModelEntry(
        name=name, provider="openai", api_key_env="FAKE_KEY", api_base=os.environ.get("GATE_UPSTREAM"),
        input_cost_per_mtok=10.0, output_cost_per_mtok=30.0, max_output_tokens=MAX_TOKENS,
    )


gateway = Gateway(
    [_entry("rep-main"), _entry("rep-flaky"), _entry("rep-backup")],
    env={"FAKE_KEY": "sk-replica"},
    # Nothing connects until the app serves: the tests import this module for its figures.
    state=os.environ.get("GATE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    state_options={"prefix": os.environ.get("GATE_PREFIX", "test:replicas:"), "timeout": 2.0},
    breaker=Breaker(failures=2, cooldown=600),
)
app = FastAPI(lifespan=gateway.lifespan)
app.add_middleware(GatewayMiddleware, gateway=gateway)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": str(body.get("text", "hello"))}]


@app.post("/budget")
@route_policy(models=["rep-main"], max_tokens=MAX_TOKENS, budget=[
    Budget(limit_usd=ROUTE_BUDGET_USD, per="route", downgrade_at=None),
    Budget(limit_usd=CALLER_BUDGET_USD, per="caller", downgrade_at=None),
])
async def budget(request: Request, gate: GateClient) -> dict[str, Any]:
    result = await gate.chat(_messages(await request.json()))
    return {"cost": result.cost_usd, "caller": request.headers.get("x-gate-caller")}


@app.post("/limited")
@route_policy(models=["rep-main"], max_tokens=MAX_TOKENS, limits=[Limit(rpm=7, per="caller")])
async def limited(request: Request, gate: GateClient) -> dict[str, Any]:
    return {"model": (await gate.chat(_messages(await request.json()))).model}


@app.post("/fallback")
@route_policy(models=["rep-flaky", "rep-backup"], max_tokens=MAX_TOKENS, retries=0)
async def fallback(request: Request, gate: GateClient) -> dict[str, Any]:
    result = await gate.chat(_messages(await request.json()))
    return {"model": result.model, "attempts": len(result.attempts)}


@app.post("/cached")
@route_policy(models=["rep-main"], max_tokens=MAX_TOKENS, cache=Cache(ttl=600))
async def cached(request: Request, gate: GateClient) -> dict[str, Any]:
    result = await gate.chat(_messages(await request.json()))
    return {"text": result.text, "model": result.model, "cached": result.cached}


@app.get("/cooldowns")
async def cooldowns() -> dict[str, str]:
    return {state.deployment: state.state for state in await gateway.cooldowns()}
