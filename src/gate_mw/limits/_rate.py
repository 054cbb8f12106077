"""Rate limits: requests, tokens or USD per window, per caller, route, deployment or
globally. Requests and tokens per minute use GCRA (a leaky bucket: exact, one value per
key, a precise Retry-After); USD may also use calendar windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._windows import Window, window_problem

__all__ = ["Limit"]

Per = Literal["caller", "route", "deployment", "global"]


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit: give exactly one of `rpm` (requests per minute), `tpm` (input plus
    output tokens per minute, reserved from the estimate and settled from actual usage)
    or `usd` (per `window`: seconds, or "day", "week", "month" in `timezone`).

    A burst may use the whole limit at once; it then refills evenly over the minute (or
    window). A call over it raises `RateLimited` (429 with `Retry-After`). Per-deployment
    limits skip the deployment for the next in the chain instead.
    """

    rpm: int | None = None
    tpm: int | None = None
    usd: float | None = None
    per: Per = "caller"
    window: Window = 60.0
    timezone: str = "UTC"

    @property
    def kind(self) -> str:
        return "requests" if self.rpm is not None else "tokens" if self.tpm is not None else "usd"

    @property
    def amount(self) -> float:
        value = self.rpm if self.rpm is not None else self.tpm if self.tpm is not None else self.usd
        assert value is not None
        return float(value)

    def problem(self) -> str | None:
        """What is wrong with this limit, if anything (checked by the policy)."""
        given = [name for name in ("rpm", "tpm", "usd") if getattr(self, name) is not None]
        if len(given) != 1:
            return "give exactly one of rpm, tpm or usd"
        value = getattr(self, given[0])
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            return f"{given[0]} must be positive, got {value!r}"
        if self.per not in ("caller", "route", "deployment", "global"):
            return f"per must be caller, route, deployment or global, got {self.per!r}"
        if self.usd is None and self.window != 60.0:
            return "rpm and tpm are per minute: window applies to usd limits only"
        return window_problem(self.window, self.timezone)
