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


#: Any of these set: telemetry is exported as the OTEL_* variables say (see docs/observability.md).
TELEMETRY_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
)


def load_gateway(env: Mapping[str, str] = os.environ, *, service_name: str) -> Gateway:
    """The gateway for `env`, exporting telemetry when an OTel exporter is configured."""
    if any(env.get(name) for name in TELEMETRY_VARIABLES):
        from gate_mw.telemetry import configure

        configure(service_name)  # reads the OTEL_* variables from os.environ
    return Gateway.from_file(config_path(env), env=env, seed=SEED)
