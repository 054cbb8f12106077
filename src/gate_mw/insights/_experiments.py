"""Experiment statistics: per arm, calls, error rate and mean cost with 95 % intervals,
latency p50/p95, and each arm against the control with an interval and a verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._stats import MIN_SAMPLES, Estimate, mean_estimate, percentile, relative_difference, wilson
from ._store import Counters, latency_counts

__all__ = ["ArmStats", "Comparison", "ExperimentStats", "experiment_stats"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """An arm against the control: relative differences (0.3 = 30 % more) with 95 %
    intervals, the error-rate difference in points, and the verdict in plain words."""

    cost: Estimate | None
    latency: Estimate | None
    error_rate: Estimate | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "cost": self.cost and self.cost.to_dict(),
            "latency": self.latency and self.latency.to_dict(),
            "error_rate": self.error_rate and self.error_rate.to_dict(),
            "verdict": self.verdict,
        }


@dataclass(frozen=True, slots=True)
class ArmStats:
    """One arm: cost and latency are over its answered calls."""

    arm: str
    calls: int
    errors: int
    error_rate: Estimate | None
    mean_cost_usd: Estimate | None
    mean_latency_s: Estimate | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    versus_control: Comparison | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm, "calls": self.calls, "errors": self.errors,
            "error_rate": self.error_rate and self.error_rate.to_dict(),
            "mean_cost_usd": self.mean_cost_usd and self.mean_cost_usd.to_dict(),
            "mean_latency_s": self.mean_latency_s and self.mean_latency_s.to_dict(),
            "latency_p50_s": self.latency_p50_s, "latency_p95_s": self.latency_p95_s,
            "versus_control": self.versus_control and self.versus_control.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ExperimentStats:
    name: str
    control: str
    arms: dict[str, ArmStats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "control": self.control,
            "arms": {name: arm.to_dict() for name, arm in self.arms.items()},
        }


def _pct(value: float) -> str:
    return f"{abs(value) * 100:.0f} %"


def _phrase(
    what: str, arm: str, difference: Estimate | None, n: int, less: str, more: str,
) -> str:
    if difference is None or n < MIN_SAMPLES:
        return f"not enough data on {what} yet"
    if difference.low > 0 or difference.high < 0:
        word = less if difference.value < 0 else more
        return f"{arm} is {word} by {_pct(difference.value)} ± {_pct(difference.half_width)}"
    return f"no difference in {what} ({difference.value * 100:+.0f} % ± {_pct(difference.half_width)})"


def _compare(arm: ArmStats, control: ArmStats) -> Comparison:
    cost = latency = None
    if arm.mean_cost_usd and control.mean_cost_usd:
        cost = relative_difference(arm.mean_cost_usd, control.mean_cost_usd)
    if arm.mean_latency_s and control.mean_latency_s:
        latency = relative_difference(arm.mean_latency_s, control.mean_latency_s)
    errors = None
    if arm.error_rate and control.error_rate:
        value = arm.error_rate.value - control.error_rate.value
        half = (arm.error_rate.half_width**2 + control.error_rate.half_width**2) ** 0.5
        errors = Estimate(value, value - half, value + half, min(arm.calls, control.calls))
    answered = min(
        (arm.mean_cost_usd.n if arm.mean_cost_usd else 0),
        (control.mean_cost_usd.n if control.mean_cost_usd else 0),
    )
    parts = [
        _phrase("cost", arm.arm, cost, answered, "cheaper", "more expensive"),
        _phrase("latency", arm.arm, latency, answered, "faster", "slower"),
    ]
    if errors is not None and min(arm.calls, control.calls) >= MIN_SAMPLES and (
        errors.low > 0 or errors.high < 0
    ):
        word = "fewer" if errors.value < 0 else "more"
        parts.append(f"{arm.arm} fails {word} calls by {abs(errors.value) * 100:.1f} points")
    return Comparison(cost, latency, errors, "; ".join(parts))


async def experiment_stats(
    counters: Counters, name: str, arms: Sequence[str], control: str | None = None
) -> ExperimentStats:
    """The statistics of experiment `name`; `control` defaults to its first arm."""
    control = control or arms[0]
    if control not in arms:
        raise ValueError(f"control {control!r} is not an arm of experiment {name!r}")
    found: dict[str, ArmStats] = {}
    for arm in arms:
        c = await counters.arm(name, arm)
        calls, errors = c["calls"], c["errors"]
        latency = latency_counts(c)
        found[arm] = ArmStats(
            arm=arm, calls=int(calls), errors=int(errors), error_rate=wilson(errors, calls),
            mean_cost_usd=mean_estimate(calls - errors, c["cost"], c["cost2"]),
            mean_latency_s=mean_estimate(calls - errors, c["lat"], c["lat2"]),
            latency_p50_s=percentile(latency, 0.5), latency_p95_s=percentile(latency, 0.95),
            versus_control=None,
        )
    reference = found[control]
    for arm, stats in found.items():
        if arm != control:
            found[arm] = dataclasses.replace(stats, versus_control=_compare(stats, reference))
    return ExperimentStats(name, control, found)
