"""What gate_mw reads of a framework's routing: the policy-carrying endpoints of an app,
walked at startup so bad policies fail early, and the path template a request matched.

Routing itself never uses the walk: the policy of a request is read from its scope. It is
best effort across frameworks; anything it misses is validated on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["iter_endpoints", "route_template"]

_MAX_DEPTH = 16


def iter_endpoints(app: Any, _depth: int = 0) -> Iterator[Any]:
    """Endpoints and route handlers reachable from an ASGI app's routing table."""
    if app is None or _depth > _MAX_DEPTH:
        return
    for route in getattr(app, "routes", None) or ():
        yield from _route_endpoints(route, _depth)


def _framework_made(handler: Any) -> bool:
    # Litestar adds an OPTIONS handler to each route: it inherits the layers' opt (and so
    # their policy) but never calls a model, and errors should name the user's handler.
    return str(getattr(handler.fn, "__module__", "")).startswith("litestar.")


def _route_endpoints(route: Any, depth: int) -> Iterator[Any]:
    endpoint = getattr(route, "endpoint", None)
    if endpoint is not None:
        yield endpoint
    for handler in getattr(route, "route_handlers", None) or ():  # Litestar
        if not _framework_made(handler):
            yield handler
    # Mounts and routers list routes of their own; FastAPI's included routers keep them on
    # the router they were made from.
    yield from iter_endpoints(getattr(route, "original_router", None) or route, depth + 1)


def route_template(scope: Mapping[str, Any]) -> str | None:
    """The full path template of the route matched in `scope`, if the framework gives one."""
    if template := scope.get("path_template"):  # Litestar: routers' paths included
        return str(template)
    path = getattr(scope.get("route"), "path", None)  # Starlette and FastAPI
    return None if not path else _mount_prefix(scope, str(path)) + str(path)


def _mount_prefix(scope: Mapping[str, Any], path: str) -> str:
    # A Starlette `Mount` (FastAPI's `app.mount`) adds its matched path to root_path, and
    # its routes' paths are relative to it; its own parameters are put back as `{name}`.
    root = str(scope.get("root_path", ""))
    prefix = root[len(str(scope.get("app_root_path", root))):]
    if not prefix:
        return ""
    params = scope.get("path_params") or {}
    names = {str(value): name for name, value in params.items() if "{" + name not in path}
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in prefix.split("/"))
