"""What only Litestar has: layered `opt` policies, handler objects, routing before middleware.

Behaviour shared with FastAPI and Starlette is tested once, in tests/parity.
"""

from __future__ import annotations

import sys
import types
from collections.abc import MutableMapping
from typing import Any

import pytest
from litestar import Controller, Litestar, Request, Response, Router, get
from litestar.exceptions import ImproperlyConfiguredException
from litestar.middleware import DefineMiddleware

from _apps import serve, startup_error
from gate_mw import (
    GateError,
    Gateway,
    GatewayMiddleware,
    PolicyError,
    RoutePolicy,
    middleware,
    route_policy,
)
from gate_mw.litestar import GateClient, GatePlugin, GatePluginConfig
from gate_mw.policy import policy_of

pytestmark = pytest.mark.anyio

# No model is called in these tests: the gateway's three simulated aliases only name chains.
SMALL = RoutePolicy(models=("sim-small",))
UNKNOWN = RoutePolicy(models=("gpt-nope",))
MEDIUM = RoutePolicy(models=("sim-medium",))
LARGE = RoutePolicy(models=("sim-large",))


async def describe(gate: GateClient) -> dict[str, Any]:
    return {"models": list(gate.policy.models), "route": gate.route}


# -- where a policy comes from ------------------------------------------------------------


def test_route_policy_above_get_is_stored_in_the_handler_opt() -> None:
    @route_policy(SMALL)
    @get("/above")
    async def above(gate: GateClient) -> dict[str, Any]:
        return await describe(gate)

    assert above.opt["gate_policy"] is SMALL
    assert not hasattr(above, "__gate_policy__")  # Litestar 3 handlers are slotted
    assert policy_of(above) is SMALL


def test_route_policy_below_get_is_found_through_the_handler_fn() -> None:
    @get("/below")
    @route_policy(SMALL)
    async def below(gate: GateClient) -> dict[str, Any]:
        return await describe(gate)

    assert "gate_policy" not in below.opt
    assert policy_of(below) is SMALL


def test_two_policies_on_one_handler_are_refused() -> None:
    async def both(gate: GateClient) -> dict[str, Any]:
        return await describe(gate)

    with pytest.raises(TypeError, match="already has a route policy"):
        route_policy(MEDIUM)(get("/both")(route_policy(SMALL)(both)))
    with pytest.raises(TypeError, match="already has a route policy"):
        route_policy(MEDIUM)(get("/both", opt={"gate_policy": SMALL})(both))


class Items(Controller):
    path = "/items"
    opt = {"gate_policy": MEDIUM}  # noqa: RUF012 - Litestar's own layer attribute

    @get("/inherited")
    async def inherited(self, gate: GateClient) -> dict[str, Any]:
        return await describe(gate)

    @get("/own")
    @route_policy(LARGE)
    async def own(self, gate: GateClient) -> dict[str, Any]:
        return await describe(gate)


@get("/from-router")
async def from_router(gate: GateClient) -> dict[str, Any]:
    return await describe(gate)


@get("/handler-opt", opt={"gate_policy": LARGE})
async def handler_opt(gate: GateClient) -> dict[str, Any]:
    return await describe(gate)


@get("/unset")
async def unset(gate: GateClient) -> dict[str, Any]:
    return await describe(gate)


async def test_opt_policies_are_inherited_and_the_closest_layer_wins() -> None:
    router = Router("/api", route_handlers=[from_router, handler_opt, Items], opt={"gate_policy": SMALL})
    app = Litestar([router, unset], plugins=[GatePlugin(Gateway())])
    async with serve(app) as client:
        answers = {path: (await client.get(path)).json() for path in (
            "/api/from-router", "/api/handler-opt", "/api/items/inherited", "/api/items/own", "/unset",
        )}
    assert answers == {
        "/api/from-router": {"models": ["sim-small"], "route": "/api/from-router"},
        "/api/handler-opt": {"models": ["sim-large"], "route": "/api/handler-opt"},
        "/api/items/inherited": {"models": ["sim-medium"], "route": "/api/items/inherited"},
        "/api/items/own": {"models": ["sim-large"], "route": "/api/items/own"},
        "/unset": {"models": ["sim-small", "sim-medium", "sim-large"], "route": "/unset"},
    }


async def test_a_bad_policy_in_router_opt_fails_at_startup_naming_handler_and_field() -> None:
    router = Router("/api", route_handlers=[from_router], opt={"gate_policy": UNKNOWN})
    error = await startup_error(Litestar([router], plugins=[GatePlugin(Gateway())]))
    assert isinstance(error, PolicyError)
    assert (error.route, error.field) == (f"{__name__}.from_router", "models")


