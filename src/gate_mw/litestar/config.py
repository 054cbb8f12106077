"""`GatePluginConfig`: what `GatePlugin` registers on a Litestar app."""

from __future__ import annotations

from dataclasses import dataclass

from ..gateway import Gateway

__all__ = ["GatePluginConfig"]


@dataclass(frozen=True)
class GatePluginConfig:
    """Configuration of `GatePlugin`."""

    gateway: Gateway
    """The gateway serving the app's routes."""
    dependency_key: str = "gate"
    """Handler parameter name that receives the request's `Gate`."""
    manage_lifespan: bool = True
    """Start the gateway (and check every route policy) with the app, close it after.

    Turn off when the gateway is shared and opened elsewhere.
    """
