"""Providers: OpenAI-compatible, Anthropic Messages, and the simulated default; presets for
the vendors and proxies that speak one of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

from ..config import ModelEntry, UpstreamLimits
from ..errors import ConfigError
from ._base import ChatRequest, Provider, ProviderReply
from .openai import OpenAIProvider
from .simulated import SimulatedProvider
from .transport import Transport

__all__ = ["ChatRequest", "Provider", "ProviderReply", "build_provider", "price_lookup"]

#: Azure OpenAI's api-version when the entry sets none: the latest GA data-plane version.
AZURE_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class _Preset:
    """A vendor or proxy reached through one of the two wire formats: no code of its own."""

    api: Literal["openai", "anthropic"]
    base_url: str | None  # None: the entry must give its api_base
    key_env: str | None
    system: str  # gen_ai.provider.name
    key_required: bool = True
    key_header: str = "authorization"
    key_format: str = "Bearer {}"
    #: The genai-prices provider id (None: found from the model id); `priced=False` for
    #: self-hosted models, which have no list price.
    prices: str | None = None
    priced: bool = True
    body: Mapping[str, Any] = field(default_factory=dict)  # sent with every request
    omit: frozenset[str] = frozenset()  # fields the vendor refuses
    azure: bool = False  # the model is a deployment in the path; api-version in the query


_PRESETS: dict[str, _Preset] = {
    "openai": _Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "openai", prices="openai"),
    # usage.include makes OpenRouter report what it billed (usage.cost).
    "openrouter": _Preset(
        "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openrouter",
        prices="openrouter", body={"usage": {"include": True}},
    ),
    "litellm": _Preset(
        "openai", "http://localhost:4000/v1", "LITELLM_API_KEY", "litellm", False, prices="litellm"
    ),
    "helicone": _Preset("openai", "https://oai.helicone.ai/v1", "OPENAI_API_KEY", "openai", prices="openai"),
    "portkey": _Preset(
        "openai", "https://api.portkey.ai/v1", "PORTKEY_API_KEY", "portkey",
        key_header="x-portkey-api-key", key_format="{}",
    ),
    "vllm": _Preset("openai", "http://localhost:8000/v1", None, "vllm", False, priced=False),
    "ollama": _Preset("openai", "http://localhost:11434/v1", None, "ollama", False, priced=False),
    "azure": _Preset(
        "openai", None, "AZURE_OPENAI_API_KEY", "azure.ai.openai", key_header="api-key",
        prices="azure", azure=True, key_format="{}",
    ),
    "gemini": _Preset(
        "openai", "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY",
        "gcp.gemini", prices="google",
    ),
    # Mistral refuses stream_options (422) and sends usage in a stream's last chunk anyway.
    "mistral": _Preset(
        "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "mistral_ai", prices="mistral",
        omit=frozenset({"stream_options"}),
    ),
    "groq": _Preset("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "groq", prices="groq"),
    "deepseek": _Preset(
        "openai", "https://api.deepseek.com", "DEEPSEEK_API_KEY", "deepseek", prices="deepseek"
    ),
    "xai": _Preset("openai", "https://api.x.ai/v1", "XAI_API_KEY", "x_ai", prices="x-ai"),
    "together": _Preset(
        "openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY", "together", prices="together"
    ),
    "fireworks": _Preset(
        "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", "fireworks",
        prices="fireworks",
    ),
    "anthropic": _Preset(
        "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "anthropic",
        key_header="x-api-key", prices="anthropic", key_format="{}",
    ),
}


def price_lookup(provider: str) -> tuple[bool, str | None]:
    """Whether models of `provider` have list prices, and its genai-prices provider id."""
    preset = _PRESETS.get(provider)
    return (True, None) if preset is None else (preset.priced, preset.prices)


def _env_value(env: Mapping[str, str], name: str, field: str, entry: str, *, key: bool) -> str:
    """The value of `name`; a key has no whitespace at all, a header value none around it,
    and neither anything but printable ASCII. Refused at startup, naming the variable,
    rather than by the HTTP client at the first call."""
    value = env.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set", entry=entry, field=field)
    if not value.isascii() or not value.isprintable() or value != value.strip() or (key and " " in value):
        what = "an API key" if key else "a header value"
        raise ConfigError(
            f"environment variable {name} holds whitespace or non-ASCII characters, which "
            f"{what} cannot have", entry=entry, field=field,
        )
    return value


def build_provider(
    entry: ModelEntry, *, deployment_id: str, label: str, env: Mapping[str, str],
    client: Callable[[], Transport], limits: UpstreamLimits | None = None,
) -> Provider:
    """The provider for one entry, with its key read from `env` now (at startup).

    `label` names the entry in errors, e.g. "models[2] (gpt-4o)".
    """
    if entry.provider == "simulated":
        return SimulatedProvider(entry.simulation, deployment_id=deployment_id)
    preset = _PRESETS[entry.provider]
    headers = dict(entry.headers)
    secrets: list[str] = []
    key_env = entry.api_key_env or preset.key_env
    if key_env and (entry.api_key_env or preset.key_required or env.get(key_env)):
        key = _env_value(env, key_env, "api_key_env", label, key=True)
        headers[preset.key_header] = preset.key_format.format(key)
        secrets.append(key)
    for header, variable in entry.secret_headers.items():
        headers[header] = _env_value(env, variable, f"secret_headers.{header}", label, key=False)
        secrets.append(headers[header])
    base_url = entry.api_base or preset.base_url
    if base_url is None:
        raise ConfigError(
            f"provider {entry.provider} needs api_base (e.g. https://NAME.openai.azure.com)",
            entry=label, field="api_base",
        )
    query = ""
    if preset.azure:
        base_url = f"{base_url.rstrip('/')}/openai/deployments/{quote(entry.upstream_model, safe='')}"
        query = "?" + urlencode({"api-version": entry.api_version or AZURE_API_VERSION})
    elif entry.api_version is not None:
        raise ConfigError("api_version is for provider azure only", entry=label, field="api_version")
    if preset.api == "anthropic":
        # Here: the Messages translation loads only for a gateway with an Anthropic entry.
        from .anthropic import ANTHROPIC_VERSION, AnthropicProvider

        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        return AnthropicProvider(
            system=preset.system, base_url=base_url, headers=headers, secrets=tuple(secrets),
            client=client, body=entry.params, limits=limits,
        )
    return OpenAIProvider(
        system=preset.system, base_url=base_url, headers=headers, secrets=tuple(secrets),
        client=client, query=query, body={**preset.body, **entry.params}, omit=preset.omit,
        limits=limits,
    )
