"""One app spec, built natively in FastAPI, Starlette and Litestar.

Each route's behaviour is a framework-neutral coroutine taking the request's `Gate`, the
JSON body and the path parameters; each factory wraps it the way its framework is used:
FastAPI with `GateClient`, Starlette with `get_gate(request)`, Litestar with the plugin's
`gate` dependency. Policies are attached with `@route_policy` in every framework (on
Litestar alternately above and below `@get`/`@post`, the two placements users write).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fastapi import APIRouter, FastAPI
from fastapi import Request as FastAPIRequest
from litestar import Litestar, Router, get, post
from litestar import Request as LitestarRequest
from litestar.handlers import HTTPRouteHandler
from litestar.types import ControllerRouterHandler
from opentelemetry.sdk.trace import ReadableSpan
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from _apps import MESSAGES, anthropic_entry, make_gateway, openai_entry, serve, serve_http
from gate_mw import (
    Backoff,
    ChatResult,
    Gate,
    GateError,
    GateStream,
    Gateway,
    GatewayMiddleware,
    RoutePolicy,
    TelemetryConfig,
    route_policy,
)
from gate_mw.fastapi import GateClient
from gate_mw.litestar import GateClient as LitestarGate
from gate_mw.litestar import GatePlugin
from gate_mw.litestar import sse_response as litestar_sse
from gate_mw.litestar import text_event_stream as litestar_text_events
from gate_mw.responses import sse_response, text_event_stream
from gate_mw.starlette import get_gate
from gate_mw.testing import FakeUpstream

__all__ = [
    "FRAMEWORKS",
    "PRIMARY",
    "BACKUP",
    "ROUTES",
    "AppFactory",
    "Framework",
    "RouteSpec",
    "Telemetry",
    "build",
    "chat",
    "parity_gateway",
    "serve",
    "serve_http",
]

Framework = Literal["fastapi", "starlette", "litestar"]
FRAMEWORKS: tuple[Framework, ...] = ("fastapi", "starlette", "litestar")
Body = dict[str, Any]
Behaviour = Callable[[Gate | None, Body, dict[str, str]], Awaitable[Body]]
AppFactory = Callable[[Gateway, Sequence["RouteSpec"]], Any]

STARLETTE_STREAMS: dict[str, Callable[[GateStream], Response]] = {
    "sse": sse_response, "text": text_event_stream,
}
LITESTAR_STREAMS: dict[str, Callable[[GateStream], Any]] = {"sse": litestar_sse, "text": litestar_text_events}

#: Upstream model ids on the fake server: primary speaks OpenAI, backup Anthropic.
PRIMARY = "up-primary"
BACKUP = "up-backup"


class Telemetry(Protocol):
    """What the shared `telemetry` fixture gives (tests/conftest.py)."""

    config: TelemetryConfig

    def spans(self, name_prefix: str = "") -> list[ReadableSpan]: ...


@dataclass(frozen=True)
class RouteSpec:
    """One route: path (`{name}` parameters), method, policy and behaviour.

    A `prefix` puts the route in a group of its own, made the framework's way: an included
    `APIRouter(prefix=...)`, a Starlette `Mount`, a Litestar `Router`.
    """

    name: str
    path: str
    behaviour: Behaviour
    policy: RoutePolicy | None = None
    method: Literal["GET", "POST"] = "POST"
    uses_gate: bool = True
    prefix: str = ""
    stream: Literal["sse", "text"] | None = None
    """Answer with the framework's streaming response of `gate.stream(...)` instead."""


def result_json(result: ChatResult, gate: Gate) -> Body:
    return {
        "text": result.text,
        "model": result.model,
        "deployment": result.deployment,
        "cost_usd": result.cost_usd,
        "attempts": [attempt.outcome for attempt in result.attempts],
        "request_id": result.request_id,
        "route": gate.route,
    }


async def chat(gate: Gate | None, body: Body, params: dict[str, str]) -> Body:
    """Answer the body's messages (or a default prompt) under the route's policy."""
    assert gate is not None
    result = await gate.chat(
        body.get("messages", MESSAGES), model=body.get("model"), max_tokens=body.get("max_tokens")
    )
    return {**result_json(result, gate), "params": params}


async def degrade(gate: Gate | None, body: Body, params: dict[str, str]) -> Body:
    """Catch the gate's error and answer 200 with a fallback body."""
    try:
        return await chat(gate, body, params)
    except GateError as exc:
        return {"degraded": True, "error": exc.error_type}


async def plain(gate: Gate | None, body: Body, params: dict[str, str]) -> Body:
    return {"status": "ok"}


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("chat", "/chat", chat, RoutePolicy(models=("primary", "backup"), retries=0, max_tokens=50)),
    RouteSpec("default", "/default", chat),
    RouteSpec("named", "/named", chat, RoutePolicy(models=("backup",), name="summarise")),
    RouteSpec("item", "/items/{item_id}", chat, RoutePolicy(models=("primary",), retries=0)),
    RouteSpec("org_item", "/items/{item_id}", chat, RoutePolicy(models=("primary",)), prefix="/orgs/{org}"),
    RouteSpec("retry", "/retry", chat, RoutePolicy(
        models=("primary", "backup"), retries=2, backoff=Backoff(initial=0, maximum=0),
    )),
    RouteSpec("deadline", "/deadline", chat, RoutePolicy(models=("primary", "backup"), deadline=0.3)),
    RouteSpec("degrade", "/degrade", degrade, RoutePolicy(models=("primary",), retries=0)),
    RouteSpec("plain", "/plain", plain, method="GET", uses_gate=False),
    RouteSpec("sse", "/stream", chat, RoutePolicy(models=("primary", "backup"), retries=0), stream="sse"),
    RouteSpec("events", "/events", chat, RoutePolicy(models=("primary", "backup"), retries=0), stream="text"),
)


