"""The dependency provider and exception handler `GatePlugin` registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import WebSocketException
from litestar.status_codes import WS_1011_INTERNAL_ERROR
from litestar.types import Scope

from .._binding import gate_for_scope
from .._context import SCOPE_KEY, RoutingContext
from ..client import Gate
from ..errors import GateError
from ..gateway import Gateway
from ..middleware import error_response

__all__ = ["GateClient", "error_handler", "provide_gate"]

ErrorHandler = Callable[["Request[Any, Any, Any]", GateError], "Response[bytes]"]

#: Annotate a handler parameter named `gate` with this to receive the request's `Gate`.
GateClient = NamedDependency[Gate]


def provide_gate(scope: Scope) -> Gate:
    """The `Gate` of this request, bound to its route handler's policy. (Takes the scope,
    which Litestar gives HTTP and websocket handlers alike, so that a websocket handler
    asking for one is told why it cannot have one.)"""
    try:
        return gate_for_scope(scope)
    except RuntimeError as exc:
        if scope["type"] == ScopeType.WEBSOCKET:
            # Litestar closes a failed websocket with a bare "Internal Server Error":
            # give the reason, which only the developer's own handler can cause.
            raise WebSocketException(detail=str(exc), code=WS_1011_INTERNAL_ERROR) from None
        raise


def error_handler(gateway: Gateway) -> ErrorHandler:
    """An exception handler answering gate errors as `GatewayMiddleware` does elsewhere.

    Litestar turns handler exceptions into responses inside the app, before they reach
    the middleware; the response still passes through it and gets its `x-gate-*` headers.
    """

    def handle_gate_error(request: Request[Any, Any, Any], exc: GateError) -> Response[bytes]:
        context = request.scope.get(SCOPE_KEY)
        if not isinstance(context, RoutingContext):
            context = gateway.new_context(request.scope)  # type: ignore[arg-type]
        status, body = error_response(exc, context)
        return Response(body, status_code=status, media_type=MediaType.JSON)

    return handle_gate_error
