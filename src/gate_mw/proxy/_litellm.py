"""LiteLLM proxy `config.yaml` files, read as they are: each field mapped to gate_mw's own
(models, named policies, the breaker, the proxy's master key), and each field without an
equivalent reported once, with its path and what to use instead. Nothing is dropped
unseen. A literal API key is refused: gate_mw reads keys from the environment only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from ..config import ModelEntry, ProviderName
from ..errors import ConfigError
from ._litellm_limits import map_budget, map_cache
from ._settings import from_env

__all__ = ["Unsupported", "from_litellm", "map_litellm"]

logger = logging.getLogger("gate_mw.config")

_ENV = "os.environ/"
# LiteLLM's provider prefixes, and the gate_mw provider each stands for (when gate_mw has it).
_PROVIDERS = {
    "openai": "openai",
    "custom_openai": "openai",
    "anthropic": "anthropic",
    "openrouter": "openrouter",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "hosted_vllm": "vllm",
    "vllm": "vllm",
    "litellm_proxy": "litellm",
    "azure": "azure",
    "gemini": "gemini",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "xai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}
_KNOWN_PROVIDERS = frozenset(get_args(ProviderName))
_STRATEGIES = {
    "simple-shuffle": "shuffle",
    "least-busy": "least_busy",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
    "latency-based-routing": "latency",
    "cost-based-routing": "cost",
}
_NO_KEY = frozenset({"", "none", "null"})
# Sampling parameters a deployment may fix; they need per-deployment params in ModelEntry.
_PARAMS = frozenset({
    "temperature", "max_tokens", "max_completion_tokens", "top_p", "seed", "stop", "frequency_penalty",
    "presence_penalty", "response_format", "reasoning_effort", "user", "n", "logit_bias",
})
_CALLBACK_ADVICE = "gate_mw emits OpenTelemetry GenAI spans and metrics: export them (docs/observability.md)"
_SETTING_ADVICE = {
    "set_verbose": "use Python logging: the 'gate_mw' logger",
    "json_logs": "use Python logging",
    "success_callback": _CALLBACK_ADVICE,
    "failure_callback": _CALLBACK_ADVICE,
    "callbacks": _CALLBACK_ADVICE,
    "service_callback": _CALLBACK_ADVICE,
    "cache": "set it on the model's policy: cache: {ttl: 600}",
    "cache_params": "set it on the model's policy: cache: {ttl: 600}",
    "max_budget": "set it on the model's policy: budget: {limit_usd: 10, window: month}",
    "budget_duration": "set it on the model's policy: budget: {limit_usd: 10, window: month}",
    "stream_timeout": "set ttft and idle_timeout on a policy",
    "database_url": "virtual keys live in the "
    "state store: create them with POST /v1/keys or list them under proxy.keys",
}
# Fields of router_settings and litellm_settings that shape every policy.
_POLICY_FIELDS = (
    "routing_strategy",
    "num_retries",
    "timeout",
    "request_timeout",
    "fallbacks",
    "context_window_fallbacks",
    "allowed_fails",
    "cooldown_time",
    "model_group_alias",
)


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A field of the LiteLLM file with no gate_mw equivalent: where, and what to do."""

    path: str
    advice: str

    def __str__(self) -> str:
        return f"{self.path} is not supported: {self.advice}"


