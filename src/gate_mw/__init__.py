"""gate_mw: turn a FastAPI, Starlette or Litestar app into its own LLM gateway.

    gateway = Gateway.from_file("gateway.yaml")
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.post("/summarise")
    @route_policy(models=["claude-sonnet", "gpt-4o"], timeout=20)
    async def summarise(body: In, gate: GateClient) -> Out:  # from gate_mw.fastapi
        result = await gate.chat([{"role": "user", "content": body.text}])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # type checkers and IDEs see the names; the runtime loads them on first use
    from ._context import RoutingContext, current_context
    from ._streaming import GateStream
    from .client import Gate
    from .config import GatewayConfig, ModelEntry, Simulation, UpstreamLimits
    from .errors import (
        AllAttemptsFailed,
        BudgetExceeded,
        ConfigError,
        DeadlineExceeded,
        ErrorKind,
        GateError,
        NoCandidates,
        PolicyError,
        RateLimited,
        RequestRejected,
        StateUnavailable,
        StreamInterrupted,
        UpstreamError,
    )
    from .gateway import Gateway
    from .limits import Budget, Cache, Limit
    from .middleware import GatewayMiddleware
    from .policy import Backoff, RoutePolicy, route_policy
    from .pricing import Price, PriceTable
    from .results import Attempt, ChatResult, Usage
    from .routing import Breaker, Experiment
    from .state import MemoryStore, RedisStore
    from .telemetry import TelemetryConfig

__all__ = [
    "AllAttemptsFailed",
    "Attempt",
    "Backoff",
    "Breaker",
    "Budget",
    "BudgetExceeded",
    "Cache",
    "ChatResult",
    "ConfigError",
    "DeadlineExceeded",
    "ErrorKind",
    "Experiment",
    "Gate",
    "GateError",
    "GateStream",
    "Gateway",
    "GatewayConfig",
    "GatewayMiddleware",
    "Limit",
    "MemoryStore",
    "ModelEntry",
    "NoCandidates",
    "PolicyError",
    "Price",
    "PriceTable",
    "RateLimited",
    "RedisStore",
    "RequestRejected",
    "RoutePolicy",
    "RoutingContext",
    "Simulation",
    "StateUnavailable",
    "StreamInterrupted",
    "TelemetryConfig",
    "UpstreamLimits",
    "Usage",
    "UpstreamError",
    "__version__",
    "current_context",
    "route_policy",
]

# Where each public name lives (the imports above, for the runtime). `import gate_mw` loads
# none of them, so a program that uses only `gate_mw.testing`, `gate_mw.errors` or the CLI
# does not pay for the gateway; the first name taken from here loads its module.
_EXPORTS = {
    "._context": ("RoutingContext", "current_context"),
    "._streaming": ("GateStream",),
    ".client": ("Gate",),
    ".config": ("GatewayConfig", "ModelEntry", "Simulation", "UpstreamLimits"),
    ".errors": (
        "AllAttemptsFailed", "BudgetExceeded", "ConfigError", "DeadlineExceeded", "ErrorKind", "GateError",
        "NoCandidates", "PolicyError", "RateLimited", "RequestRejected", "StateUnavailable",
        "StreamInterrupted", "UpstreamError",
    ),
    ".gateway": ("Gateway",),
    ".limits": ("Budget", "Cache", "Limit"),
    ".middleware": ("GatewayMiddleware",),
    ".policy": ("Backoff", "RoutePolicy", "route_policy"),
    ".pricing": ("Price", "PriceTable"),
    ".results": ("Attempt", "ChatResult", "Usage"),
    ".routing": ("Breaker", "Experiment"),
    ".state": ("MemoryStore", "RedisStore"),
    ".telemetry": ("TelemetryConfig",),
}
_HOMES = {name: module for module, names in _EXPORTS.items() for name in names}


if not TYPE_CHECKING:  # for type checkers, the module has exactly the names imported above

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            return _submodule(name)
        value = getattr(importlib.import_module(home, __name__), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value

    def _submodule(name: str) -> Any:
        # `gate_mw.config` and the like worked after a bare `import gate_mw` when it imported
        # them all; they still do.
        if not name.startswith("_"):
            try:
                return importlib.import_module(f".{name}", __name__)
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
