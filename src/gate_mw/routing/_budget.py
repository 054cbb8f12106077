"""Budget-aware downgrade: a caller close to its budget is routed to cheaper models first."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget"]

_MIN_WINDOW = 1.0


@dataclass(frozen=True, slots=True)
class Budget:
    """Once a caller has spent `downgrade_at` (a fraction) of `limit_usd` within the
    current `window` seconds (a fixed window, default one day), the route's order is
    re-sorted cheapest estimated call first. Nothing is refused: the chain still falls
    back to the dearer models. Spend is counted per caller key from the cost of answered
    calls through this gateway.
    """

    limit_usd: float
    downgrade_at: float = 0.8
    window: float = 86_400.0

    def problem(self) -> str | None:
        """What is wrong with this budget, if anything (checked by the policy)."""
        if not isinstance(self.limit_usd, int | float) or not self.limit_usd > 0:
            return f"limit_usd must be positive, got {self.limit_usd!r}"
        if not isinstance(self.downgrade_at, int | float) or not 0 <= self.downgrade_at <= 1:
            return f"downgrade_at must be between 0 and 1, got {self.downgrade_at!r}"
        if not isinstance(self.window, int | float) or not self.window >= _MIN_WINDOW:
            # Spend is bucketed by time // window: a tiny window overflows that at call time.
            return f"window must be at least {_MIN_WINDOW:g} second, got {self.window!r}"
        return None

    @property
    def threshold_usd(self) -> float:
        return self.limit_usd * self.downgrade_at
