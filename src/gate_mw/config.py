"""Model entries and gateway settings, loaded from Python or from a YAML/JSON file.

API keys are never config values: an entry names the environment variable that holds the
key, and the key itself lives only inside the provider that sends it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._headers import header_name_problem, header_text_problem
from .errors import ConfigError

__all__ = [
    "GatewayConfig", "ModelEntry", "ProviderName", "Simulation", "StateOptions", "UpstreamLimits",
    "load_config", "model_entries", "simulated_models",
]

ProviderName = Literal[
    "openai", "openrouter", "litellm", "helicone", "portkey", "vllm", "ollama",
    "azure", "gemini", "mistral", "groq", "deepseek", "xai", "together", "fireworks",
    "anthropic", "simulated",
]


# Set while a config model is being validated, so that the models inside it leave their
# errors to the outermost one.
_validating: ContextVar[bool] = ContextVar("gate_mw_config_validating", default=False)


class _Strict(BaseModel):
    # Inputs stay out of validation errors: a refused header value may be a key.
    # defer_build: schemas are built at the first validation, not at `import gate_mw`.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, defer_build=True)

    if not TYPE_CHECKING:  # type checkers keep the fields' signature

        def __init__(self, **data: Any) -> None:
            # Made in Python: a ConfigError naming the class, the entry's name if it has
            # one, and the field; never pydantic's error. Made while validating something
            # bigger (a file), pydantic's error goes on, to be named with its whole path.
            if _validating.get():
                super().__init__(**data)
                return
            token = _validating.set(True)
            try:
                super().__init__(**data)
            except ValidationError as exc:
                name = data.get("name")
                entry = type(self).__name__ + (f"({name})" if isinstance(name, str) else "")
                first = exc.errors()[0]
                field = ".".join(str(part) for part in first["loc"]) or None
                message = first["msg"].removeprefix("Value error, ")
                raise ConfigError(message, entry=entry, field=field) from None
            finally:
                _validating.reset(token)

        @classmethod
        def model_validate(cls, obj: Any, **options: Any) -> Any:
            token = _validating.set(True)
            try:
                return super().model_validate(obj, **options)
            finally:
                _validating.reset(token)


class Simulation(_Strict):
    """How the simulated provider behaves: latency and injected failures.

    Failures are drawn from a seeded generator, so a run is reproducible.
    """

    latency: float = Field(0.05, ge=0, description="seconds to the full answer")
    ttft: float = Field(0.02, ge=0, description="seconds to the first streamed token")
    error_rate: float = Field(0.0, ge=0, le=1)
    error_status: int = Field(503, ge=400, le=599)
    retry_after: float | None = Field(None, ge=0)
    fail_first: int = Field(0, ge=0, description="fail this many calls before any success")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="share of calls that hang")
    seed: int = 0
    output_tokens: int = Field(64, ge=1, description="typical answer length")


class ModelEntry(_Strict):
    """One deployment of a model. Several entries may share a `name` (an alias)."""

    name: str = Field(min_length=1)
    provider: ProviderName = "simulated"
    model: str | None = Field(None, description="upstream model id; defaults to name")
    id: str | None = Field(None, description="deployment id; defaults to name, or name#n")
    api_base: str | None = None
    api_version: str | None = Field(None, description="Azure OpenAI's api-version query parameter")
    api_key_env: str | None = Field(None, description="environment variable holding the key")
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, str] = Field(
        default_factory=dict, description="header name -> environment variable holding its value"
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="request body fields for this deployment only, e.g. OpenRouter's provider; "
        "the call's own arguments and extra_body take precedence",
    )
    input_cost_per_mtok: float | None = Field(None, ge=0)
    output_cost_per_mtok: float | None = Field(None, ge=0)
    cached_input_cost_per_mtok: float | None = Field(None, ge=0)
    cache_write_cost_per_mtok: float | None = Field(None, ge=0)
    context_window: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    tags: frozenset[str] = frozenset()
    quality: int = Field(2, ge=1, le=5, description="quality tier, higher is better")
    weight: float = Field(1.0, gt=0)
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0, description="per-attempt timeout override")
    simulation: Simulation = Field(default_factory=Simulation)

    @property
    def upstream_model(self) -> str:
        return self.model or self.name

    @field_validator("name")
    @classmethod
    def _header_safe_name(cls, name: str) -> str:
        # The alias answers in the x-gate-model response header.
        if problem := header_text_problem(name, "the model name"):
            raise ValueError(problem)
        return name

    @field_validator("headers")
    @classmethod
    def _no_auth_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if problem := header_name_problem(name) or header_text_problem(value, f"header {name}"):
                raise ValueError(problem)
        secret = {"authorization", "x-api-key", "api-key"} & {name.lower() for name in headers}
        if secret:
            raise ValueError(
                f"{sorted(secret)[0]} must not be a plain header; name the variable in api_key_env"
            )
        return headers

    @field_validator("secret_headers")
    @classmethod
    def _secret_header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if problem := header_name_problem(name):
                raise ValueError(problem)
        return headers


class UpstreamLimits(_Strict):
    """How much of an upstream's reply is read, so a hostile or broken upstream cannot grow
    memory or CPU without bound. Past a limit the attempt fails (and falls back) as a
    protocol error; an error body is cut at its limit instead."""

    max_body_bytes: int = Field(
        32 * 2**20, gt=0, description="most bytes of a non-streamed reply (decoded)"
    )
    max_error_body_bytes: int = Field(
        64 * 2**10, gt=0, description="bytes of an error reply read for its message; the rest is dropped"
    )
    max_sse_line_bytes: int = Field(
        4 * 2**20, gt=0, description="longest line of a streamed (SSE) reply"
    )


class StateOptions(_Strict):
    """How a shared state store (Redis) is used: key prefix, per-call timeout, and what
    to do when it fails ("open": route on local state; "closed": answer 503)."""

    prefix: str = Field("gate:", min_length=1)
    timeout: float = Field(0.25, gt=0, le=30)
    on_error: Literal["open", "closed"] = "open"


class GatewayConfig(_Strict):
    """Everything a gateway file holds."""

    state: str | None = Field(None, description="redis://host:6379/0, or None for in-memory state")
    state_options: StateOptions = Field(default_factory=StateOptions)

    @field_validator("state")
    @classmethod
    def _state_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://", "memory://")):
            raise ValueError("state must be a redis://, rediss://, unix:// or memory:// URL")
        return url

    models: tuple[ModelEntry, ...] = ()
    default_policy: dict[str, Any] | None = None
    caller_header: str | None = "x-gate-caller"
    request_id_header: str = "x-request-id"
    capture_content: bool = False
    max_connections: int = Field(1024, gt=0)
    policies: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named policies: what a proxy request's model may name"
    )
    breaker: dict[str, Any] | None = Field(None, description="the fields of a Breaker")
    proxy: dict[str, Any] | None = Field(None, description="gate_mw.proxy settings: keys, master key")
    upstream_limits: UpstreamLimits = Field(default_factory=UpstreamLimits)

    @field_validator("caller_header", "request_id_header")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        if name is not None and (problem := header_name_problem(name)):
            raise ValueError(problem)
        return name


def _field_path(loc: Sequence[int | str]) -> tuple[str | None, str | None]:
    """Split a pydantic error location into (entry, field) for messages."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "models" and isinstance(parts[1], int):
        return f"models[{parts[1]}]", ".".join(str(p) for p in parts[2:]) or None
    return None, ".".join(str(p) for p in parts) or None


