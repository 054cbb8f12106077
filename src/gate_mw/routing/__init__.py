"""Routing: strategies that order a route's models per call, A/B experiments, cooldowns
(circuit breakers). The state they share lives in `gate_mw.state`.

    @route_policy(models=["small", "medium", "large"], strategy="cost", max_cost_usd=0.01)

A strategy decides the order; the fallback chain then walks it, so every strategy still
ends in an answer when any model can give one.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..state import MemoryStore, StateStore
    from ._classify import Classifier, Tier, classify_complexity
    from ._experiments import ArmSummary, Experiment
    from ._health import Breaker, CooldownState
    from ._request import RequestInfo
    from ._state import LatencyStats, RoutingState
    from ._strategies import (
        CostStrategy,
        HybridStrategy,
        LatencyStrategy,
        LeastBusyStrategy,
        OrderedStrategy,
        ShuffleStrategy,
        Strategy,
        TaskStrategy,
        UsageStrategy,
        register_strategy,
    )

__all__ = [
    "ArmSummary",
    "Breaker",
    "Classifier",
    "CooldownState",
    "CostStrategy",
    "Experiment",
    "HybridStrategy",
    "LatencyStats",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "MemoryStore",
    "OrderedStrategy",
    "RequestInfo",
    "RoutingState",
    "ShuffleStrategy",
    "StateStore",
    "Strategy",
    "TaskStrategy",
    "Tier",
    "UsageStrategy",
    "classify_complexity",
    "register_strategy",
]

# A policy's `Experiment` or `Strategy` loads without the rest of routing.
if not TYPE_CHECKING:
    __getattr__ = lazy_exports(__name__, globals(), {
        "..state": ("MemoryStore", "StateStore"),  # where they live now; kept here for imports
        "._classify": ("Classifier", "Tier", "classify_complexity"),
        "._experiments": ("ArmSummary", "Experiment"),
        "._health": ("Breaker", "CooldownState"),
        "._request": ("RequestInfo",),
        "._state": ("LatencyStats", "RoutingState"),
        "._strategies": (
            "CostStrategy", "HybridStrategy", "LatencyStrategy", "LeastBusyStrategy", "OrderedStrategy",
            "ShuffleStrategy", "Strategy", "TaskStrategy", "UsageStrategy", "register_strategy",
        ),
    })