class _Mapper:
    def __init__(self, source: str) -> None:
        self.source = source
        self.unsupported: dict[str, Unsupported] = {}

    def report(self, path: str, advice: str) -> None:
        self.unsupported.setdefault(path, Unsupported(path, advice))

    def error(self, message: str, *, entry: str | None = None, field: str | None = None) -> ConfigError:
        return ConfigError(message, source=self.source, entry=entry, field=field)

    def env_value(self, value: Any, entry: str, field: str) -> Any:
        """`os.environ/NAME` read now, for fields that are not secrets."""
        if isinstance(value, str) and value.startswith(_ENV):
            return from_env(os.environ, value[len(_ENV) :], source=self.source, field=field, entry=entry)
        return value

    # -- model_list -------------------------------------------------------------------

    def model(self, index: int, item: Any) -> dict[str, Any] | None:
        where = f"model_list[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("model_name"), str):
            raise self.error("each entry needs a model_name and litellm_params", entry=where)
        name = item["model_name"]
        where = f"{where} ({name})"
        params = dict(item.get("litellm_params") or {})
        info = dict(item.get("model_info") or {})
        for key in item:
            if key not in ("model_name", "litellm_params", "model_info", "rpm", "tpm"):
                self.report(f"{where}.{key}", "not a LiteLLM deployment field gate_mw knows")
        if name == "*" or str(params.get("model", "")).endswith("*"):
            self.report(where, "wildcard models are not served: list each model by name")
            return None
        upstream = params.pop("model", None)
        if not isinstance(upstream, str) or not upstream:
            raise self.error("litellm_params.model is required", entry=where, field="litellm_params.model")
        mode = info.pop("mode", "embedding" if "embed" in upstream else "chat")
        if mode not in ("chat", "completion"):
            self.report(f"{where}.model_info.mode", f"{mode} models are not served: only chat is")
            return None
        prefix, _, rest = upstream.partition("/")
        if not rest:
            prefix, rest = ("anthropic" if upstream.startswith("claude") else "openai"), upstream
        provider = _PROVIDERS.get(prefix)
        if provider not in _KNOWN_PROVIDERS:
            self.report(
                f"{where}.litellm_params.model",
                f"the provider {prefix!r} is not supported: call it "
                "through an OpenAI-compatible endpoint (openai/<model> with api_base)",
            )
            return None
        entry: dict[str, Any] = {"name": name, "provider": provider, "model": rest}
        self.key(params.pop("api_key", None), entry, where)
        if (base := params.pop("api_base", None)) is not None:
            entry["api_base"] = self.env_value(base, where, "litellm_params.api_base")
        for field in ("rpm", "tpm"):
            value = params.pop(field, item.get(field))
            if value is not None:
                entry[field] = value
        if (version := params.pop("api_version", None)) is not None:
            if "api_version" in ModelEntry.model_fields:
                entry["api_version"] = str(version)
            else:
                self.report(f"{where}.litellm_params.api_version", "only Azure takes an api_version")
        if (timeout := params.pop("timeout", None)) is not None:
            entry["timeout"] = timeout
        headers = dict(params.pop("extra_headers", None) or {})
        if (org := params.pop("organization", None)) is not None:
            headers["OpenAI-Organization"] = self.env_value(org, where, "litellm_params.organization")
        if headers:
            entry["headers"] = headers
        self.prices(params, info, entry, where)
        self.extra(params, entry, where)
        if (deployment_id := info.pop("id", None)) is not None:
            entry["id"] = str(deployment_id)
        if (window := info.pop("max_input_tokens", None)) is not None:
            entry["context_window"] = window
        if (cap := info.pop("max_output_tokens", info.pop("max_tokens", None))) is not None:
            entry["max_output_tokens"] = cap
        for key in info:
            self.report(f"{where}.model_info.{key}", "informational in LiteLLM; gate_mw does not use it")
        return entry

    def key(self, value: Any, entry: dict[str, Any], where: str) -> None:
        if value is None:
            return
        if isinstance(value, str) and value.startswith(_ENV):
            entry["api_key_env"] = value[len(_ENV) :]
        elif isinstance(value, str) and value.strip().lower() in _NO_KEY:
            if entry["provider"] == "openai":
                entry["provider"] = "vllm"  # an OpenAI-compatible server that takes no key
        else:
            raise self.error(
                "a literal API key is not accepted: gate_mw keeps keys in the environment. Put it in a "
                "variable and write api_key: os.environ/NAME",
                entry=where,
                field="litellm_params.api_key",
            )

    def prices(self, params: dict[str, Any], info: dict[str, Any], entry: dict[str, Any], where: str) -> None:
        for ours, theirs in (
            ("input_cost_per_mtok", "input_cost_per_token"),
            ("output_cost_per_mtok", "output_cost_per_token"),
            ("cached_input_cost_per_mtok", "cache_read_input_token_cost"),
        ):
            value = params.pop(theirs, info.pop(theirs, None))
            if value is not None:
                entry[ours] = float(value) * 1_000_000

    def extra(self, params: dict[str, Any], entry: dict[str, Any], where: str) -> None:
        takes_params = "params" in ModelEntry.model_fields
        for key, value in params.items():
            path = f"{where}.litellm_params.{key}"
            if key in _SETTING_ADVICE:
                self.report(path, _SETTING_ADVICE[key])
            elif key in _PARAMS and takes_params:
                entry.setdefault("params", {})[key] = value
            elif key in _PARAMS:
                self.report(
                    path, "per-deployment request parameters come with issue 10; send it in the request"
                )
            else:
                self.report(path, "no gate_mw equivalent for this deployment setting")

    # -- settings ---------------------------------------------------------------------

    def policies(
        self, settings: Mapping[str, Any], aliases: list[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The default policy's fields and the named policies (fallback chains)."""
        base: dict[str, Any] = {}
        if (strategy := settings.get("routing_strategy")) is not None:
            if strategy in _STRATEGIES:
                base["strategy"] = _STRATEGIES[strategy]
            else:
                self.report(
                    "router_settings.routing_strategy",
                    f"{strategy!r} has no gate_mw strategy; ordered is used (see docs/strategies/index.md)",
                )
        if (retries := settings.get("num_retries")) is not None:
            base["retries"] = min(int(retries), 10)
        if (timeout := settings.get("timeout", settings.get("request_timeout"))) is not None:
            base["timeout"] = timeout
        chains: dict[str, list[str]] = {}
        for field in ("fallbacks", "context_window_fallbacks"):
            for rule in settings.get(field) or ():
                for model, fallbacks in rule.items() if isinstance(rule, Mapping) else ():
                    chain = chains.setdefault(str(model), [str(model)])
                    for fallback in fallbacks if isinstance(fallbacks, list) else [fallbacks]:
                        if str(fallback) not in aliases:
                            self.report(f"{field}.{model}", f"{fallback!r} is not a served model: left out")
                        elif str(fallback) not in chain:
                            chain.append(str(fallback))
        named = {name: {**base, "models": chain} for name, chain in chains.items() if name in aliases}
        for name in set(chains) - set(named):
            self.report(f"fallbacks.{name}", "the model is not served: its fallbacks are left out")
        for alias, target in (settings.get("model_group_alias") or {}).items():
            group = target.get("model") if isinstance(target, Mapping) else target
            if str(group) in aliases and alias not in named:
                named[str(alias)] = {**base, "models": named.get(str(group), {}).get("models", [str(group)])}
            else:
                self.report(f"router_settings.model_group_alias.{alias}", f"{group!r} is not a served model")
        return base, named


def map_litellm(data: Mapping[str, Any], source: str) -> tuple[dict[str, Any], list[Unsupported]]:
    """A LiteLLM config as a gate_mw one, and the fields that have no equivalent."""
    mapper = _Mapper(source)
    items = data.get("model_list")
    if not isinstance(items, list):
        raise mapper.error("model_list must be a list of models", field="model_list")
    models = [entry for index, item in enumerate(items) if (entry := mapper.model(index, item)) is not None]
    if not models:
        raise mapper.error(
            "no model of model_list can be served (see the warnings above)", field="model_list"
        )
    sections: dict[str, dict[str, Any]] = {}
    for section in ("router_settings", "litellm_settings", "general_settings"):
        value = data.get(section) or {}
        if not isinstance(value, Mapping):
            raise mapper.error(f"{section} must be a mapping", field=section)
        sections[section] = dict(value)
    litellm, router = sections["litellm_settings"], sections["router_settings"]
    try:
        budget = map_budget(litellm)
    except ValueError as exc:
        raise mapper.error(str(exc), field="litellm_settings.budget_duration") from None
    def env(value: Any, field: str) -> Any:
        return mapper.env_value(value, field.rpartition(".")[0], field.rpartition(".")[2])

    cache, state, prefix = map_cache(litellm, router, mapper.report, env)
    for key in ("redis_host", "redis_port", "redis_password", "redis_url"):
        router.pop(key, None)
    # router_settings wins where both sections set a policy field (as in LiteLLM).
    settings = {k: v for k, v in sections["litellm_settings"].items() if k in _POLICY_FIELDS}
    settings.update({k: v for k, v in sections["router_settings"].items() if k in _POLICY_FIELDS})
    aliases = list(dict.fromkeys(entry["name"] for entry in models))
    base, named = mapper.policies(settings, aliases)
    limits = {"budget": budget, "cache": cache}
    base.update({name: value for name, value in limits.items() if value is not None})
    for policy in named.values():
        policy.update({name: value for name, value in limits.items() if value is not None})
    result: dict[str, Any] = {"models": models, "policies": named}
    if state is not None:
        result["state"] = state
        if prefix is not None:
            result["state_options"] = {"prefix": prefix}
    if base:
        result["default_policy"] = base
    breaker: dict[str, Any] = {}
    if (fails := settings.get("allowed_fails")) is not None:
        breaker["failures"] = max(1, int(fails) + 1)  # LiteLLM cools down past allowed_fails
    if (cooldown := settings.get("cooldown_time")) is not None:
        breaker["cooldown"] = float(cooldown)
    if breaker:
        result["breaker"] = breaker
    general = sections["general_settings"]
    master = general.pop("master_key", None)
    if isinstance(master, str) and master.startswith(_ENV):
        result["proxy"] = {"master_key_env": master[len(_ENV) :]}
    elif master is not None:
        result["proxy"] = {"master_key": str(master)}
    for section, values in sections.items():
        for key in values:
            if key in _POLICY_FIELDS or (section == "litellm_settings" and key == "drop_params"):
                continue  # drop_params: gate_mw passes each provider only what it takes
            mapper.report(f"{section}.{key}", _SETTING_ADVICE.get(key, "no gate_mw equivalent"))
    for key in data:
        if key not in ("model_list", *sections):
            advice = (
                "set these in the environment" if key == "environment_variables" else "no gate_mw equivalent"
            )
            mapper.report(key, advice)
    return result, list(mapper.unsupported.values())


def from_litellm(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`map_litellm`, with each unsupported field logged once (a warning naming the file)."""
    mapped, unsupported = map_litellm(data, source)
    for item in unsupported:
        logger.warning("gate_mw: %s: %s", source, item)
    return mapped
