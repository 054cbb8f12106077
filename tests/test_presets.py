"""Provider presets over the OpenAI-compatible provider, each against the fake upstream
speaking its shape (path, auth header, query), and the cost each reply is charged."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from _apps import answer
from conftest import Telemetry
from gate_mw import ConfigError, Gateway, ModelEntry, PriceTable
from gate_mw.providers import _PRESETS
from gate_mw.testing import FakeUpstream, Reply, Stream

pytestmark = pytest.mark.anyio

KEY = "sk-preset-test-987"
MESSAGES = [{"role": "user", "content": "hi"}]
USAGE = {"input_tokens": 10_000, "output_tokens": 1_000}

# preset, model, the path the vendor serves chat on, the genai-prices provider id.
PRESETS = [
    ("gemini", "gemini-2.5-flash", "/v1beta/openai/chat/completions", "google"),
    ("mistral", "mistral-large-latest", "/v1/chat/completions", "mistral"),
    ("groq", "llama-3.3-70b-versatile", "/openai/v1/chat/completions", "groq"),
    ("deepseek", "deepseek-chat", "/chat/completions", "deepseek"),
    ("xai", "grok-4", "/v1/chat/completions", "x-ai"),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "/v1/chat/completions", "together"),
    ("fireworks", "accounts/fireworks/models/deepseek-v3", "/inference/v1/chat/completions", "fireworks"),
    ("openrouter", "openai/gpt-4o", "/api/v1/chat/completions", "openrouter"),
]


def _rebased(preset: str, up: FakeUpstream) -> str:
    """The preset's own base URL with the fake's scheme and host: its path is kept as is."""
    base_url = _PRESETS[preset].base_url
    assert base_url is not None
    return up.url + urlsplit(base_url).path


def _gateway(entry: ModelEntry, telemetry: Telemetry | None = None) -> Gateway:
    options: dict[str, Any] = {"telemetry": telemetry.config} if telemetry else {}
    return Gateway([entry], env={"PRESET_KEY": KEY}, **options)


@pytest.mark.parametrize(("preset", "model", "path", "provider_id"), PRESETS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_preset_speaks_its_vendors_shape(
    preset: str, model: str, path: str, provider_id: str, streamed: bool, telemetry: Telemetry
) -> None:
    with FakeUpstream(require_api_key=KEY) as up:  # 401 unless the auth header is right
        up.set_default(model, Reply(text="Hello there", **USAGE))  # as SSE when streamed
        if preset == "mistral":  # usage in the last chunk whatever the request says
            up.set_default(model, Stream(text="Hello there", include_usage=True, **USAGE))
        entry = ModelEntry(name="m", provider=preset, model=model, api_base=_rebased(preset, up),
                           api_key_env="PRESET_KEY")
        async with _gateway(entry, telemetry) as gateway:
            result = await answer(gateway.client(), MESSAGES, streamed=streamed)
        (request,) = up.requests
    assert result.text == "Hello there"
    assert request.path == path
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json["model"] == model
    price = PriceTable.bundled().price(model, provider_id)
    expected = None if price is None else price.cost(result.usage)
    assert result.cost_usd == expected
    assert result.cost_source == (None if price is None else "price_table")
    (span,) = telemetry.spans("chat ")
    assert span.attributes["gen_ai.provider.name"] == gateway.registry.deployments[0].system
    assert not result.usage.estimated
    # Mistral answers 422 to stream_options; the others are asked for usage with it.
    assert ("stream_options" in request.json) is (streamed and preset != "mistral")
    if preset == "openrouter":  # asks for the bill; the fake sends none here, so the table prices
        assert request.json["usage"] == {"include": True}
    else:
        assert "usage" not in request.json


@pytest.mark.parametrize("streamed", [False, True])
async def test_azure_deployment_in_the_path_api_key_header_and_api_version(
    streamed: bool, telemetry: Telemetry
) -> None:
    with FakeUpstream(require_api_key=KEY) as up:
        # Azure answers with the model behind the deployment: that is what is priced.
        up.set_default("prod-gpt4o", Reply(text="Hi", model="gpt-4o-2024-08-06", **USAGE))
        entry = ModelEntry(name="gpt", provider="azure", model="prod-gpt4o", api_base=up.url,
                           api_version="2025-01-01-preview", api_key_env="PRESET_KEY")
        async with _gateway(entry, telemetry) as gateway:
            result = await answer(gateway.client(), MESSAGES, streamed=streamed)
        (request,) = up.requests
    assert request.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert request.query == "api-version=2025-01-01-preview"
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers
    assert result.text == "Hi"
    price = PriceTable.bundled().price("gpt-4o", "azure")
    assert price is not None
    assert result.cost_usd == price.cost(result.usage)
    (span,) = telemetry.spans("chat ")
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"


async def test_azure_default_api_version_and_a_fake_that_insists_on_one() -> None:
    with FakeUpstream(require_api_key=KEY) as up:
        entry = ModelEntry(name="gpt", provider="azure", model="dep", api_base=up.url + "/",
                           api_key_env="PRESET_KEY")
        async with _gateway(entry) as gateway:
            await gateway.client().chat(MESSAGES)
        (request,) = up.requests
        assert request.query.startswith("api-version=20")
        async with httpx.AsyncClient() as client:  # Azure without api-version: 404
            answer = await client.post(f"{up.url}/openai/deployments/dep/chat/completions",
                                       headers={"api-key": KEY}, json={"messages": MESSAGES})
        assert answer.status_code == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"provider": "azure", "model": "dep"}, "api_base"),
        ({"provider": "openai", "model": "gpt-4o", "api_version": "2024-10-21"}, "api_version"),
    ],
)
async def test_preset_misconfiguration_fails_at_startup_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        async with Gateway([ModelEntry(name="m", api_key_env="PRESET_KEY", **fields)],
                           env={"PRESET_KEY": KEY}):
            pass
    assert raised.value.field == field
    assert "models[0]" in str(raised.value)
