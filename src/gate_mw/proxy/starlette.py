"""The proxy for Starlette: routes to mount where the OpenAI base URL should be.

app = Starlette(routes=[Mount("/v1", routes=openai_routes(gateway))], lifespan=gateway.lifespan)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Route

from ._core import Proxy

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = ["openai_routes", "proxy_of"]


def proxy_of(target: Gateway | Proxy) -> Proxy:
    """`target` if it is a `Proxy`, else a proxy over the gateway with its file's settings."""
    return target if isinstance(target, Proxy) else Proxy(target)


def openai_routes(target: Gateway | Proxy) -> list[BaseRoute]:
    """`/chat/completions`, `/messages`, `/models`, `/keys`, `/healthz` and `/readyz`:
    relative routes, for a `Mount` (usually at `/v1`)."""
    # Each endpoint is an ASGI app that answers a wrong method itself, in the API's JSON.
    return [
        Route(path, endpoint, name=f"gate_mw.proxy{path}") for path, endpoint in proxy_of(target).endpoints()
    ]