def config_error(exc: ValidationError, source: str, data: Mapping[str, Any]) -> ConfigError:
    """The first validation error as a ConfigError naming file, entry and field."""
    first = exc.errors()[0]
    entry, field = _field_path(first["loc"])
    models = data.get("models")
    if entry and isinstance(models, list):
        index = int(first["loc"][1])
        if index < len(models) and isinstance(models[index], Mapping) and "name" in models[index]:
            entry = f"{entry} ({models[index]['name']})"
    return ConfigError(first["msg"].removeprefix("Value error, "), source=source, entry=entry, field=field)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway file (`.yaml`, `.yml` or `.json`)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    import yaml  # here, not at the top: only a gateway read from a file needs it

    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError("nested too deeply", source=source) from None
    if not isinstance(data, Mapping):
        raise ConfigError("the top level must be a mapping with a 'models' list", source=source)
    if "model_list" in data:  # a LiteLLM proxy config.yaml, mapped field by field
        from .proxy._litellm import from_litellm

        data = from_litellm(data, source)
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source, data) from None
    except RecursionError:
        raise ConfigError("nested too deeply", source=source) from None


@functools.cache
def simulated_models() -> tuple[ModelEntry, ...]:
    """Used when a gateway is given no models: three simulated tiers, no keys, no network.
    Made on first use: building entries validates them, which `import gate_mw` need not pay."""
    return (
        ModelEntry(
            name="sim-small", quality=1, tags=frozenset({"fast"}), context_window=16_000,
            input_cost_per_mtok=0.15, output_cost_per_mtok=0.6, simulation=Simulation(latency=0.02),
        ),
        ModelEntry(
            name="sim-medium", quality=2, tags=frozenset({"general"}), context_window=128_000,
            input_cost_per_mtok=1.0, output_cost_per_mtok=4.0, simulation=Simulation(latency=0.05),
        ),
        ModelEntry(
            name="sim-large", quality=3, tags=frozenset({"reasoning", "coding"}), context_window=200_000,
            input_cost_per_mtok=3.0, output_cost_per_mtok=15.0, simulation=Simulation(latency=0.1),
        ),
    )


def model_entries(
    models: Sequence[ModelEntry | Mapping[str, Any]], source: str | None
) -> tuple[ModelEntry, ...]:
    """`models` (entries or their mappings) as validated entries; `ConfigError` naming
    `source` and the entry otherwise."""
    if all(isinstance(model, ModelEntry) for model in models):
        return tuple(models)  # type: ignore[arg-type]
    data = {"models": [m.model_dump() if isinstance(m, ModelEntry) else m for m in models]}
    try:
        return GatewayConfig.model_validate(data).models
    except ValidationError as exc:
        raise config_error(exc, source or "Gateway(models=...)", data) from None
