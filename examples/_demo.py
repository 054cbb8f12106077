"""The demo driver shared by the examples: serve an example app with uvicorn on 127.0.0.1,
send it a fixed series of requests over real HTTP, and print what the gateway did.

    python -m examples.fastapi_app.demo            # or: ./scripts/demo
    python -m examples.fastapi_app.demo litestar

An example is a module with an ASGI `app` (and, optionally, its `gateway`) serving
POST /summarise, /classify and /ask and GET /health, answering with the `Answer` body of
`examples/fastapi_app/app.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

__all__ = ["EXAMPLES", "REQUESTS", "DemoRequest", "Outcome", "drive", "main", "render", "serve"]

#: Example name -> module holding its `app`.
EXAMPLES = {
    "fastapi": "examples.fastapi_app.app",
    "litestar": "examples.litestar_app.app",
}

_ARTICLE = (
    "The city council voted on Tuesday to extend the night bus network to the northern "
    "suburbs, after a two-year trial showed ridership doubling on the pilot routes. "
    "Opponents argued the money would be better spent on daytime frequency."
)


@dataclass(frozen=True, slots=True)
class DemoRequest:
    path: str
    body: dict[str, Any]


#: The demo's requests, sent one after the other so a seeded simulation replays exactly.
REQUESTS: tuple[DemoRequest, ...] = (
    DemoRequest("/summarise", {"text": _ARTICLE}),
    DemoRequest("/classify", {"text": "The parcel arrived broken.", "labels": ["complaint", "praise"]}),
    DemoRequest("/ask", {"question": "What does an LLM gateway do?"}),
    DemoRequest("/summarise", {"text": "Quarterly revenue rose 12% on strong cloud demand."}),
    DemoRequest("/ask", {"question": "Name three uses of a fallback chain."}),
    DemoRequest("/classify", {"text": "Lovely service, thank you!", "labels": ["complaint", "praise"]}),
    DemoRequest("/summarise", {"text": "A new study links sleep quality to memory."}),
    DemoRequest("/ask", {"question": "Why put a deadline on a whole call?"}),
)


@dataclass(slots=True)
class Outcome:
    """What one demo request got back."""

    path: str
    status: int
    latency_s: float
    model: str | None = None
    attempts: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    error: str | None = None

    @classmethod
    def from_response(cls, path: str, response: httpx.Response, latency_s: float) -> Outcome:
        body = response.json()
        if response.is_success:
            return cls(
                path, response.status_code, latency_s, model=body["model"],
                attempts=body["attempts"], failed=body["fallbacks"],
                input_tokens=body["tokens"]["input"], output_tokens=body["tokens"]["output"],
                cost_usd=body["cost_usd"],
            )
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {"type": str(body)}
        attempts = error.get("attempts") or []
        return cls(
            path, response.status_code, latency_s, attempts=len(attempts),
            failed=[a for a in attempts if a.get("outcome") != "ok"], error=str(error.get("type")),
        )


async def drive(base_url: str, requests: Sequence[DemoRequest] = REQUESTS) -> list[Outcome]:
    """Send `requests` one at a time and collect what came back."""
    outcomes = []
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for request in requests:
            started = time.perf_counter()
            response = await client.post(request.path, json=request.body)
            outcomes.append(Outcome.from_response(request.path, response, time.perf_counter() - started))
    return outcomes


def _listening_socket() -> socket.socket:
    # Bound and listening before uvicorn starts: clients may connect at once and wait in
    # the backlog until the app's lifespan has started, so nothing polls for readiness.
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


async def serve(app: Any, requests: Sequence[DemoRequest] = REQUESTS) -> tuple[str, list[Outcome]]:
    """Run `app` under uvicorn on a free port, drive `requests` through it, stop it."""
    sock = _listening_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="none")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    driving = asyncio.create_task(_check_and_drive(base_url, requests))
    try:
        await asyncio.wait({serving, driving}, return_when=asyncio.FIRST_COMPLETED)
        if not driving.done():  # the server stopped first: it failed to start
            driving.cancel()
            await serving
            raise RuntimeError("the server stopped before the demo finished (see its log above)")
        return base_url, driving.result()
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def _check_and_drive(base_url: str, requests: Sequence[DemoRequest]) -> list[Outcome]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        health = await client.get("/health")
        health.raise_for_status()
    return await drive(base_url, requests)


def _cost(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.6f}"


def _failures(failed: Sequence[dict[str, Any]]) -> str:
    """'claude-sonnet server_error 503 x2, gpt-4o timeout'."""
    counts = Counter(
        " ".join(str(part) for part in (a.get("model"), a.get("outcome"), a.get("status")) if part)
        for a in failed
    )
    return ", ".join(f"{what} x{n}" if n > 1 else what for what, n in counts.items())


def _verb(outcome: Outcome) -> str:
    if outcome.model is None:
        return "failed"
    if all(attempt.get("model") == outcome.model for attempt in outcome.failed):
        return "retried"
    return "fell back"


def render(outcomes: Sequence[Outcome], *, wall_s: float) -> str:
    """The per-request table and the totals, as printed by the demo."""
    header = (
        f"{'#':>2}  {'route':<11}{'status':>6}  {'model':<14}{'tries':>5}  "
        f"{'tokens in/out':>13}  {'cost USD':>10}  {'latency':>8}"
    )
    lines = [header, "-" * len(header)]
    for number, o in enumerate(outcomes, start=1):
        lines.append(
            f"{number:>2}  {o.path:<11}{o.status:>6}  {o.model or '-':<14}{o.attempts:>5}  "
            f"{f'{o.input_tokens}/{o.output_tokens}':>13}  {_cost(o.cost_usd):>10}  "
            f"{o.latency_s * 1000:>6.0f}ms"
        )
        if o.failed:
            lines.append(f"{'':>4}{_verb(o)}: {_failures(o.failed)}")
        if o.error:
            lines.append(f"{'':>4}error: {o.error}")
    answered = [o for o in outcomes if o.model is not None]
    costs = [o.cost_usd for o in answered]
    total_cost = "unknown" if None in costs else f"{sum(c or 0.0 for c in costs):.6f}"
    verbs = Counter(_verb(o) for o in answered if o.failed)
    lines += [
        "-" * len(header),
        f"{len(outcomes)} requests, {len(answered)} answered "
        f"({verbs['fell back']} after a fallback, "
        f"{verbs['retried']} after a retry; {sum(len(o.failed) for o in outcomes)} failed attempts)",
        f"tokens {sum(o.input_tokens for o in outcomes)} in / {sum(o.output_tokens for o in outcomes)} out, "
        f"cost USD {total_cost}, wall time {wall_s:.2f}s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default: str = "fastapi") -> int:
    parser = argparse.ArgumentParser(description="Serve a gate_mw example and send it requests.")
    parser.add_argument("example", nargs="?", default=default, choices=sorted(EXAMPLES))
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(EXAMPLES[args.example])
    except ModuleNotFoundError as exc:
        print(f"cannot load the {args.example} example: {exc}", file=sys.stderr)
        return 1
    gateway = getattr(module, "gateway", None)
    source = getattr(getattr(gateway, "registry", None), "source", None) or "?"
    with contextlib.suppress(ValueError):
        source = str(Path(source).resolve().relative_to(Path.cwd()))
    started = time.perf_counter()
    base_url, outcomes = asyncio.run(serve(module.app))
    print(f"gate_mw demo: the {args.example} example ({source}), served by uvicorn at {base_url}")
    if endpoint := os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        print(f"traces: exported over OTLP/HTTP to {endpoint}")
    print()
    print(render(outcomes, wall_s=time.perf_counter() - started))
    print(
        "\nEvery answer also carries x-gate-model, x-gate-attempts, x-gate-cost-usd and "
        "x-request-id headers.\nServe it yourself: "
        f"uvicorn {EXAMPLES[args.example]}:app --port 8000"
    )
    return 0
