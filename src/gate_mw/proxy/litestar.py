"""The proxy for Litestar: one router.

    app = Litestar([openai_router(gateway)], plugins=[GatePlugin(gateway)])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import require

require("litestar", "litestar")

from litestar import Router, asgi  # noqa: E402 - after the guard, for its clear message
from litestar.handlers import ASGIRouteHandler  # noqa: E402

from .starlette import proxy_of  # noqa: E402

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from ..gateway import Gateway
    from ._core import Endpoint, Proxy

__all__ = ["openai_router"]


def _handler(path: str, endpoint: Endpoint) -> ASGIRouteHandler:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        await endpoint(scope, receive, send)  # type: ignore[arg-type]

    # Litestar's path parameters carry their type.
    return asgi(path.replace("{key_id}", "{key_id:str}"), is_mount=False, name=f"gate_mw.proxy{path}")(handle)


def openai_router(target: Gateway | Proxy, path: str = "/v1") -> Router:
    """A `Router` at `path` serving the OpenAI- and Anthropic-compatible endpoints."""
    return Router(path, route_handlers=[_handler(p, e) for p, e in proxy_of(target).endpoints()])
