"""`ProxyApp`: the standalone server's ASGI app (`gate-mw serve`), with no framework.

A framework's router, mounts and exception middleware cost a request more CPU than the
proxy's own work around `gate.chat`, and the proxy needs none of them: its few paths are
looked up in a dict (two templates, `/models/{model}` and `/keys/{key_id}`, by prefix),
an unknown path is a 404 in OpenAI's error shape, and the lifespan runs the gateway's.
Nor does it need `GatewayMiddleware` around it: its endpoints answer gate errors and set
the `x-gate-*` headers themselves, so the app makes each request's routing context (on
the scope, current, continuing an incoming trace) as the middleware would, and no more.
The Starlette, FastAPI and Litestar flavours, for mounting in an app, stay as they are.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from ..middleware import enter_request, exit_request
from ._errors import ProxyError

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from ._asgi import Endpoint
    from ._core import Proxy

__all__ = ["ProxyApp"]

#: Where the endpoints are served: at `/v1`, and at the root (where LiteLLM clients also call).
PREFIXES = ("/v1", "")


class ProxyApp:
    """The proxy's endpoints at each of `prefixes`, and the gateway's lifespan."""

    __slots__ = ("_paths", "_templates", "gateway", "proxy")

    def __init__(self, proxy: Proxy, prefixes: tuple[str, ...] = PREFIXES) -> None:
        self.proxy = proxy
        self.gateway = proxy.gateway
        self._paths: dict[str, Endpoint] = {}
        # (path up to the parameter, its name, endpoint): `/v1/models/` + `{model}`.
        self._templates: list[tuple[str, str, Endpoint]] = []
        for prefix in prefixes:
            for path, endpoint in proxy.endpoints():
                head, brace, name = path.partition("{")
                if brace:
                    self._templates.append((prefix + head, name.rstrip("}"), endpoint))
                else:
                    self._paths[prefix + path] = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):  # servers give the full path (ASGI 3)
                path = path[len(root) :]
            endpoint = self._paths.get(path) or self._templated(scope, path)
            context = self.gateway.new_context(scope)
            tokens = enter_request(scope, context)
            try:
                if endpoint is not None:
                    await endpoint(scope, receive, send)
                else:
                    error = ProxyError(404, f"Invalid URL ({scope['method']} {path})", code="unknown_url")
                    await self.proxy.error("openai", error, context).send(receive, send)
            finally:
                exit_request(scope, tokens)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # `gate-mw serve` runs uvicorn without websockets
            raise RuntimeError(f"the proxy serves HTTP only, not {kind!r}")

    def _templated(self, scope: Scope, path: str) -> Endpoint | None:
        for head, name, endpoint in self._templates:
            if path.startswith(head):
                value = path[len(head) :]
                if value and "/" not in value:
                    scope["path_params"] = {name: value}
                    return endpoint
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around `gateway.lifespan`, as Starlette runs it."""
        started = False
        await receive()  # lifespan.startup
        try:
            async with self.proxy.gateway.lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException:
            failed: dict[str, Any] = {"message": traceback.format_exc()}
            kind = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": kind, **failed})
            raise
        await send({"type": "lifespan.shutdown.complete"})
