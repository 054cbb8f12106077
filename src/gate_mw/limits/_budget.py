"""Budgets: USD a caller, a route or the whole gateway may spend per window. Cheaper
models first past `downgrade_at`, refusal (`BudgetExceeded`) when a call cannot fit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._windows import Window, window_problem

__all__ = ["Budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """At most `limit_usd` per `window`, counted `per` caller, route or globally.

    `window` is "day", "week" or "month" (calendar, in `timezone`), or a number of seconds
    (rolling: the budget refills continuously over that time). Before each call the
    estimated cost of its dearest candidate is reserved; a call that does not fit raises
    `BudgetExceeded` (answered with `status`, 402 by default, or 429). After the call the
    reservation is settled to the actual cost. Once `downgrade_at` (a fraction) of the
    limit is taken, the route's order is re-sorted cheapest first. Calls without a caller
    key are not counted by a per-caller budget.
    """

    limit_usd: float
    downgrade_at: float | None = 0.8
    window: Window = "day"
    per: Literal["caller", "route", "global"] = "caller"
    timezone: str = "UTC"
    status: int = 402

    def problem(self) -> str | None:
        """What is wrong with this budget, if anything (checked by the policy)."""
        limit = self.limit_usd
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            return f"limit_usd must be positive, got {self.limit_usd!r}"
        if self.downgrade_at is not None and not 0 <= self.downgrade_at <= 1:
            return f"downgrade_at must be between 0 and 1, got {self.downgrade_at!r}"
        if self.per not in ("caller", "route", "global"):
            return f"per must be caller, route or global, got {self.per!r}"
        if self.status not in (402, 429):
            return f"status must be 402 or 429, got {self.status!r}"
        return window_problem(self.window, self.timezone)

    @property
    def threshold_usd(self) -> float | None:
        return None if self.downgrade_at is None else self.limit_usd * self.downgrade_at
