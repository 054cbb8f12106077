"""The FastAPI and Litestar examples answer the demo's requests alike, request for request."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from _parity_apps import serve
from examples import _demo
from examples._config import SIMULATED_CONFIG
from examples.fastapi_app import app as fastapi_example
from examples.litestar_app import app as litestar_example

from gate_mw import Gateway

pytestmark = pytest.mark.anyio


async def drive(app: Any) -> list[tuple[_demo.Outcome, dict[str, str]]]:
    """The demo's requests, in order, through `app` in process: outcomes and gate headers."""
    answers = []
    async with serve(app) as client:
        for request in _demo.REQUESTS:
            response: httpx.Response = await client.post(request.path, json=request.body)
            outcome = _demo.Outcome.from_response(request.path, response, latency_s=0.0)
            # Timings differ from run to run; everything else must not.
            outcome.failed = [{**attempt, "latency_ms": None} for attempt in outcome.failed]
            gate = {k: v for k, v in response.headers.items() if k.startswith("x-gate-")}
            answers.append((outcome, gate))
    return answers


async def test_both_examples_answer_the_demo_alike() -> None:
    # Each example with its own seeded gateway on the simulated provider, run side by side.
    apps = {
        "fastapi": fastapi_example.create_app(Gateway.from_file(SIMULATED_CONFIG, seed=7)),
        "litestar": litestar_example.create_app(Gateway.from_file(SIMULATED_CONFIG, seed=7)),
    }
    results: dict[str, list[tuple[_demo.Outcome, dict[str, str]]]] = {}

    async def run(name: str) -> None:
        results[name] = await drive(apps[name])

    async with anyio.create_task_group() as group:
        for name in apps:
            group.start_soon(run, name)

    assert results["litestar"] == results["fastapi"]
    outcomes = [outcome for outcome, _ in results["fastapi"]]
    assert all(outcome.status == 200 for outcome in outcomes)
    assert sum(len(outcome.failed) for outcome in outcomes) == 5  # the demo shows fallbacks
    assert all(headers["x-gate-model"] == outcome.model for outcome, headers in results["litestar"])


async def test_the_litestar_example_health_route_calls_no_model() -> None:
    app = litestar_example.create_app(Gateway.from_file(SIMULATED_CONFIG, seed=7))
    async with serve(app) as client:
        response = await client.get("/health")
        invalid = await client.post("/classify", json={"text": "x", "labels": ["only-one"]})
    assert response.json() == {"status": "ok"}
    assert not [name for name in response.headers if name.startswith("x-gate-")]
    assert invalid.status_code == 400  # Litestar's own validation, before any model call
    assert not [name for name in invalid.headers if name.startswith("x-gate-")]
