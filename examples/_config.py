"""What both examples share: which gateway file to load, and OTLP export when asked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gate_mw import Gateway

__all__ = ["OPENROUTER_CONFIG", "SEED", "SIMULATED_CONFIG", "config_path", "load_gateway"]

CONFIG_DIR = Path(__file__).parent / "fastapi_app"
SIMULATED_CONFIG = CONFIG_DIR / "gateway.yaml"
OPENROUTER_CONFIG = CONFIG_DIR / "gateway.openrouter.yaml"
# Makes retry jitter reproducible, so the demo prints the same run every time.
SEED = 7


def config_path(env: Mapping[str, str]) -> Path:
    """GATE_CONFIG if set, else OpenRouter when its key is present, else the simulation."""
    if explicit := env.get("GATE_CONFIG"):
        return Path(explicit)
    if env.get("OPENROUTER_API_KEY"):
        return OPENROUTER_CONFIG
    return SIMULATED_CONFIG


def load_gateway(env: Mapping[str, str] = os.environ, *, service_name: str) -> Gateway:
    """The gateway for `env`, exporting spans over OTLP when an endpoint is configured."""
    if endpoint := env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from gate_mw.otel import configure_otlp  # needs the `otlp` extra

        configure_otlp(env.get("OTEL_SERVICE_NAME") or service_name, endpoint=endpoint)
    return Gateway.from_file(config_path(env), env=env, seed=SEED)
