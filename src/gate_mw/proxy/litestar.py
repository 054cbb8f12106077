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
    from ._asgi import Endpoint
    from ._core import Proxy

__all__ = ["openai_router"]


def _handler(path: str, endpoint: Endpoint, item: Endpoint | None = None) -> ASGIRouteHandler:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        # A mount: `item` answers for `{path}/{id}`, `endpoint` for `path` itself.
        chosen = item if item is not None and scope["path"].strip("/") else endpoint
        await chosen(scope, receive, send)  # type: ignore[arg-type]

    # Litestar's ASGI handlers cannot take path parameters, so `/keys/{id}` is the rest of
    # a mount at `/keys` (the endpoint reads the id from the path), and so on.
    name = f"gate_mw.proxy{path}"
    return asgi(path, is_mount=item is not None, copy_scope=False, name=name)(handle)


def openai_router(target: Gateway | Proxy, path: str = "/v1") -> Router:
    """A `Router` at `path` serving the OpenAI- and Anthropic-compatible endpoints."""
    endpoints = dict(proxy_of(target).endpoints())
    items = {p.rsplit("/{", 1)[0]: endpoints.pop(p) for p in list(endpoints) if "{" in p}
    handlers = [_handler(p, e, items.get(p)) for p, e in endpoints.items()]
    return Router(path, route_handlers=handlers)
