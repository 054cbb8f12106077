"""LiteLLM's budget, cache and Redis settings, as gate_mw's `Budget`, `Cache` and Redis
state store: `litellm_settings.max_budget`/`budget_duration`, `litellm_settings.cache`
with `cache_params`, `router_settings.redis_*`, and the `/key/generate` budget fields."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["budget_window", "key_fields", "map_budget", "map_cache"]

_ENV = "os.environ/"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w|mo)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "mo": 2_592_000}
# LiteLLM's durations that are gate_mw's calendar windows; the rest roll over seconds.
_CALENDAR = {(1.0, "d"): "day", (1.0, "w"): "week", (7.0, "d"): "week", (1.0, "mo"): "month"}
_CACHE_PARAMS = frozenset({"type", "host", "port", "password", "ttl", "namespace", "url", "redis_url"})
Report = Callable[[str, str], None]


def budget_window(duration: Any) -> str | float:
    """LiteLLM's `budget_duration` ("30s", "1h", "1d", "7d", "1mo") as a `Budget` window:
    a calendar day, week or month where it is one, else rolling seconds."""
    found = _DURATION.match(str(duration))
    if found is None:
        raise ValueError(f"budget_duration {duration!r} is not like 30s, 5m, 1h, 1d, 1w or 1mo")
    amount, unit = float(found[1]), found[2]
    if not amount > 0:
        raise ValueError(f"budget_duration {duration!r} must be positive")
    return _CALENDAR.get((amount, unit), amount * _SECONDS[unit])


def map_budget(settings: dict[str, Any]) -> dict[str, Any] | None:
    """`max_budget` (and `budget_duration`, a month by default) as a global hard budget;
    pops the fields it maps."""
    limit = settings.pop("max_budget", None)
    duration = settings.pop("budget_duration", None)
    if limit is None:
        return None
    window = "month" if duration is None else budget_window(duration)
    # LiteLLM refuses at the limit and never downgrades first.
    return {"limit_usd": float(limit), "per": "global", "window": window, "downgrade_at": None}


def key_fields(body: Mapping[str, Any]) -> tuple[list[Any] | None, Any]:
    """The limits and budget of a key from LiteLLM's `/key/generate` fields (`rpm_limit`,
    `tpm_limit`, `max_budget`, `budget_duration`) when gate_mw's own are not given."""
    limits = body.get("limits")
    if limits is None and (body.get("rpm_limit") is not None or body.get("tpm_limit") is not None):
        given = [kind for kind in ("rpm", "tpm") if body.get(f"{kind}_limit") is not None]
        limits = [{kind: body[f"{kind}_limit"]} for kind in given]
    budget = body.get("budget")
    if budget is None and body.get("max_budget") is not None:
        duration = body.get("budget_duration")
        budget = {
            "limit_usd": body["max_budget"], "downgrade_at": None,
            "window": "month" if duration is None else budget_window(duration),
        }
    return limits, budget


def map_cache(
    litellm: dict[str, Any], router: Mapping[str, Any], report: Report, env_value: Callable[[Any, str], Any]
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """`(cache, state URL, key prefix)`: `litellm_settings.cache` as a response cache, on
    Redis when `cache_params` (or `router_settings.redis_*`, or LiteLLM's REDIS_* variables)
    name one. Pops the fields it maps."""
    enabled = litellm.pop("cache", None)
    params = dict(litellm.pop("cache_params", None) or {})
    url = _redis_url(router, env_value, "router_settings", report)
    if not enabled:
        if params:
            report("litellm_settings.cache_params", "set litellm_settings.cache: true to use them")
        return None, url, None
    kind = params.pop("type", "redis")
    for key in set(params) - _CACHE_PARAMS:
        report(f"litellm_settings.cache_params.{key}", "no gate_mw equivalent: the cache matches exactly")
    cache: dict[str, Any] = {}
    if (ttl := params.pop("ttl", None)) is not None:
        cache["ttl"] = float(ttl)
    namespace = params.pop("namespace", None)
    if kind == "local":
        return cache, url, None
    if kind != "redis":
        report("litellm_settings.cache_params.type", f"a {kind!r} cache is not supported: use redis or local")
        return None, url, None
    url = _redis_url(params, env_value, "litellm_settings.cache_params", report) or url or _redis_env()
    if url is None:
        report(
            "litellm_settings.cache",
            "no Redis named (cache_params.host, router_settings.redis_host or REDIS_HOST): "
            "the cache is in memory, per process",
        )
    return cache, url, None if namespace is None else f"{namespace}:"


def _redis_url(
    params: Mapping[str, Any], env_value: Callable[[Any, str], Any], where: str, report: Report
) -> str | None:
    """A redis:// URL from LiteLLM's `url` or `host`, `port`, `password` (`redis_host`...
    in router_settings), each possibly `os.environ/NAME`. A password written in the file
    is not used: gate_mw keeps secrets in the environment."""
    prefix = "redis_" if where == "router_settings" else ""
    for name in (f"{prefix}url", "redis_url"):
        if params.get(name) is not None:
            return str(env_value(params[name], f"{where}.{name}"))
    if params.get(f"{prefix}host") is None:
        return None
    password = params.get(f"{prefix}password")
    if password is not None and not str(password).startswith(_ENV):
        report(f"{where}.{prefix}password", "put it in the environment and write os.environ/NAME; "
               "Redis is not used until then")
        return None
    return _url(
        env_value(params[f"{prefix}host"], f"{where}.{prefix}host"),
        env_value(params.get(f"{prefix}port", 6379), f"{where}.{prefix}port"),
        None if password is None else env_value(password, f"{where}.{prefix}password"),
    )


def _redis_env() -> str | None:
    """LiteLLM's own fallback: REDIS_URL, or REDIS_HOST with REDIS_PORT and REDIS_PASSWORD."""
    if url := os.environ.get("REDIS_URL"):
        return url
    host = os.environ.get("REDIS_HOST")
    if not host:
        return None
    return _url(host, os.environ.get("REDIS_PORT", 6379), os.environ.get("REDIS_PASSWORD"))


def _url(host: Any, port: Any, password: Any) -> str:
    auth = f":{quote(str(password), safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"
