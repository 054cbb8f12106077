"""gate_mw: turn a FastAPI, Starlette or Litestar app into its own LLM gateway.

    gateway = Gateway.from_file("gateway.yaml")
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.post("/summarise")
    @route_policy(models=["claude-sonnet", "gpt-4o"], timeout=20)
    async def summarise(body: In, gate: GateClient) -> Out:  # from gate_mw.fastapi
        result = await gate.chat([{"role": "user", "content": body.text}])
"""

from ._context import RoutingContext, current_context
from ._streaming import GateStream
from ._version import __version__
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