async def test_opt_holding_something_else_than_a_policy_fails_at_startup() -> None:
    router = Router("/api", route_handlers=[from_router], opt={"gate_policy": {"models": ["sim-small"]}})
    error = await startup_error(Litestar([router], plugins=[GatePlugin(Gateway())]))
    assert isinstance(error, PolicyError)
    assert error.field == "gate_policy"
    assert "must be a RoutePolicy, not dict" in str(error)


# -- routing happens before middleware --------------------------------------------------


async def test_404_and_405_never_reach_the_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    contexts: list[str] = []

    class Counting(middleware._Responder):
        """Records the paths the middleware made a routing context for."""

        def __init__(self, gateway: Gateway, scope: MutableMapping[str, Any], send: Any) -> None:
            super().__init__(gateway, scope, send)
            contexts.append(scope["path"])

    monkeypatch.setattr(middleware, "_Responder", Counting)
    async with serve(Litestar([unset], plugins=[GatePlugin(Gateway())])) as client:
        missing = await client.get("/missing")
        wrong_method = await client.post("/unset")
        found = await client.get("/unset")
    assert (missing.status_code, wrong_method.status_code, found.status_code) == (404, 405, 200)
    assert "x-request-id" not in missing.headers
    assert contexts == ["/unset"]


# -- the plugin -------------------------------------------------------------------------


def test_the_plugin_keeps_one_gateway_middleware() -> None:
    gateway = Gateway()
    app = Litestar(
        [unset], middleware=[DefineMiddleware(GatewayMiddleware, gateway=gateway)],  # type: ignore[arg-type]
        plugins=[GatePlugin(gateway)],
    )
    middleware = [m for m in app.middleware if isinstance(m, DefineMiddleware)]
    assert [m.middleware for m in middleware] == [GatewayMiddleware]


def test_a_taken_dependency_name_is_refused() -> None:
    with pytest.raises(ImproperlyConfiguredException, match="dependency_key"):
        Litestar([unset], dependencies={"gate": lambda: None}, plugins=[GatePlugin(Gateway())])


async def test_the_dependency_name_can_be_chosen() -> None:
    @get("/llm")
    async def llm_route(llm: GateClient) -> dict[str, Any]:
        return await describe(llm)

    plugin = GatePlugin(GatePluginConfig(Gateway(), dependency_key="llm"))
    async with serve(Litestar([llm_route], plugins=[plugin])) as client:
        response = await client.get("/llm")
    assert response.json()["route"] == "/llm"


async def test_handlers_may_import_gate_client_for_type_checking_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module with postponed annotations that never imports GateClient at run time.
    module = types.ModuleType("lazy_handlers")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    source = (
        "from __future__ import annotations\n"
        "from litestar import get\n"
        "@get('/lazy')\n"
        "async def lazy(gate: GateClient) -> dict[str, str]:\n"
        "    return {'route': gate.route}\n"
    )
    exec(compile(source, "lazy_handlers.py", "exec"), module.__dict__)
    assert "GateClient" not in module.__dict__
    async with serve(Litestar([module.lazy], plugins=[GatePlugin(Gateway())])) as client:
        response = await client.get("/lazy")
    assert response.json() == {"route": "/lazy"}


async def test_the_apps_own_gate_error_handler_wins() -> None:
    def teapot(request: Request[Any, Any, Any], exc: GateError) -> Response[dict[str, str]]:
        return Response({"mine": exc.error_type}, status_code=418)

    @get("/fails")
    async def fails(gate: GateClient) -> dict[str, Any]:
        await gate.chat([{"role": "user", "content": "hi"}], model="gpt-nope")
        raise AssertionError("unreachable: the model is unknown")

    app = Litestar([fails], exception_handlers={GateError: teapot}, plugins=[GatePlugin(Gateway())])
    async with serve(app) as client:
        response = await client.get("/fails")
    assert (response.status_code, response.json()) == (418, {"mine": "policy_error"})


async def test_without_managed_lifespan_startup_checks_nothing() -> None:
    router = Router("/api", route_handlers=[from_router], opt={"gate_policy": UNKNOWN})
    plugin = GatePlugin(GatePluginConfig(Gateway(), manage_lifespan=False))
    async with serve(Litestar([router], plugins=[plugin])) as client:
        response = await client.get("/api/from-router")
    # Checked on first use instead, and answered as a gate error.
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "policy_error"
