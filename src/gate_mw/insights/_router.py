"""The inspection app: JSON for reports, experiments, cooldowns and budgets, and the
dashboard page. Opt-in, mounted by the application, and closed unless it is given a key
or an `authorize` check."""

from __future__ import annotations

import dataclasses
import hmac
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from ._dashboard import render_dashboard
from ._insights import Insights

__all__ = ["InspectionApp"]

Authorize = Callable[[Request], "bool | Awaitable[bool]"]
_COOKIE = "gate_mw_inspect"
_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


class InspectionApp:
    """An ASGI app serving `/` (the dashboard), `/report.json?window=day&by=caller,route`,
    `/experiments.json`, `/cooldowns.json` and `/budgets.json` under wherever it is mounted.

    A request is let in when it carries `key` (as `Authorization: Bearer <key>`, an
    `x-gate-key` header, or the cookie `/?key=<key>` sets) or when `authorize(request)`
    returns True; anything else is a 401.
    """

    def __init__(
        self, insights: Insights, cooldowns: Callable[[], Awaitable[Sequence[Any]]],
        budgets: Callable[[], Awaitable[Sequence[dict[str, Any]]]], *, key: str | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        if not key and authorize is None:
            raise ValueError("the inspection app needs a key or an authorize check")
        self.insights = insights
        self._cooldowns = cooldowns
        self._budgets = budgets
        self._key = key.encode() if key else None
        self._authorize = authorize
        self._routes: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/": self.dashboard, "/report.json": self.report, "/experiments.json": self.experiments,
            "/cooldowns.json": self.cooldowns, "/budgets.json": self.budgets,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # Starlette keeps the mount's prefix in the path
            path = path[len(root):]
        path = path.rstrip("/") or "/"  # Litestar adds a slash to a mounted app's path
        handler = self._routes.get(path)
        if handler is None:
            response: Response = JSONResponse({"error": "not found"}, 404, headers=_HEADERS)
        elif request.method not in ("GET", "HEAD"):
            response = JSONResponse({"error": "method not allowed"}, 405, headers=_HEADERS)
        elif path == "/" and self._key and "key" in request.query_params:
            response = self._login(request)
        elif not await self._allowed(request):
            response = JSONResponse({"error": "unauthorized"}, 401, headers=_HEADERS)
        else:
            try:
                response = await handler(request)
            except (KeyError, ValueError) as exc:
                response = JSONResponse({"error": str(exc).strip("'\"")}, 400, headers=_HEADERS)
        await response(scope, receive, send)

    def _matches(self, given: str | None) -> bool:
        return bool(given and self._key and hmac.compare_digest(given.encode(), self._key))

    async def _allowed(self, request: Request) -> bool:
        headers = request.headers
        bearer = headers.get("authorization", "")
        if self._matches(bearer[7:] if bearer.lower().startswith("bearer ") else None):
            return True
        if self._matches(headers.get("x-gate-key")) or self._matches(request.cookies.get(_COOKIE)):
            return True
        if self._authorize is not None:
            verdict = self._authorize(request)
            return bool(await verdict if inspect.isawaitable(verdict) else verdict)
        return False

    def _login(self, request: Request) -> Response:
        """`/?key=...`: a browser's way in. The key moves into a cookie for the app's path,
        and the address bar (and history) loses it."""
        if not self._matches(request.query_params.get("key")):
            return JSONResponse({"error": "unauthorized"}, 401, headers=_HEADERS)
        # The page's path as the client sent it, whatever the framework made of the mount.
        raw = request.scope.get("raw_path")
        page = raw.decode("latin-1") if raw else request.scope.get("root_path", "") + "/"
        page = page.split("?", 1)[0]
        page = page if page.endswith("/") else page + "/"
        response = RedirectResponse(page, 303, headers=_HEADERS)
        response.set_cookie(
            _COOKIE, request.query_params["key"], path=page, httponly=True, samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def _figures(self, request: Request) -> dict[str, Any]:
        query = parse_qs(request.url.query)
        window = query.get("window", ["day"])[0]
        by = [part for value in query.get("by", ["caller,route,model"]) for part in value.split(",") if part]
        return (await self.insights.report(window, by)).to_dict()

    async def _experiments(self) -> list[dict[str, Any]]:
        return [
            (await self.insights.experiment(name)).to_dict() for name in self.insights.experiment_names()
        ]

    async def _cooldown_list(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(state) for state in await self._cooldowns()]

    async def report(self, request: Request) -> Response:
        return _json(await self._figures(request))

    async def experiments(self, request: Request) -> Response:
        return _json(await self._experiments())

    async def cooldowns(self, request: Request) -> Response:
        return _json(await self._cooldown_list())

    async def budgets(self, request: Request) -> Response:
        return _json(list(await self._budgets()))

    async def dashboard(self, request: Request) -> Response:
        page = render_dashboard(
            await self._figures(request), await self._experiments(), await self._cooldown_list(),
            list(await self._budgets()),
        )
        return HTMLResponse(page, headers={**_HEADERS, "content-security-policy": "default-src 'none'; "
                                           "style-src 'unsafe-inline'; img-src data:"})


def _json(value: Any) -> Response:
    return Response(
        json.dumps(value, allow_nan=False, default=str), media_type="application/json", headers=_HEADERS
    )
