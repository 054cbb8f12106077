"""The gate_mw FastAPI example: three routes, three model policies, one gateway.

Run it from the repository root::

    uvicorn examples.fastapi_app.app:app
    curl -s localhost:8000/summarise -H 'content-type: application/json' -d '{"text": "..."}'

It is also an OpenAI- and Anthropic-compatible proxy at /v1 (docs/proxy.md)::

    curl -s localhost:8000/v1/chat/completions -d '{"model": "reliable", "messages": [...]}'

Models come from `gateway.yaml` (the simulated provider: no keys, no network), or from
`gateway.openrouter.yaml` when OPENROUTER_API_KEY is set, or from the file named by
GATE_CONFIG. With OTEL_EXPORTER_OTLP_ENDPOINT set, traces, metrics and logs go there over
OTLP (OTEL_EXPORTER_OTLP_PROTOCOL picks HTTP or gRPC). With GATE_INSPECT_KEY set, the
dashboard is at /gate/?key=<that key>.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from examples import _config
from gate_mw import ChatResult, Experiment, Gateway, GatewayMiddleware, route_policy
from gate_mw.fastapi import GateClient
from gate_mw.proxy.fastapi import openai_router
from gate_mw.responses import sse_response

__all__ = ["app", "create_app", "gateway", "load_gateway", "router"]

SERVICE_NAME = "gate-mw-example"


class SummariseIn(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)


class ClassifyIn(BaseModel):
    text: str = Field(min_length=1, max_length=2_000)
    labels: list[str] = Field(min_length=2, max_length=20)


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4_000)


class Tokens(BaseModel):
    input: int
    output: int


class Answer(BaseModel):
    text: str
    model: str
    upstream_model: str
    attempts: int
    fallbacks: list[dict[str, Any]] = Field(description="the failed attempts, in order")
    tokens: Tokens
    cost_usd: float | None
    latency_ms: float


class Classification(Answer):
    label: str | None


def _fields(result: ChatResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "model": result.model,
        "upstream_model": result.provider_model,
        "attempts": len(result.attempts),
        "fallbacks": [attempt.to_dict() for attempt in result.attempts if not attempt.ok],
        "tokens": Tokens(input=result.input_tokens, output=result.output_tokens),
        "cost_usd": result.cost_usd,
        "latency_ms": round(result.latency_s * 1000, 1),
    }


router = APIRouter()


@router.post("/summarise")
@route_policy(
    models=["claude-sonnet", "gpt-4o", "gemini-pro"],  # ordered fallback chain
    timeout=15, deadline=30, retries=1, max_tokens=200,
)
async def summarise(body: SummariseIn, gate: GateClient) -> Answer:
    result = await gate.chat([
        {"role": "system", "content": "Summarise the user's text in one sentence."},
        {"role": "user", "content": body.text},
    ])
    return Answer(**_fields(result))


@router.post("/classify")
@route_policy(models=["gpt-4o-mini"], max_tokens=5, timeout=5, retries=2, temperature=0)
async def classify(body: ClassifyIn, gate: GateClient) -> Classification:
    labels = ", ".join(body.labels)
    result = await gate.chat([
        {"role": "system", "content": f"Classify the text. Answer with one of: {labels}."},
        {"role": "user", "content": body.text},
    ])
    reply = result.text.strip().lower()
    label = next((label for label in body.labels if label.lower() in reply), None)
    return Classification(**_fields(result), label=label)


@router.post("/ask")  # no @route_policy: the gateway's default_policy applies
async def ask(body: AskIn, gate: GateClient) -> Answer:
    result = await gate.chat([{"role": "user", "content": body.question}], max_tokens=300)
    return Answer(**_fields(result))


@router.post("/stream")
@route_policy(models=["gpt-4o", "gemini-pro"], ttft=10, deadline=30)
async def stream(body: AskIn, gate: GateClient) -> StreamingResponse:
    """The answer as OpenAI-compatible server-sent events."""
    return sse_response(gate.stream([{"role": "user", "content": body.question}], max_tokens=300))


@router.post("/draft")
@route_policy(
    models=["gpt-4o-mini"], timeout=10,
    experiment=Experiment("draft-model", arms={"mini": "gpt-4o-mini", "4o": "gpt-4o"}),
)
async def draft(body: AskIn, gate: GateClient) -> Answer:
    """An A/B test: each caller (x-gate-caller) always gets the same arm."""
    result = await gate.chat([{"role": "user", "content": body.question}], max_tokens=100)
    return Answer(**_fields(result))


@router.get("/health")
async def health() -> dict[str, str]:
    """Makes no model call, so the middleware adds no `x-gate-*` headers."""
    return {"status": "ok"}


def load_gateway(env: Mapping[str, str] = os.environ) -> Gateway:
    """The example's gateway for `env` (see `examples._config`)."""
    return _config.load_gateway(env, service_name=SERVICE_NAME)


def create_app(gateway: Gateway, inspect_key: str | None = None) -> FastAPI:
    app = FastAPI(title="gate_mw example", lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    app.include_router(router)
    # Any service, in any language, can call the same models and policies at /v1.
    app.include_router(openai_router(gateway), prefix="/v1")
    if inspect_key:  # opt-in: reports, experiments, cooldowns and the dashboard
        app.mount("/gate", gateway.inspector(key=inspect_key))
    return app


gateway = load_gateway()
app = create_app(gateway, os.environ.get("GATE_INSPECT_KEY"))