def parity_gateway(up: FakeUpstream, telemetry: TelemetryConfig | None = None) -> Gateway:
    """primary (OpenAI API) then backup (Anthropic API), both on the fake upstream.

    The default policy lists them the other way round, so a route without a policy is
    seen to use it.
    """
    prices = {"input_cost_per_mtok": 2.0, "output_cost_per_mtok": 8.0}
    return make_gateway(
        [openai_entry(up, "primary", PRIMARY, **prices), anthropic_entry(up, "backup", BACKUP, **prices)],
        default_policy={"models": ["backup", "primary"], "retries": 0},
        telemetry=telemetry,
    )


def _grouped(routes: Sequence[RouteSpec]) -> dict[str, list[RouteSpec]]:
    groups: dict[str, list[RouteSpec]] = {}
    for spec in routes:
        groups.setdefault(spec.prefix, []).append(spec)
    return groups


def open_stream(gate: Gate, body: Body) -> GateStream:
    """The stream a streaming route answers with."""
    return gate.stream(body.get("messages", MESSAGES), model=body.get("model"))


def _json(raw: bytes) -> Body:
    return dict(json.loads(raw)) if raw else {}


def _named(endpoint: Any, spec: RouteSpec) -> Any:
    """Give each framework's endpoint the spec's name, as a hand-written one would have."""
    endpoint.__name__ = endpoint.__qualname__ = spec.name
    return endpoint


# -- FastAPI -----------------------------------------------------------------------------


def _fastapi_endpoint(spec: RouteSpec) -> Any:
    if spec.uses_gate:

        async def endpoint(request: FastAPIRequest, gate: GateClient) -> Any:
            body = _json(await request.body())
            if spec.stream is not None:
                return STARLETTE_STREAMS[spec.stream](open_stream(gate, body))
            return await spec.behaviour(gate, body, dict(request.path_params))
    else:

        async def endpoint(request: FastAPIRequest) -> Body:  # type: ignore[misc]
            return await spec.behaviour(None, _json(await request.body()), dict(request.path_params))

    endpoint = _named(endpoint, spec)
    return endpoint if spec.policy is None else route_policy(spec.policy)(endpoint)


def fastapi_app(gateway: Gateway, routes: Sequence[RouteSpec]) -> FastAPI:
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    for prefix, specs in _grouped(routes).items():
        router = APIRouter(prefix=prefix)
        for spec in specs:
            router.add_api_route(spec.path, _fastapi_endpoint(spec), methods=[spec.method])
        app.include_router(router)
    return app


# -- Starlette ---------------------------------------------------------------------------


def _starlette_endpoint(spec: RouteSpec) -> Any:
    async def endpoint(request: Request) -> Response:
        gate = get_gate(request) if spec.uses_gate else None
        body = _json(await request.body())
        if spec.stream is not None:
            assert gate is not None
            return STARLETTE_STREAMS[spec.stream](open_stream(gate, body))
        return JSONResponse(await spec.behaviour(gate, body, dict(request.path_params)))

    endpoint = _named(endpoint, spec)
    return endpoint if spec.policy is None else route_policy(spec.policy)(endpoint)


def starlette_app(gateway: Gateway, routes: Sequence[RouteSpec]) -> Starlette:
    table: list[BaseRoute] = []
    for prefix, specs in _grouped(routes).items():
        group = [Route(spec.path, _starlette_endpoint(spec), methods=[spec.method]) for spec in specs]
        table.extend(group if not prefix else [Mount(prefix, routes=group)])
    return Starlette(
        routes=table, middleware=[Middleware(GatewayMiddleware, gateway=gateway)],
        lifespan=gateway.lifespan,
    )


# -- Litestar ----------------------------------------------------------------------------


def _litestar_handler(spec: RouteSpec, index: int) -> HTTPRouteHandler:
    if spec.uses_gate:

        async def endpoint(request: LitestarRequest[Any, Any, Any], gate: LitestarGate) -> Any:
            body = _json(await request.body())
            if spec.stream is not None:
                return LITESTAR_STREAMS[spec.stream](open_stream(gate, body))
            return await spec.behaviour(gate, body, dict(request.path_params))
    else:

        async def endpoint(request: LitestarRequest[Any, Any, Any]) -> Body:  # type: ignore[misc]
            return await spec.behaviour(None, _json(await request.body()), dict(request.path_params))

    endpoint = _named(endpoint, spec)
    decorate = (post if spec.method == "POST" else get)(_typed(spec.path), status_code=200)
    if spec.policy is None:
        return decorate(endpoint)
    attach = route_policy(spec.policy)
    if index % 2:
        return attach(decorate(endpoint))  # above @post: stored in the handler's opt
    return decorate(attach(endpoint))  # below @post: stored on the function


def _typed(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"{\1:str}", path)


def litestar_app(gateway: Gateway, routes: Sequence[RouteSpec]) -> Litestar:
    handlers: list[ControllerRouterHandler] = []
    for prefix, specs in _grouped(routes).items():
        group = [_litestar_handler(spec, routes.index(spec)) for spec in specs]
        handlers.extend(group if not prefix else [Router(_typed(prefix), route_handlers=group)])
    return Litestar(handlers, plugins=[GatePlugin(gateway)])


_FACTORIES: dict[Framework, AppFactory] = {
    "fastapi": fastapi_app,
    "starlette": starlette_app,
    "litestar": litestar_app,
}


def build(framework: Framework, gateway: Gateway, routes: Sequence[RouteSpec] = ROUTES) -> Any:
    """The spec's app in `framework`."""
    return _FACTORIES[framework](gateway, routes)
