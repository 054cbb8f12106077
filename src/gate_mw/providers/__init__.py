"""Providers: OpenAI-compatible, Anthropic Messages, and the simulated default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

from ..config import ModelEntry, UpstreamLimits
from ..errors import ConfigError
from ._base import ChatRequest, Provider, ProviderReply
from .anthropic import ANTHROPIC_VERSION, AnthropicProvider
from .openai import OpenAIProvider
from .simulated import SimulatedProvider

__all__ = ["ChatRequest", "Provider", "ProviderReply", "build_provider"]


@dataclass(frozen=True, slots=True)
class _Preset:
    api: Literal["openai", "anthropic"]
    base_url: str
    key_env: str | None
    system: str
    key_required: bool = True
    key_header: str = "authorization"
    key_format: str = "Bearer {}"


_PRESETS: dict[str, _Preset] = {
    "openai": _Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "openai"),
    "openrouter": _Preset("openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openrouter"),
    "litellm": _Preset("openai", "http://localhost:4000/v1", "LITELLM_API_KEY", "litellm", False),
    "helicone": _Preset("openai", "https://oai.helicone.ai/v1", "OPENAI_API_KEY", "openai"),
    "portkey": _Preset(
        "openai", "https://api.portkey.ai/v1", "PORTKEY_API_KEY", "portkey",
        key_header="x-portkey-api-key", key_format="{}",
    ),
    "vllm": _Preset("openai", "http://localhost:8000/v1", None, "vllm", False),
    "ollama": _Preset("openai", "http://localhost:11434/v1", None, "ollama", False),
    "anthropic": _Preset(
        "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "anthropic",
        key_header="x-api-key", key_format="{}",
    ),
}


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
    client: Callable[[], httpx.AsyncClient], limits: UpstreamLimits | None = None,
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
    if preset.api == "anthropic":
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        return AnthropicProvider(
            system=preset.system, base_url=base_url, headers=headers, secrets=tuple(secrets),
            client=client, limits=limits,
        )
    return OpenAIProvider(
        system=preset.system, base_url=base_url, headers=headers, secrets=tuple(secrets),
        client=client, limits=limits,
    )
