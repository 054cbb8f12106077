"""Find the policy-carrying endpoints of an app at startup, so bad policies fail early.

Routing itself never uses this: the policy of a request is read from its scope. This walk
is best effort across frameworks; anything it misses is validated on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["iter_endpoints"]

_MAX_DEPTH = 16


def iter_endpoints(app: Any, _depth: int = 0) -> Iterator[Any]:
    """Endpoints and route handlers reachable from an ASGI app's routing table."""
    if app is None or _depth > _MAX_DEPTH:
        return
    for route in getattr(app, "routes", None) or ():
        yield from _route_endpoints(route, _depth)


def _route_endpoints(route: Any, depth: int) -> Iterator[Any]:
    endpoint = getattr(route, "endpoint", None)
    if endpoint is not None:
        yield endpoint
    yield from getattr(route, "route_handlers", None) or ()  # Litestar
    # Mounts and routers list routes of their own; FastAPI's included routers keep them on
    # the router they were made from.
    yield from iter_endpoints(getattr(route, "original_router", None) or route, depth + 1)
