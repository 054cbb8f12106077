"""`GatewayMiddleware`: puts a routing context on every HTTP request, adds `x-gate-*`
headers to responses of requests that called a model, and answers gate errors as JSON."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._context import SCOPE_KEY, RoutingContext, activate, deactivate
from .errors import GateError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["GatewayMiddleware"]

logger = logging.getLogger("gate_mw")


class GatewayMiddleware:
    """Pure ASGI and stateless; per-request state lives in a `_Responder`."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = self.gateway.new_context(scope)
        scope[SCOPE_KEY] = context
        await _Responder(self.app, context, send)(scope, receive)


class _Responder:
    __slots__ = ("app", "context", "send", "started")

    def __init__(self, app: ASGIApp, context: RoutingContext, send: Send) -> None:
        self.app = app
        self.context = context
        self.send = send
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive) -> None:
        token = activate(self.context)
        try:
            await self.app(scope, receive, self.send_with_headers)
        except GateError as exc:
            if self.started:
                raise
            await self.send_error(exc)
        finally:
            deactivate(token)

    async def send_with_headers(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if self.context.calls:
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.context.response_headers() if h[0] not in present)
                message = {**message, "headers": headers}
        await self.send(message)

    async def send_error(self, exc: GateError) -> None:
        """Answer an unhandled gate error with its status and a JSON body, never a trace."""
        context = self.context
        logger.warning(
            "gate_mw: request %s failed: %s %s", context.request_id, exc.error_type, exc
        )
        body: dict[str, Any] = {"error": {**exc.to_dict(), "request_id": context.request_id}}
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        await self.send_with_headers(
            {"type": "http.response.start", "status": exc.status_code, "headers": headers}
        )
        await self.send({"type": "http.response.body", "body": payload})
