"""The inspection app: mounted in FastAPI, Starlette and Litestar, closed without its key or
check, serving JSON and the dashboard page."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar, asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from _apps import MESSAGES, make_gateway, openai_entry, serve
from gate_mw import Gateway, GatewayMiddleware
from gate_mw.insights import InspectionApp
from gate_mw.testing import FakeUpstream, Reply

pytestmark = pytest.mark.anyio
KEY = "inspect-secret"


def _gateway(up: FakeUpstream) -> Gateway:
    up.set_default("gpt-4o-mini", Reply("ok", input_tokens=10, output_tokens=2))
    return make_gateway([openai_entry(up, "mini", "gpt-4o-mini")])


def _fastapi(gateway: Gateway, inspector: InspectionApp) -> FastAPI:
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)
    app.mount("/gate", inspector)
    return app


def _starlette(gateway: Gateway, inspector: InspectionApp) -> Starlette:
    return Starlette(routes=[Mount("/gate", inspector)], lifespan=gateway.lifespan)


def _litestar(gateway: Gateway, inspector: InspectionApp) -> Litestar:
    @asgi("/gate", is_mount=True, copy_scope=True)
    async def gate(scope: Any, receive: Any, send: Any) -> None:
        await inspector(scope, receive, send)

    return Litestar([gate], lifespan=[gateway.lifespan])


@pytest.mark.parametrize("build", [_fastapi, _starlette, _litestar])
async def test_mounted_in_each_framework_and_closed_without_the_key(
    fake_upstream: FakeUpstream, build: Any
) -> None:
    gateway = _gateway(fake_upstream)
    async with serve(build(gateway, gateway.inspector(key=KEY))) as client:
        await gateway.client(route="jobs", caller="alice").chat(MESSAGES)
        assert (await client.get("/gate/report.json")).status_code == 401
        assert (await client.get("/gate/report.json", headers={"x-gate-key": "wrong"})).status_code == 401
        report = await client.get("/gate/report.json?by=caller,route", headers={"x-gate-key": KEY})
        bearer = await client.get("/gate/cooldowns.json", headers={"authorization": f"Bearer {KEY}"})
        page = await client.get("/gate/", headers={"x-gate-key": KEY})
        missing = await client.get("/gate/nope", headers={"x-gate-key": KEY})
        posted = await client.post("/gate/report.json", headers={"x-gate-key": KEY})

    assert report.status_code == 200
    [row] = report.json()["rows"]
    assert (row["group"], row["calls"]) == ({"caller": "alice", "route": "jobs"}, 1)
    assert bearer.status_code == 200
    assert [c["deployment"] for c in bearer.json()] == ["mini"]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text
    assert "alice" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert (missing.status_code, posted.status_code) == (404, 405)


async def test_a_browser_logs_in_once_and_the_key_leaves_the_address(fake_upstream: FakeUpstream) -> None:
    gateway = _gateway(fake_upstream)
    async with serve(_fastapi(gateway, gateway.inspector(key=KEY))) as client:
        login = await client.get(f"/gate/?key={KEY}")
        page = await client.get("/gate/")  # the client keeps the cookie
        client.cookies.clear()
        refused = await client.get("/gate/?key=wrong")

    assert login.status_code == 303
    assert login.headers["location"] == "/gate/"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/gate/" in cookie
    assert page.status_code == 200
    assert refused.status_code == 401


async def test_an_app_check_can_guard_it_instead(fake_upstream: FakeUpstream) -> None:
    gateway = _gateway(fake_upstream)

    async def admins_only(request: Request) -> bool:
        return request.headers.get("x-role") == "admin"

    async with serve(_fastapi(gateway, gateway.inspector(authorize=admins_only))) as client:
        assert (await client.get("/gate/budgets.json")).status_code == 401
        allowed = await client.get("/gate/budgets.json", headers={"x-role": "admin"})
    assert (allowed.status_code, allowed.json()) == (200, [])
    with pytest.raises(ValueError, match="needs a key or an authorize check"):
        gateway.inspector()


async def test_the_page_escapes_what_callers_send(fake_upstream: FakeUpstream) -> None:
    gateway = _gateway(fake_upstream)
    async with serve(_fastapi(gateway, gateway.inspector(key=KEY))) as client:
        await gateway.client(route="r", caller="<script>alert(1)</script>").chat(MESSAGES)
        page = await client.get("/gate/", headers={"x-gate-key": KEY})
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


_APP = Gateway().inspector(key=KEY)  # one app for every example: nothing is called on it


@settings(max_examples=60, deadline=None)
@given(query=st.text(max_size=60))
def test_any_query_is_answered_or_refused_never_a_crash(query: str) -> None:
    async def run() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_APP), base_url="http://t") as client:
            response = await client.get(
                "/report.json", params={"window": query, "by": query}, headers={"x-gate-key": KEY}
            )
            return response.status_code

    assert asyncio.run(run()) in (200, 400)
