"""Issue 11's limits through the proxy, seen by the official SDKs over a real uvicorn
server: policy limits and a virtual key's own limits refuse with 402 and 429 in OpenAI's
(and Anthropic's) shape. Key records outlive traffic in memory and persist in Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from _proxy_apps import MASTER, TEAM_KEY, build, proxy, proxy_gateway

from _apps import serve_http
from gate_mw import ConfigError
from gate_mw.proxy import KeyStore
from gate_mw.proxy._settings import settings_of
from gate_mw.state import MemoryStore, RedisStore
from gate_mw.testing import FakeUpstream

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "What is the capital of France?"}]
ADMIN = {"authorization": f"Bearer {MASTER}"}
POLICIES = {
    "fast": {"models": ["primary", "backup"], "retries": 0, "limits": [{"rpm": 2, "per": "caller"}]},
    # Far less than any call's estimate: the first call is refused.
    "broke": {"models": ["backup"], "budget": {"limit_usd": 1e-9, "per": "global", "window": "month"}},
}


@pytest.fixture
async def base_url(fake_upstream: FakeUpstream) -> AsyncIterator[str]:
    gateway = proxy_gateway(fake_upstream, policies=POLICIES)
    async with serve_http(build("fastapi", proxy(gateway))) as url:
        yield url


@pytest.fixture
async def oai(base_url: str) -> AsyncIterator[Any]:
    made: list[Any] = []

    def make(key: str = MASTER) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def _key(base_url: str, **fields: Any) -> str:
    async with httpx.AsyncClient(base_url=f"{base_url}/v1") as client:
        answer = await client.post("/keys", headers=ADMIN, json={"name": uuid.uuid4().hex, **fields})
    assert answer.status_code == 200, answer.text
    assert [{k: v for k, v in rule.items() if k in ("rpm", "tpm")} for rule in answer.json()["limits"]] == [
        {k: v for k, v in rule.items() if k in ("rpm", "tpm")} for rule in fields.get("limits", [])
    ]
    return str(answer.json()["key"])


def _assert_budget_body(error: openai.APIStatusError) -> None:
    assert error.status_code == 402
    body = error.body
    assert isinstance(body, dict)
    assert (body["type"], body["code"]) == ("insufficient_quota", "budget_exceeded"), body
    gate = body["gate"]
    assert gate["limit"].endswith(":budget")
    assert gate["limit_value"] > 0
    assert gate["used"] >= 0
    assert "reset_at" in gate


async def test_policy_budget_is_a_402_with_its_figures(oai: Any) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await oai().chat.completions.create(model="broke", messages=USER)
    # The SDK has no class of its own for 402: APIStatusError, with the status and body.
    assert type(caught.value) is openai.APIStatusError
    _assert_budget_body(caught.value)
    assert caught.value.body["gate"]["limit"] == "global:budget"  # type: ignore[index]


async def test_policy_rate_limit_is_a_rate_limit_error_with_retry_after(oai: Any) -> None:
    client = oai()
    for _ in range(2):
        raw = await client.chat.completions.with_raw_response.create(model="fast", messages=USER)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="fast", messages=USER)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.body["gate"]["limit"] == "caller:requests"  # type: ignore[index]


async def test_a_keys_own_rate_limit_replaces_the_policys(base_url: str, oai: Any) -> None:
    strict = await _key(base_url, limits=[{"rpm": 1}])
    roomy = await _key(base_url, limits=[{"rpm": 5}])
    await oai(strict).chat.completions.create(model="fast", messages=USER)
    with pytest.raises(openai.RateLimitError) as caught:
        await oai(strict).chat.completions.create(model="fast", messages=USER)
    assert caught.value.response.headers["retry-after"]
    assert caught.value.body["gate"]["limit_value"] == 1  # type: ignore[index]
    # Its own counter: another key past the policy's rpm=2 is still served.
    for _ in range(3):
        raw = await oai(roomy).chat.completions.with_raw_response.create(model="fast", messages=USER)
        assert raw.headers["x-ratelimit-limit-requests"] == "5"


async def test_a_keys_own_budget_refuses_with_402(base_url: str, oai: Any) -> None:
    key = await _key(base_url, budget={"limit_usd": 1e-9, "window": "day"})
    with pytest.raises(openai.APIStatusError) as caught:
        await oai(key).chat.completions.create(model="primary", messages=USER)
    _assert_budget_body(caught.value)
    assert caught.value.body["gate"]["limit"] == "caller:budget"  # type: ignore[index]
    # Other callers are not held by it.
    assert (await oai().chat.completions.create(model="primary", messages=USER)).choices


async def test_litellm_key_fields_map_to_limits_and_budget(base_url: str, oai: Any) -> None:
    litellm = {"name": "svc", "rpm_limit": 1, "tpm_limit": 50_000, "max_budget": 5, "budget_duration": "1mo"}
    async with httpx.AsyncClient(base_url=f"{base_url}/v1") as client:
        made = (await client.post("/keys", headers=ADMIN, json=litellm)).json()
    assert [(rule.get("rpm"), rule.get("tpm")) for rule in made["limits"]] == [(1, None), (None, 50_000)]
    assert (made["budget"]["limit_usd"], made["budget"]["window"]) == (5, "month")
    await oai(made["key"]).chat.completions.create(model="fast", messages=USER)
    with pytest.raises(openai.RateLimitError):
        await oai(made["key"]).chat.completions.create(model="fast", messages=USER)


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"limits": [{"rpm": 0}]}, "limits"), ({"limits": [{"rpm": 5, "per": "route"}]}, "limits"),
     ({"budget": {"limit_usd": -1}}, "budget"), ({"limits": {"rpm": 5}}, "limits"),
     ({"max_budget": 5, "budget_duration": "soon"}, "budget_duration")],
)
async def test_bad_key_limits_are_a_400_naming_the_field(
    base_url: str, fields: dict[str, Any], param: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{base_url}/v1") as client:
        answer = await client.post("/keys", headers=ADMIN, json={"name": "bad", **fields})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


async def test_anthropic_sdk_sees_a_rate_limit_error(base_url: str) -> None:
    key = await _key(base_url, limits=[{"rpm": 1}])
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0) as claude:
        await claude.messages.create(model="fast", max_tokens=50, messages=USER)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as caught:
            await claude.messages.create(model="fast", max_tokens=50, messages=USER)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"]
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_memory_key_records_are_never_evicted_by_traffic() -> None:
    store = MemoryStore(max_keys=8, max_caller_keys=8)
    keys = KeyStore(store, max_keys=3)
    secret, made = await keys.create("svc", limits=(), budget=None)
    for index in range(100):  # routing and caller state churning through the LRU
        await store.set(f"routing:{index}", index)
        await store.set(f"rl:{{c:caller-{index}}}:requests", index)
    assert (await keys.resolve(secret)).id == made.id  # type: ignore[union-attr]
    for name in ("b", "c"):
        await keys.create(name)
    with pytest.raises(OverflowError):  # bounded: refused, never evicting an older key
        await keys.create("d")


async def test_redis_key_records_persist() -> None:
    prefix = f"test:keys:{uuid.uuid4().hex}:"
    store = RedisStore("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        keys = KeyStore(store)
        secret, made = await keys.create("svc", limits=(), budget=None)
        assert (await keys.resolve(secret)).id == made.id  # type: ignore[union-attr]
        await keys.revoke(made.id)
        names = [name async for name in store.client.scan_iter(match=f"{prefix}*")]
        assert names
        for name in names:
            assert await store.client.pttl(name) == -1  # no expiry: only revocation ends a key
        assert await keys.resolve(secret) is None
        await store.client.delete(*names)
    finally:
        await store.aclose()


async def test_a_config_keys_own_limit_holds(fake_upstream: FakeUpstream) -> None:
    keys = [{"name": "team-a", "key_env": "TEAM_A_KEY", "limits": [{"rpm": 1}], "budget": {"limit_usd": 5}}]
    gateway = proxy_gateway(fake_upstream, policies=POLICIES)
    async with (
        serve_http(build("fastapi", proxy(gateway, {"keys": keys}))) as url,
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=TEAM_KEY, max_retries=0) as client,
    ):
        raw = await client.chat.completions.with_raw_response.create(model="fast", messages=USER)
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="fast", messages=USER)


def test_a_config_keys_bad_limit_names_the_field(fake_upstream: FakeUpstream) -> None:
    keys = [{"name": "team-a", "key_env": "TEAM_A_KEY", "limits": [{"rpm": 1, "tpm": 5}]}]
    with pytest.raises(ConfigError) as caught:
        settings_of({"keys": keys}, "gateway.yaml")
    assert "proxy.keys.0" in str(caught.value)
    assert "exactly one of rpm, tpm or usd" in str(caught.value)
