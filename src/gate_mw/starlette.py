"""Plain Starlette: get the request's `Gate` from the `Request`."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from ._binding import gate_for_scope
from .client import Gate

__all__ = ["get_gate"]


def get_gate(request: HTTPConnection) -> Gate:
    """The `Gate` of this request, bound to the policy of its endpoint."""
    return gate_for_scope(request.scope)
