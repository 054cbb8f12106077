"""Policy resolution behaves the same in FastAPI, Starlette and Litestar."""

from __future__ import annotations

import httpx
import pytest
from _parity_apps import BACKUP, PRIMARY, ROUTES, Framework, RouteSpec, build, chat

from _apps import startup_error
from gate_mw import Gateway, PolicyError, RoutePolicy
from gate_mw.testing import FakeUpstream

pytestmark = pytest.mark.anyio


async def test_route_policy_picks_its_first_model(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post("/chat", json={})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["route"], body["attempts"]) == ("primary", "/chat", ["ok"])
    assert [request.model for request in fake_upstream.requests] == [PRIMARY]


async def test_route_without_a_policy_uses_the_gateway_default(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post("/default", json={})
    assert response.status_code == 200
    assert response.json()["model"] == "backup"
    assert [request.model for request in fake_upstream.requests] == [BACKUP]


async def test_policy_max_tokens_caps_the_request(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    await client.post("/chat", json={"max_tokens": 500})
    await client.post("/chat", json={"max_tokens": 20})
    await client.post("/chat", json={})
    sent = [request.json.get("max_tokens") for request in fake_upstream.requests]
    assert sent == [50, 20, 50]


async def test_a_call_may_name_its_own_model(
    client: httpx.AsyncClient, fake_upstream: FakeUpstream
) -> None:
    response = await client.post("/chat", json={"model": "backup"})
    assert response.json()["model"] == "backup"
    assert [request.model for request in fake_upstream.requests] == [BACKUP]


async def test_route_label_is_the_path_template_or_the_policy_name(client: httpx.AsyncClient) -> None:
    item = (await client.post("/items/42", json={})).json()
    named = (await client.post("/named", json={})).json()
    assert (item["route"], item["params"]) == ("/items/{item_id}", {"item_id": "42"})
    assert named["route"] == "summarise"


async def test_a_grouped_route_is_labelled_with_its_whole_path_template(client: httpx.AsyncClient) -> None:
    # Equal values first: the label is made once per route, from its first request.
    same = (await client.post("/orgs/7/items/7", json={})).json()
    other = (await client.post("/orgs/acme/items/42", json={})).json()
    assert same["route"] == other["route"] == "/orgs/{org}/items/{item_id}"
    assert other["params"] == {"org": "acme", "item_id": "42"}


async def test_a_bad_policy_fails_at_startup_naming_route_and_field(
    framework: Framework, gateway: Gateway, fake_upstream: FakeUpstream
) -> None:
    bad = RouteSpec("bad_route", "/bad", chat, RoutePolicy(models=("primary", "gpt-nope")))
    error = await startup_error(build(framework, gateway, (*ROUTES, bad)))
    assert isinstance(error, PolicyError)
    assert (error.route, error.field) == ("_parity_apps.bad_route", "models")
    assert "'gpt-nope'" in str(error)
    assert fake_upstream.calls() == 0
