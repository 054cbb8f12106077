"""The `proxy:` section of a gateway file: who may call the proxy, and with which keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from ._keys import key_rules

__all__ = ["KeySpec", "ProxySettings", "from_env", "settings_of"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class KeySpec(_Strict):
    """A virtual key listed in the file: its secret lives in the environment (`key_env`)
    or only as its SHA-256 (`key_sha256`), never in the file itself."""

    name: str = Field(min_length=1, max_length=128)
    key_env: str | None = None
    key_sha256: str | None = None
    caller: str | None = Field(None, description="the caller key budgets and limits count under")
    models: tuple[str, ...] | None = Field(None, description="models it may name; all when unset")
    metadata: dict[str, str] = Field(default_factory=dict)
    limits: tuple[dict[str, Any], ...] = Field(
        (), description="its own rate limits, e.g. {rpm: 60}, {tpm: 100000}, {usd: 5, window: day}"
    )
    budget: dict[str, Any] | None = Field(
        None, description="its own Budget, e.g. {limit_usd: 50, window: month}"
    )

    @model_validator(mode="after")
    def _one_secret(self) -> KeySpec:
        key_rules(self.limits, self.budget)  # a ValueError names the field
        if (self.key_env is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key_env and key_sha256")
        if self.key_sha256 is not None and not _SHA256.match(self.key_sha256):
            raise ValueError("key_sha256 must be 64 lower-case hex digits")
        return self


class ProxySettings(_Strict):
    """How the proxy admits callers. With neither a master key nor keys it is open."""

    master_key_env: str | None = Field(None, description="variable holding the admin master key")
    master_key: str | None = Field(
        None, description="the master key itself (LiteLLM files); prefer master_key_env", repr=False
    )
    keys: tuple[KeySpec, ...] = ()
    require_key: bool | None = Field(None, description="default: when a master key or keys exist")
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="largest request body accepted")
    max_keys: int = Field(
        10_000, gt=0, description="most keys the admin API may create (never evicted; refused past it)"
    )


def settings_of(data: dict[str, Any] | None, source: str | None) -> ProxySettings:
    """Validate a file's `proxy:` section, naming the field on error."""
    try:
        return ProxySettings.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in ("proxy", *first["loc"]))
        raise ConfigError(first["msg"].removeprefix("Value error, "), source=source, field=field) from None


def from_env(
    env: Mapping[str, str], name: str, *, source: str | None, field: str, entry: str | None = None
) -> str:
    """The value of the environment variable `name`; a `ConfigError` naming the field that
    names it when it is unset or empty."""
    value = env.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set", source=source, entry=entry, field=field)
    return value
