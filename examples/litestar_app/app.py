"""The gate_mw Litestar example: the FastAPI example's three routes, written the Litestar way.

Run it from the repository root::

    uvicorn examples.litestar_app.app:app
    curl -s localhost:8000/summarise -H 'content-type: application/json' -d '{"text": "..."}'

It reads the same model files as the FastAPI example (`examples/fastapi_app/gateway.yaml`,
the simulated provider: no keys, no network; `gateway.openrouter.yaml` when
OPENROUTER_API_KEY is set; or the file named by GATE_CONFIG), so both answer alike.
With OTEL_EXPORTER_OTLP_ENDPOINT set, spans go to that OTLP/HTTP endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from litestar import Litestar, asgi, get, post
from litestar.logging import LoggingConfig
from litestar.params import JSONBody

from examples import _config
from gate_mw import ChatResult, Gateway, RoutePolicy, route_policy
from gate_mw.litestar import GateClient, GatePlugin

__all__ = ["app", "create_app", "gateway", "load_gateway", "route_handlers"]

SERVICE_NAME = "gate-mw-litestar-example"


class SummariseIn(msgspec.Struct):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class ClassifyIn(msgspec.Struct):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2_000)]
    labels: Annotated[list[str], msgspec.Meta(min_length=2, max_length=20)]


class AskIn(msgspec.Struct):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=4_000)]


class Tokens(msgspec.Struct):
    input: int
    output: int


class Answer(msgspec.Struct, kw_only=True):
    text: str
    model: str
    upstream_model: str
    attempts: int
    fallbacks: list[dict[str, Any]]  # the failed attempts, in order
    tokens: Tokens
    cost_usd: float | None
    latency_ms: float


class Classification(Answer, kw_only=True):
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


# status_code=200: these POSTs compute an answer, they create nothing (Litestar's default is 201).
@post("/summarise", status_code=200)
@route_policy(
    models=["claude-sonnet", "gpt-4o", "gemini-pro"],  # ordered fallback chain
    timeout=15, deadline=30, retries=1, max_tokens=200,
)
async def summarise(data: JSONBody[SummariseIn], gate: GateClient) -> Answer:
    result = await gate.chat([
        {"role": "system", "content": "Summarise the user's text in one sentence."},
        {"role": "user", "content": data.text},
    ])
    return Answer(**_fields(result))


# A policy can also sit in `opt`, on a handler or on a router or controller to cover all of
# its routes; the closest layer wins. Same as @route_policy(models=["gpt-4o-mini"], ...).
@post("/classify", status_code=200, opt={"gate_policy": RoutePolicy(
    models=("gpt-4o-mini",), max_tokens=5, timeout=5, retries=2, temperature=0,
)})
async def classify(data: JSONBody[ClassifyIn], gate: GateClient) -> Classification:
    labels = ", ".join(data.labels)
    result = await gate.chat([
        {"role": "system", "content": f"Classify the text. Answer with one of: {labels}."},
        {"role": "user", "content": data.text},
    ])
    reply = result.text.strip().lower()
    label = next((label for label in data.labels if label.lower() in reply), None)
    return Classification(**_fields(result), label=label)


@post("/ask", status_code=200)  # no policy: the gateway's default_policy applies
async def ask(data: JSONBody[AskIn], gate: GateClient) -> Answer:
    result = await gate.chat([{"role": "user", "content": data.question}], max_tokens=300)
    return Answer(**_fields(result))


@get("/health")
async def health() -> dict[str, str]:
    """Makes no model call, so the middleware adds no `x-gate-*` headers."""
    return {"status": "ok"}


route_handlers = [summarise, classify, ask, health]


def load_gateway(env: Mapping[str, str] = os.environ) -> Gateway:
    """The example's gateway for `env` (see `examples._config`)."""
    return _config.load_gateway(env, service_name=SERVICE_NAME)


def create_app(gateway: Gateway, inspect_key: str | None = None) -> Litestar:
    # The plugin adds the middleware, the `gate` dependency, the gate error handler and
    # the gateway's lifespan (startup checks every route's policy). Leaving the root logger
    # alone keeps httpx's per-request INFO lines out of the demo's output.
    handlers: list[Any] = list(route_handlers)
    if inspect_key:  # opt-in: reports, experiments, cooldowns and the dashboard at /gate/
        inspector = gateway.inspector(key=inspect_key)

        @asgi("/gate", is_mount=True, copy_scope=True)
        async def inspect(scope: Any, receive: Any, send: Any) -> None:  # plain ASGI
            await inspector(scope, receive, send)

        handlers.append(inspect)
    return Litestar(
        handlers, plugins=[GatePlugin(gateway)],
        logging_config=LoggingConfig(configure_root_logger=False),
    )


gateway = load_gateway()
app = create_app(gateway, os.environ.get("GATE_INSPECT_KEY"))
