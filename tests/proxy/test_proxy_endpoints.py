"""The proxy's endpoints in process: request checking, error shapes of both APIs, the
Anthropic translation, virtual keys as callers, and settings from the gateway file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx
import pytest
from _proxy_apps import MASTER, TEAM_KEY, build, proxy, proxy_gateway
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _apps import serve
from gate_mw import Budget, ConfigError, Gate, Gateway, RoutePolicy
from gate_mw.proxy import Proxy
from gate_mw.proxy._anthropic import read_messages
from gate_mw.proxy._errors import ProxyError
from gate_mw.proxy._keys import hash_key
from gate_mw.proxy._openai import _READ_HERE, _keywords, read_chat
from gate_mw.testing import FakeUpstream, Reply

pytestmark = pytest.mark.anyio
ADMIN = {"authorization": f"Bearer {MASTER}"}
USER = [{"role": "user", "content": "hi"}]


async def post(
    up: FakeUpstream, path: str, body: Any, headers: dict[str, str] | None = None, **options: Any
) -> httpx.Response:
    async with serve(build("fastapi", proxy(proxy_gateway(up, **options)))) as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post(f"/v1{path}", content=content, headers=headers or ADMIN)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        ({"messages": USER}, 400, "model"),
        ({"model": "fast", "messages": []}, 400, "messages"),
        ({"model": "fast", "messages": ["hi"]}, 400, "messages[0]"),
        ({"model": "fast", "messages": USER, "temperature": "hot"}, 400, "temperature"),
        ({"model": "fast", "messages": USER, "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "fast", "messages": USER, "stop": [1]}, 400, "stop"),
            ],
)
async def test_bad_chat_requests_are_400_in_openai_shape(
    fake_upstream: FakeUpstream,
    body: Any,
    status: int,
    param: str | None,
) -> None:
    response = await post(fake_upstream, "/chat/completions", body)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert fake_upstream.calls() == 0


async def test_n_choices_when_gate_chat_gives_them(fake_upstream: FakeUpstream) -> None:
    response = await post(fake_upstream, "/chat/completions", {"model": "fast", "messages": USER, "n": 2})
    if "n" in _keywords(Gate.chat):  # issue 10: several choices
        assert [c["index"] for c in response.json()["choices"]] == [0, 1]
    else:
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "n"


async def test_a_body_over_the_limit_is_413(fake_upstream: FakeUpstream) -> None:
    gateway = proxy_gateway(fake_upstream)
    target = proxy(gateway, {"max_body_bytes": 1000})
    async with serve(build("fastapi", target)) as client:
        response = await client.post(
            "/v1/chat/completions",
            headers=ADMIN,
            json={"model": "fast", "messages": [{"role": "user", "content": "x" * 2000}]},
        )
    assert response.status_code == 413


async def test_wrong_method_is_405_json(fake_upstream: FakeUpstream) -> None:
    async with serve(build("starlette", proxy(proxy_gateway(fake_upstream)))) as client:
        response = await client.get("/v1/chat/completions", headers=ADMIN)
    assert response.status_code == 405
    assert "POST" in response.json()["error"]["message"]


async def test_anthropic_errors_in_anthropic_shape(fake_upstream: FakeUpstream) -> None:
    missing = await post(fake_upstream, "/messages", {"model": "fast", "messages": USER})
    assert missing.status_code == 400
    assert missing.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: a positive integer is required"},
    }
    unknown = await post(fake_upstream, "/messages", {"model": "x", "max_tokens": 5, "messages": USER})
    assert (unknown.status_code, unknown.json()["error"]["type"]) == (404, "not_found_error")
    denied = await post(
        fake_upstream,
        "/messages",
        {"model": "x", "max_tokens": 5, "messages": USER},
        headers={"x-api-key": "wrong"},
    )
    assert (denied.status_code, denied.json()["error"]["type"]) == (401, "authentication_error")


async def test_anthropic_tool_turns_reach_the_upstream_in_openai_shape(fake_upstream: FakeUpstream) -> None:
    fake_upstream.script("gpt-4o", Reply("18C in Paris."))
    body = {
        "model": "fast",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief."}],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "text", "text": "And so?"},
                ],
            },
        ],
    }
    response = await post(fake_upstream, "/messages", body)

    assert response.status_code == 200
    assert response.json()["content"] == [{"type": "text", "text": "18C in Paris."}]
    sent = fake_upstream.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "user", "content": "And so?"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}},
        }
    ]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)


async def test_an_open_proxy_needs_no_key(fake_upstream: FakeUpstream) -> None:
    gateway = proxy_gateway(fake_upstream)
    async with serve(build("fastapi", Proxy(gateway))) as client:
        response = await client.post("/v1/chat/completions", json={"model": "primary", "messages": USER})
    assert response.status_code == 200


async def test_a_virtual_key_is_the_caller_budgets_count(fake_upstream: FakeUpstream) -> None:
    budget = Budget(limit_usd=1.0)
    gateway = proxy_gateway(fake_upstream, limits=[budget])  # a budget of every route
    async with serve(build("fastapi", proxy(gateway))) as client:
        response = await client.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {TEAM_KEY}"},
            json={"model": "backup", "messages": USER},
        )
        assert response.status_code == 200
        # Spend is booked under the key's caller (the config key's name), not the header.
        await gateway.guard.flush()
        policy = RoutePolicy(budget=budget)
        assert (await gateway.guard.used(policy, route="fast", caller="team-a"))["caller:budget"] > 0
        assert await gateway.guard.used(policy, route="fast", caller="master") == {"caller:budget": 0.0}


def test_gateway_file_names_policies_and_proxy_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROXY_MASTER_KEY", "sk-m")
    monkeypatch.setenv("TEAM_KEY", "sk-t")
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "models:\n  - name: small\n  - name: large\n"
        "policies:\n  fast: {models: [small, large], timeout: 5}\n"
        "proxy:\n  master_key_env: PROXY_MASTER_KEY\n"
        f"  keys:\n    - {{name: ci, key_sha256: {hash_key('sk-ci')}, models: [fast]}}\n"
        "    - {name: team, key_env: TEAM_KEY}\n"
    )
    target = Proxy(Gateway.from_file(path))
    assert target.available(None) == ["fast", "small", "large"]
    assert target.gateway.policies["fast"].name == "fast"
    assert target.require_key


def test_bad_policy_and_proxy_settings_fail_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models:\n  - name: small\npolicies:\n  fast: {models: [nope]}\n")
    with pytest.raises(ConfigError) as caught:
        Gateway.from_file(path)
    error = caught.value
    assert (error.source, error.entry, error.field) == (str(path), "policies.fast", "models")
    path.write_text("models:\n  - name: small\nbreaker: {failures: 0}\n")
    with pytest.raises(ConfigError, match="failures must be at least 1") as caught:
        Gateway.from_file(path)
    assert caught.value.field == "breaker"
    path.write_text("models:\n  - name: small\nproxy:\n  keys:\n    - {name: k, key_sha256: short}\n")
    with pytest.raises(ConfigError, match=r"proxy\.keys\.0"):
        Proxy(Gateway.from_file(path))
    path.write_text("models:\n  - name: small\nproxy:\n  master_key_env: NOT_SET_ANYWHERE\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        Proxy(Gateway.from_file(path))


_OTHER = "n tools tool_choice system stop_sequences metadata top_k role content type text source tool_use_id"
_fields = st.sampled_from([*sorted(_READ_HERE), *_OTHER.split(), "input", "name"])


def _json(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


def _request_like(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.dictionaries(_fields, inner, max_size=6) | st.lists(inner, max_size=3)


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
_bodies = st.recursive(st.recursive(_scalars, _json, max_leaves=20), _request_like, max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies)
def test_any_body_is_read_or_refused_with_a_4xx(body: Any) -> None:
    for read in (read_chat, read_messages):
        try:
            args = read(body)
        except ProxyError as error:
            status = error.status
        else:
            assert args.model
            assert args.messages
            status = 200
        assert status == 200 or 400 <= status < 500


class _Options(TypedDict, total=False):
    tools: list[Any]
    extra_body: dict[str, Any]


async def _chat_with_options(
    messages: list[Any], *, model: str | None = None, **options: Unpack[_Options]
) -> None:
    """The shape Gate.chat takes with issue 10: a TypedDict of keywords."""


def test_the_keywords_of_gate_chat_are_read_from_its_signature() -> None:
    # Today's Gate.chat names its keywords; with issue 10 they are a TypedDict: both read.
    assert _keywords(_chat_with_options) == {"model", "tools", "extra_body"}
    assert {"max_tokens", "temperature", "top_p", "stop"} <= _keywords(Gate.chat)
