"""`GatewayMiddleware`: puts a routing context on every HTTP request, adds `x-gate-*`
headers to responses of requests that called a model, and answers gate errors as JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ._context import SCOPE_KEY, RoutingContext, activate, deactivate
from .errors import GateError

if TYPE_CHECKING:  # types only: the middleware is pure ASGI, `import gate_mw` loads no framework
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .gateway import Gateway
    from .telemetry._propagation import continue_trace, end_continued
else:
    # OpenTelemetry's propagation API loads at the first request, not at `import gate_mw`
    # (what an app's module writes): these stand-ins bind the real functions in their
    # place, once, and call them; later requests call the real ones directly.

    def continue_trace(scope):
        _bind_propagation()
        return continue_trace(scope)

    def end_continued(token):
        _bind_propagation()
        end_continued(token)


def _bind_propagation() -> None:
    global continue_trace, end_continued
    from .telemetry._propagation import continue_trace, end_continued

__all__ = ["GatewayMiddleware", "enter_request", "error_response", "exit_request"]

logger = logging.getLogger("gate_mw")


def enter_request(scope: Scope, context: RoutingContext) -> tuple[object, object | None]:
    """Put `context` on the request's scope (`SCOPE_KEY`) and make it current, continuing an
    incoming traceparent when no server instrumentation did; `exit_request` undoes it."""
    scope[SCOPE_KEY] = context
    return activate(context), continue_trace(scope)


def exit_request(scope: Scope, tokens: tuple[object, object | None]) -> None:
    token, trace_token = tokens
    if trace_token is not None:
        end_continued(trace_token)
    deactivate(token)  # type: ignore[arg-type]
    # The scope and its context refer to each other: part them, so that the request's
    # objects are freed now rather than by the cycle collector.
    scope.pop(SCOPE_KEY, None)


def error_response(exc: GateError, context: RoutingContext) -> tuple[int, bytes]:
    """The status and JSON body answering an unhandled gate error; logs it.

    Shared by the middleware and framework exception handlers (Litestar answers handler
    exceptions before they reach any middleware), so every framework sends the same body.
    """
    logger.warning("gate_mw: request %s failed: %s %s", context.request_id, exc.error_type, exc)
    body: dict[str, Any] = {"error": {**exc.to_dict(), "request_id": context.request_id}}
    return exc.status_code, json.dumps(body).encode()


class GatewayMiddleware:
    """Pure ASGI and stateless; per-request state lives in the request's `_Responder`.

    The request's `RoutingContext` is on its scope (`SCOPE_KEY`) and current (see
    `current_context`) while the app handles it."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = _Responder(self.gateway, scope, send)
        tokens = enter_request(scope, context)
        try:
            await self.app(scope, receive, context.send_with_headers)
        except GateError as exc:
            if context.responded:
                raise
            await context.send_error(exc)
        finally:
            exit_request(scope, tokens)


class _Responder(RoutingContext):
    """The routing context of a request through the middleware, which also sends the
    response: one object per request is all a route that calls no model costs."""

    __slots__ = ("held", "responded", "send")

    def __init__(self, gateway: Gateway, scope: Scope, send: Send) -> None:
        RoutingContext.__init__(self, gateway, scope)
        self.send = send
        self.responded = False  # the response head went out
        self.held: Message | None = None

    def send_with_headers(self, message: Message) -> Awaitable[None]:
        """The app's `send`. A plain function: on the common path it hands back the
        awaitable of the server's `send` rather than wrapping it in a coroutine."""
        if message["type"] == "http.response.start":
            calls = self.calls
            if calls is None:  # no model called, the common case: nothing to add
                self.responded = True
                return self.send(message)
            if not calls.streaming:
                return self.send(self.headed(message))
        elif self.held is None:
            return self.send(message)
        return self._send_held(message)

    async def _send_held(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            # A stream has not committed to a model yet: hold the head until the first
            # body message, so x-gate-model names the model that answers (or, if every
            # model fails first, the error is answered instead).
            self.held = message
            return
        held, self.held = self.held, None
        if held is not None:
            await self.send(self.headed(held))
        await self.send(message)

    def headed(self, message: Message) -> Message:
        """The response head, with `x-gate-*` headers if a model was called."""
        self.responded = True
        calls = self.calls
        return self.with_headers(message) if calls is not None and calls.count else message

    def with_headers(self, message: Message) -> Message:
        """`message` (a response head) with the `x-gate-*` headers the app did not set."""
        headers = list(message.get("headers", ()))
        present = {name.lower() for name, _ in headers}
        headers.extend(h for h in self.response_headers() if h[0] not in present)
        return {**message, "headers": headers}

    async def send_error(self, exc: GateError) -> None:
        """Answer an unhandled gate error with its status and a JSON body, never a trace."""
        status, payload = error_response(exc, self)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        await self.send(self.headed({"type": "http.response.start", "status": status, "headers": headers}))
        await self.send({"type": "http.response.body", "body": payload})
