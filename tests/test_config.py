"""Bad config and bad policies fail early (import, construction or startup), naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from _apps import SECRET, build_app, make_gateway, openai_entry, serve
from gate_mw import ConfigError, Gateway, ModelEntry, PolicyError, route_policy
from gate_mw.testing import FakeUpstream

GOOD_YAML = """\
default_policy:
  models: [beta]
  max_tokens: 64
capture_content: true
models:
  - name: alpha
    provider: openai
    api_base: {base}
    api_key_env: FAKE_KEY
  - name: beta
    provider: openai
    model: gpt-4o
    api_base: {base}
    api_key_env: FAKE_KEY
    context_window: 8000
"""


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.anyio
async def test_from_file_builds_a_working_gateway(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    path = write(tmp_path, GOOD_YAML.format(base=fake_upstream.openai_base))
    gateway = Gateway.from_file(path, env={"FAKE_KEY": SECRET})
    assert gateway.registry.aliases == ["alpha", "beta"]
    assert gateway.default_policy.models == ("beta",)
    assert gateway.telemetry.capture_content is True
    assert gateway.registry.by_alias["beta"][0].context_window == 8000
    async with serve(build_app(gateway)) as client:
        response = await client.post("/default", json={})
    assert response.json()["model"] == "beta"
    assert fake_upstream.requests[0].json["max_tokens"] == 64


def test_from_file_names_file_entry_and_field(tmp_path: Path) -> None:
    text = "models:\n  - name: alpha\n  - name: beta\n    context_window: -5\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        Gateway.from_file(path)
    error = caught.value
    assert (error.source, error.entry, error.field) == (str(path), "models[1] (beta)", "context_window")
    message = str(error)
    assert str(path) in message
    assert "models[1] (beta)" in message
    assert "context_window" in message


def test_unknown_provider_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - name: alpha\n    provider: openaii\n")
    with pytest.raises(ConfigError) as caught:
        Gateway.from_file(path)
    assert caught.value.entry == "models[0] (alpha)"
    assert caught.value.field == "provider"
    assert "openai" in str(caught.value)  # the message lists the known providers


def test_unknown_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - name: alpha\n    api_bse: http://x\n")
    with pytest.raises(ConfigError) as caught:
        Gateway.from_file(path)
    assert (caught.value.entry, caught.value.field) == ("models[0] (alpha)", "api_bse")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        Gateway.from_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"(?i)not valid yaml"):
        Gateway.from_file(write(tmp_path, "models: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        Gateway.from_file(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match=r"(?i)not valid json"):
        Gateway.from_file(write(tmp_path, "{models: []}", "gateway.json"))


def test_mapping_entries_are_validated_naming_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway([{"name": "ok"}, {"name": "bad", "quality": 9}])
    assert (caught.value.entry, caught.value.field) == ("models[1] (bad)", "quality")


def test_half_a_price_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        Gateway([ModelEntry(name="priced", input_cost_per_mtok=1.0)])
    assert (caught.value.entry, caught.value.field) == ("models[0] (priced)", "output_cost_per_mtok")


@pytest.mark.anyio
async def test_missing_api_key_fails_at_startup_naming_the_variable(fake_upstream: FakeUpstream) -> None:
    entry = openai_entry(fake_upstream, "gpt", api_key_env="MISSING_GATE_KEY")
    gateway = make_gateway([entry], env={"FAKE_KEY": SECRET})  # constructing needs no key
    with pytest.raises(ConfigError) as caught:
        async with LifespanManager(build_app(gateway, {"models": ["gpt"]})):
            pass
    message = str(caught.value)
    assert "MISSING_GATE_KEY" in message
    assert caught.value.field == "api_key_env"
    assert caught.value.entry == "models[0] (gpt)"
    assert SECRET not in message


@pytest.mark.anyio
async def test_missing_secret_header_names_it_but_no_value(fake_upstream: FakeUpstream) -> None:
    entry = openai_entry(fake_upstream, "gpt", secret_headers={"x-org-token": "MISSING_ORG_TOKEN"})
    gateway = make_gateway([entry], env={"FAKE_KEY": SECRET})
    with pytest.raises(ConfigError) as caught:
        async with LifespanManager(build_app(gateway, {"models": ["gpt"]})):
            pass
    message = str(caught.value)
    assert "MISSING_ORG_TOKEN" in message
    assert caught.value.field == "secret_headers.x-org-token"
    assert SECRET not in message


def test_bad_route_policy_fails_at_decoration() -> None:
    with pytest.raises(PolicyError) as caught:

        @route_policy(timeout=-1)
        async def summarise() -> None: ...

    assert caught.value.field == "timeout"
    assert "summarise" in caught.value.route
    assert "summarise" in str(caught.value)
    assert "timeout" in str(caught.value)


def test_route_policy_timeout_longer_than_deadline() -> None:
    with pytest.raises(PolicyError, match="timeout is longer than deadline"):

        @route_policy(timeout=10, deadline=5)
        async def handler() -> None: ...


@pytest.mark.anyio
async def test_route_policy_with_unknown_model_fails_at_startup(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway([openai_entry(fake_upstream, "gpt")])
    app = build_app(gateway, {"models": ["gpt", "gtp-typo"]})
    with pytest.raises(PolicyError) as caught:
        async with LifespanManager(app):
            pass
    assert caught.value.field == "models"
    assert "chat" in caught.value.route  # the handler's name
    assert "gtp-typo" in str(caught.value)
    assert fake_upstream.calls() == 0


def test_default_policy_with_unknown_model_fails_at_construction() -> None:
    with pytest.raises(PolicyError) as caught:
        Gateway([ModelEntry(name="sim")], default_policy={"models": ["nope"]})
    assert caught.value.field == "models"
    assert "nope" in str(caught.value)
    with pytest.raises(PolicyError) as invalid:
        Gateway([ModelEntry(name="sim")], default_policy={"retries": -1})
    assert invalid.value.field == "retries"


def test_unknown_model_per_call_is_refused() -> None:
    gateway = Gateway([ModelEntry(name="sim")])
    with pytest.raises(PolicyError) as caught:
        gateway.client()._chain("nope")
    assert caught.value.field == "model"


def test_no_models_means_simulated_tiers() -> None:
    gateway = Gateway()
    assert gateway.registry.aliases == ["sim-small", "sim-medium", "sim-large"]
    assert gateway.default_policy.models == ("sim-small", "sim-medium", "sim-large")
