"""Shared state from the config file, and validation of limits, budgets and caches: typed
errors naming the field; windows and GCRA checked as properties."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _apps import MESSAGES, SECRET
from gate_mw import Budget, Cache, ConfigError, Gateway, Limit, PolicyError, RoutePolicy, route_policy
from gate_mw.limits._windows import calendar_window, subject
from gate_mw.state import Check, MemoryStore, RedisStore
from gate_mw.state._memory import take
from gate_mw.testing import FakeUpstream

YAML = """\
state: redis://127.0.0.1:6379/0
state_options: {{prefix: "{prefix}", timeout: 1.5, on_error: closed}}
models:
  - name: m
    provider: openai
    api_base: {base}
    api_key_env: FAKE_KEY
"""


@pytest.mark.anyio
async def test_state_in_the_file_shares_state_on_redis_and_every_key_expires(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    path = tmp_path / "gateway.yaml"
    path.write_text(YAML.format(prefix=prefix, base=fake_upstream.openai_base))
    gateway = Gateway.from_file(path, env={"FAKE_KEY": SECRET})
    store = gateway.state
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.timeout, store.on_error) == (prefix, 1.5, "closed")
    policy = RoutePolicy(
        models=("m",), limits=(Limit(rpm=10, per="caller"), Limit(tpm=10_000, per="route")),
        budget=Budget(limit_usd=1, per="global", window="week"), cache=Cache(ttl=30),
    )
    async with gateway:
        await gateway.client(policy, caller="gus").chat(MESSAGES)
        await store.flush()
        keys = [key async for key in store.client.scan_iter(match=prefix + "*")]
        assert len(keys) >= 5  # limits, budget, breaker window, cache entry
        ttls = [await store.client.pttl(key) for key in keys]
    assert all(ttl > 0 for ttl in ttls), dict(zip(keys, ttls, strict=True))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("state: postgres://x\nmodels: [{name: m}]\n", "state"),
        ("state: redis://x\nstate_options: {on_error: maybe}\nmodels: [{name: m}]\n",
         "state_options.on_error"),
        ("state: redis://x\nstate_options: {timeout: 0}\nmodels: [{name: m}]\n", "state_options.timeout"),
    ],
)
def test_a_bad_state_setting_names_its_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Gateway.from_file(path)
    assert caught.value.field == field
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"limits": [Limit(rpm=0)]}, "limits", "rpm must be positive"),
        ({"limits": [Limit(rpm=5, tpm=5)]}, "limits", "exactly one"),
        ({"limits": [{"usd": 5, "window": "year"}]}, "limits", "window"),
        ({"limits": [Limit(rpm=5, window="day")]}, "limits", "usd limits only"),
        ({"budget": Budget(limit_usd=1, timezone="Mars/Base")}, "budget", "time zone"),
        ({"budget": {"limit_usd": 1, "per": "team"}}, "budget", "per must be"),
        ({"budget": Budget(limit_usd=1, status=500)}, "budget", "402 or 429"),
        ({"cache": {"ttl": -1}}, "cache", "ttl"),
    ],
)
def test_a_bad_limit_budget_or_cache_fails_at_decoration(
    fields: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        route_policy(models=["m"], **fields)(lambda: None)
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert words in str(caught.value)


def test_budgets_and_limits_take_lists_and_mappings() -> None:
    policy = RoutePolicy(
        budget=[{"limit_usd": 5}, Budget(limit_usd=50, per="route", window="month")],
        limits=[{"rpm": 60}, Limit(tpm=1000, per="global")],
    )
    assert [b.limit_usd for b in policy.budgets] == [5, 50]
    assert [limit.kind for limit in policy.limits] == ["requests", "tokens"]


ZONES = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"])
TIMES = st.floats(min_value=946_684_800, max_value=4_102_444_800)  # 2000 to 2100


@settings(max_examples=300, deadline=None)
@given(TIMES, st.sampled_from(["day", "week", "month"]), ZONES)
def test_a_calendar_window_holds_its_instant_and_starts_at_local_midnight(
    now: float, window: str, zone: str
) -> None:
    window_id, ends = calendar_window(window, zone, now)
    assert now < ends <= now + 32 * 86_400
    start = datetime.strptime(window_id, "%Y-%m-%d").replace(tzinfo=ZoneInfo(zone))
    assert start.timestamp() <= now + 3600  # a DST change may move local midnight by an hour
    end_local = datetime.fromtimestamp(ends, ZoneInfo(zone))
    assert (end_local.hour, end_local.minute) in {(0, 0), (1, 0), (23, 0)}
    if window == "week":
        assert start.weekday() == 0
    if window == "month":
        assert start.day == 1
    assert calendar_window(window, zone, ends - 1e-3)[0] == window_id  # stable to its end


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_caller_key_makes_one_bounded_hash_tag(caller: str) -> None:
    tag = subject("caller", caller)
    assert tag.startswith("{c:")
    assert tag.endswith("}")
    assert tag.count("{") == 1
    assert tag.count("}") == 1
    assert len(tag) <= 4 + 64
    assert subject("caller", caller) == tag


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=1000), st.lists(st.floats(min_value=0, max_value=5), max_size=60),
    st.floats(min_value=1, max_value=3600),
)
def test_gcra_never_lets_more_than_its_limit_through_at_one_instant(
    limit: int, amounts: list[float], period: float
) -> None:
    now, tat, taken = 1_000.0, 0.0, 0.0  # the algorithm, not epoch-time rounding
    for amount in amounts:
        fits, used, new = take(Check("k", limit, amount, period, period), tat, now)
        if fits:
            tat, taken = new, taken + amount
            assert used == pytest.approx(taken, rel=1e-6, abs=1e-6)
    assert taken <= limit * (1 + 1e-6) + limit / period * 1e-6  # take() allows a microsecond


def test_memory_store_keeps_routing_state_when_callers_overflow() -> None:
    store = MemoryStore(max_keys=10, max_caller_keys=5)
    import asyncio

    async def fill() -> list[object]:
        await store.set("cb:gpt", ["open", "r", 1.0, 2.0])
        for i in range(100):
            await store.incr({f"rl:{subject('caller', str(i))}:requests:60": 1})
        return await store.get_many(["cb:gpt", f"rl:{subject('caller', '99')}:requests:60"])

    assert asyncio.run(fill()) == [["open", "r", 1.0, 2.0], 1]
    assert len(store) == 1 + 5


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=50), st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUES, max_size=4))
def test_the_cache_key_is_stable_and_covers_every_request_field(text: str, extra: dict[str, object]) -> None:
    from gate_mw.limits._cache import request_key
    from gate_mw.providers import ChatRequest

    messages = [{"role": "user", "content": text}]
    request = ChatRequest(messages=messages, max_tokens=10, extra=extra)
    same = ChatRequest(
        messages=[dict(m) for m in messages], max_tokens=10, extra=dict(reversed(extra.items()))
    )
    other = ChatRequest(messages=messages, max_tokens=11, extra=extra)
    route = (("m",), "ordered")
    key = request_key(request, route, None)
    assert request_key(same, route, None) == key  # order of keys does not matter
    assert request_key(other, route, None) != key
    assert request_key(request, route, "alice") != key  # caller scope
    assert request_key(request, (("n",), "ordered"), None) != key  # another model


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_a_replayed_stream_gives_back_the_text_exactly_in_small_chunks(text: str) -> None:
    import asyncio

    from gate_mw._streaming import replay

    async def collect() -> list[object]:
        return [event async for event in replay(text)]

    events = asyncio.run(collect())
    chunks = [event for event in events if isinstance(event, str)]
    assert "".join(chunks) == text
    assert all(len(chunk.strip()) <= 4 for chunk in chunks)
    assert not isinstance(events[-1], str)  # then the end


def test_the_cache_key_of_an_output_schema_is_its_schema_not_its_object() -> None:
    from gate_mw.chat._output import Output
    from gate_mw.limits._cache import request_key
    from gate_mw.providers import ChatRequest

    messages = [{"role": "user", "content": "an invoice"}]
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}

    def key(output: object) -> str:
        return request_key(ChatRequest(messages=messages, output=Output.of(output)), ("m",), None)

    assert key(dict(schema)) == key(dict(schema))  # two objects, one key
    assert key(dict(schema)) != key({"type": "object", "properties": {"total": {"type": "string"}}})
