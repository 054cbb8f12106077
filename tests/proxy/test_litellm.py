"""LiteLLM `config.yaml` files, from LiteLLM's own docs, loaded unchanged by
`Gateway.from_file`: what maps, and each field reported once when it has no equivalent."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from _apps import serve_http
from gate_mw import Budget, Cache, ConfigError, Gateway
from gate_mw.proxy._litellm import map_litellm
from gate_mw.proxy._litellm_limits import budget_window
from gate_mw.proxy.cli import build_app
from gate_mw.state import RedisStore
from gate_mw.testing import FakeUpstream, Fault, Reply

HERE = Path(__file__).parent / "litellm"
ENV = {
    "OPENAI_API_KEY": "sk-test-openai",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "AZURE_API_BASE": "https://x.example",
    "AZURE_API_KEY": "az-test",
    "LITELLM_MASTER_KEY": "sk-master-test",
}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def reported(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The paths reported as unsupported, in order."""
    return [
        r.getMessage().split(": ", 2)[2].split(" is not supported")[0]
        for r in caplog.records
        if r.name == "gate_mw.config"
    ]


def test_proxy_quick_start_maps_everything_it_can(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        gateway = Gateway.from_file(HERE / "proxy_quick_start.yaml")

    registry = gateway.registry
    assert [
        (d.alias, d.entry.provider, d.upstream_model, d.entry.api_key_env) for d in registry.deployments
    ] == [
        ("gpt-3.5-turbo", "openai", "gpt-3.5-turbo", "OPENAI_API_KEY"),
        ("claude-3-sonnet", "anthropic", "claude-3-5-sonnet-20241022", "ANTHROPIC_API_KEY"),
    ]
    fallback = gateway.policies["gpt-3.5-turbo"]
    assert (fallback.models, fallback.retries, fallback.timeout) == (
        ("gpt-3.5-turbo", "claude-3-sonnet"),
        2,
        30,
    )
    assert (gateway.router.health.breaker.failures, gateway.router.health.breaker.cooldown) == (4, 30.0)
    assert gateway.config is not None
    assert gateway.config.proxy == {"master_key_env": "LITELLM_MASTER_KEY"}
    # max_budget 10 over budget_duration 30d: a global hard budget on every model.
    budget = Budget(limit_usd=10.0, per="global", window=30 * 86_400.0, downgrade_at=None)
    assert gateway.default_policy.budget == budget
    assert fallback.budget == budget
    assert reported(caplog) == []


def test_configs_quick_start_serves_what_it_can_and_reports_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        gateway = Gateway.from_file(HERE / "configs_quick_start.yaml")

    aliases = gateway.registry.aliases
    vllm = gateway.registry.by_alias["vllm-models"][0].entry
    assert (vllm.provider, vllm.model, vllm.api_base, vllm.rpm) == (
        "vllm",
        "facebook/opt-125m",
        "http://0.0.0.0:4000/v1",
        1440,
    )
    paths = reported(caplog)
    assert "model_list[1] (bedrock-claude-v1).litellm_params.model" in paths
    assert "model_list[3] (anthropic-claude).litellm_params.model" in paths
    assert "model_list[4] (vllm-models).model_info.version" in paths
    assert "model_list[5] (*)" in paths
    assert "litellm_settings.success_callback" in paths
    assert "general_settings.alerting" in paths
    assert "litellm_settings.drop_params" not in paths  # gate_mw sends each provider only what it takes
    assert len(paths) == len(set(paths))  # once each
    assert aliases == ["gpt-4o", "vllm-models"]
    azure = gateway.registry.by_alias["gpt-4o"][0].entry
    assert (azure.provider, azure.model, azure.api_key_env) == ("azure", "gpt-4o-eu", "AZURE_API_KEY_EU")
    assert azure.rpm == 6
    assert len(paths) == 6


def test_caching_config_caches_in_memory_without_a_redis(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        gateway = Gateway.from_file(HERE / "caching.yaml")

    assert gateway.registry.aliases == ["gpt-3.5-turbo"]
    assert gateway.default_policy.cache == Cache()
    assert gateway.config is not None
    assert gateway.config.state is None
    assert reported(caplog) == [
        "model_list[1] (text-embedding-ada-002).model_info.mode",
        "litellm_settings.cache",  # no Redis named: in memory, said so
        "litellm_settings.set_verbose",
    ]


def test_caching_config_with_redis_params_uses_the_redis_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # LiteLLM docs, "Caching", redis with its params, step 1 (keys from the environment).
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", "6379")
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n  - model_name: gpt-3.5-turbo\n    litellm_params:\n      model: gpt-3.5-turbo\n"
        "litellm_settings:\n  cache: True\n  cache_params:\n    type: redis\n"
        "    host: os.environ/REDIS_HOST\n    port: os.environ/REDIS_PORT\n    ttl: 600\n"
        "    namespace: litellm.caching\n    supported_call_types: [acompletion]\n"
    )
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        gateway = Gateway.from_file(path)
    assert gateway.default_policy.cache == Cache(ttl=600.0)
    assert gateway.config is not None
    assert gateway.config.state == "redis://127.0.0.1:6379/0"
    assert gateway.config.state_options.prefix == "litellm.caching:"
    assert isinstance(gateway.router.state.store, RedisStore)
    assert reported(caplog) == ["litellm_settings.cache_params.supported_call_types"]


@pytest.mark.parametrize(
    ("duration", "window"),
    [("1d", "day"), ("7d", "week"), ("1mo", "month"), ("30s", 30.0), ("2h", 7200.0), ("30d", 2_592_000.0)],
)
def test_budget_duration_maps_to_a_window(duration: str, window: str | float) -> None:
    assert budget_window(duration) == window


@given(st.text(max_size=12))
def test_budget_duration_parses_or_says_why(text: str) -> None:
    try:
        window = budget_window(text)
    except ValueError as exc:
        message = str(exc)
    else:
        assert window in ("day", "week", "month") or (isinstance(window, float) and window > 0)
        return
    assert "budget_duration" in message


def test_load_balancing_with_keys_in_the_environment(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        gateway = Gateway.from_file(HERE / "load_balancing_env.yaml")

    assert gateway.registry.aliases == ["gpt-4o", "gpt-3.5-turbo-16k"]
    assert gateway.default_policy.strategy == "shuffle"
    assert (gateway.default_policy.retries, gateway.default_policy.timeout) == (2, 30)
    assert gateway.policies["gpt-4o"].models == ("gpt-4o", "gpt-3.5-turbo-16k")
    assert gateway.policies["gpt-4"].models == ("gpt-4o", "gpt-3.5-turbo-16k")  # model_group_alias
    assert gateway.registry.by_alias["gpt-4o"][0].entry.rpm == 200
    paths = reported(caplog)
    assert paths[:3] == [f"model_list[{i}] (zephyr-beta).litellm_params.model" for i in range(3)]
    # A Redis password written in the file is not used (and said so); host and port map.
    assert "router_settings.redis_password" in paths
    assert not {"router_settings.redis_host", "router_settings.redis_port"} & set(paths)
    assert "fallbacks.zephyr-beta" in paths


def test_a_literal_api_key_is_refused_with_advice() -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway.from_file(HERE / "load_balancing.yaml")
    message = str(caught.value)
    assert "load_balancing.yaml" in message
    assert "model_list[3] (gpt-4o)" in message
    assert "litellm_params.api_key" in message
    assert "os.environ/NAME" in message
    assert "<my-openai-key>" not in message


def test_docker_quick_start_loads(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        gateway = Gateway.from_file(HERE / "docker_quick_start.yaml")
    entry = gateway.registry.by_alias["gpt-4o"][0].entry
    assert (entry.provider, entry.model, entry.api_base) == (
        "azure",
        "my_azure_deployment",
        "https://x.example",
    )
    assert reported(caplog) == ["general_settings.database_url"]


def test_mapping_is_reported_not_silent() -> None:
    data = yaml.safe_load((HERE / "configs_quick_start.yaml").read_text())
    _, unsupported = map_litellm(data, "config.yaml")
    assert all(item.advice for item in unsupported)
    assert "no gate_mw equivalent" in str(
        next(u for u in unsupported if u.path == "general_settings.alerting")
    )


def test_unset_environment_for_api_base_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_API_BASE")
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
        "      api_base: os.environ/AZURE_API_BASE\n      api_key: os.environ/OPENAI_API_KEY\n"
    )
    with pytest.raises(ConfigError, match="AZURE_API_BASE is not set"):
        Gateway.from_file(path)


@pytest.mark.anyio
async def test_a_litellm_config_served_with_fallbacks(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    config: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": fake_upstream.openai_base,
                    "api_key": "os.environ/OPENAI_API_KEY",
                },
            },
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": "anthropic/claude-haiku",
                    "api_base": fake_upstream.anthropic_base,
                },
            },
        ],
        "router_settings": {"fallbacks": [{"gpt-4o": ["claude"]}], "num_retries": 0},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    fake_upstream.script("gpt-4o", Fault(500))
    fake_upstream.script("claude-haiku", Reply("from claude"))
    async with (
        serve_http(build_app(Gateway.from_file(path))) as url,
        openai.AsyncOpenAI(
            base_url=url,
            api_key=ENV["LITELLM_MASTER_KEY"],
            max_retries=0,
        ) as client,
    ):
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
        )
    assert raw.parse().choices[0].message.content == "from claude"
    assert raw.headers["x-gate-model"] == "claude"
    assert fake_upstream.requests[-1].headers["x-api-key"] == ENV["ANTHROPIC_API_KEY"]


@pytest.mark.anyio
async def test_a_litellm_max_budget_refuses_with_402(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    config: dict[str, Any] = {
        "model_list": [{
            "model_name": "gpt-4o",
            "litellm_params": {
                "model": "openai/gpt-4o", "api_base": fake_upstream.openai_base,
                "api_key": "os.environ/OPENAI_API_KEY",
            },
        }],
        "litellm_settings": {"max_budget": 0.000001, "budget_duration": "1d"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    async with (
        serve_http(build_app(Gateway.from_file(path))) as url,
        openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client,
    ):
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 402
    assert caught.value.body["gate"]["limit"] == "global:budget"  # type: ignore[index]
    assert fake_upstream.calls() == 0
