"""The proxy mounted in each framework, over a gateway whose models are a FakeUpstream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI
from litestar import Litestar
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from _apps import ENV, anthropic_entry, make_gateway, openai_entry
from gate_mw import Gateway, GatewayMiddleware
from gate_mw.litestar import GatePlugin
from gate_mw.proxy import Proxy, ProxySettings
from gate_mw.proxy.fastapi import openai_router
from gate_mw.proxy.litestar import openai_router as litestar_router
from gate_mw.proxy.starlette import openai_routes
from gate_mw.testing import FakeUpstream

__all__ = ["FRAMEWORKS", "MASTER", "TEAM_KEY", "Framework", "Recorder", "build", "proxy_gateway"]

Framework = Literal["fastapi", "starlette", "litestar"]
FRAMEWORKS: tuple[Framework, ...] = ("fastapi", "starlette", "litestar")
MASTER = "sk-master-TEST-0123456789"
TEAM_KEY = "sk-team-a-TEST-abcdef"
PROXY_ENV = {**ENV, "PROXY_MASTER": MASTER, "TEAM_A_KEY": TEAM_KEY}


def proxy_gateway(up: FakeUpstream, **options: Any) -> Gateway:
    """`primary` (gpt-4o) and `backup` (an Anthropic model) behind the fake upstream, and
    a `fast` policy falling back from one to the other."""
    models = [
        openai_entry(up, "primary", model="gpt-4o"),
        anthropic_entry(
            up, "backup", model="claude-haiku", input_cost_per_mtok=1.0, output_cost_per_mtok=5.0
        ),
    ]
    options.setdefault("policies", {"fast": {"models": ["primary", "backup"], "retries": 0}})
    options.setdefault("env", PROXY_ENV)
    return make_gateway(models, **options)


def proxy(gateway: Gateway, settings: Mapping[str, Any] | None = None) -> Proxy:
    """A proxy with a master key and one config key (team-a, which may use `backup` only)."""
    fields = {
        "master_key_env": "PROXY_MASTER",
        "keys": [{"name": "team-a", "key_env": "TEAM_A_KEY", "models": ["backup"]}],
        **(settings or {}),
    }
    return Proxy(gateway, ProxySettings.model_validate(fields), env=PROXY_ENV)


def build(framework: Framework, target: Proxy) -> Any:
    """An app serving `target` at /v1, with the gateway's middleware and lifespan."""
    gateway = target.gateway
    if framework == "fastapi":
        app = FastAPI(lifespan=gateway.lifespan)
        app.add_middleware(GatewayMiddleware, gateway=gateway)
        app.include_router(openai_router(target), prefix="/v1")
        return app
    if framework == "starlette":
        return Starlette(
            routes=[Mount("/v1", routes=openai_routes(target))],
            middleware=[Middleware(GatewayMiddleware, gateway=gateway)],
            lifespan=gateway.lifespan,
        )
    return Litestar([litestar_router(target)], plugins=[GatePlugin(gateway)])


class Recorder:
    """The transport a `CoalescingTransport` writes to, recording each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"
