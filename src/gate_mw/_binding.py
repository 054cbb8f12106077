"""From an ASGI scope to the `Gate` of its request."""

from __future__ import annotations

from typing import Any

from ._context import SCOPE_KEY, RoutingContext
from .client import Gate

__all__ = ["gate_for_scope"]


def gate_for_scope(scope: Any) -> Gate:
    """The `Gate` of the request in `scope`; needs `GatewayMiddleware` on the app."""
    context = scope.get(SCOPE_KEY)
    if not isinstance(context, RoutingContext):
        if scope.get("type") == "websocket":
            raise RuntimeError(
                "gate_mw gives a Gate to HTTP requests only, not to websocket connections: "
                "in a websocket handler, call models through gateway.client(policy, caller=...)"
            )
        raise RuntimeError("no gate_mw routing context on this request: add GatewayMiddleware")
    return context.gateway.bind(context, scope)
