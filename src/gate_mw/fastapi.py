"""FastAPI dependency injection: `gate: GateClient` in a handler's signature."""

from __future__ import annotations

from typing import Annotated

from starlette.requests import HTTPConnection

from ._binding import gate_for_scope
from ._optional import require
from .client import Gate

require("fastapi", "fastapi")

from fastapi import Depends  # noqa: E402 - after the guard, for its clear message

__all__ = ["GateClient", "get_gate"]


def get_gate(request: HTTPConnection) -> Gate:
    """The `Gate` of this request, bound to its route's policy. (Typed as the connection so
    that a websocket handler asking for one is told why it cannot have one.)"""
    return gate_for_scope(request.scope)


#: Annotate a handler parameter with this to receive the request's `Gate`.
GateClient = Annotated[Gate, Depends(get_gate)]
