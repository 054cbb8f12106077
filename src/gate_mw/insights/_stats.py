"""Statistics from shared counts: percentiles from histogram buckets, means with 95 %
intervals from sums and sums of squares, and differences against a control arm."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

__all__ = [
    "DURATION_BUCKETS", "MIN_SAMPLES", "Estimate", "bucket_of", "mean_estimate", "percentile",
    "relative_difference", "wilson",
]

#: The GenAI duration buckets (0.01 s doubling to 81.92 s): latency is counted per bucket, so
#: replicas add their counts and percentiles come from the shared totals.
DURATION_BUCKETS: tuple[float, ...] = tuple(0.01 * 2**n for n in range(14))
#: Below this many samples per arm an interval is too rough to decide on.
MIN_SAMPLES = 30
_Z = 1.959963984540054  # two-sided 95 % quantile of the normal distribution


#: The index of the bucket holding a number of seconds (the first bound >= it; the last
#: bucket is open-ended). A partial, not a function: no Python frame for every call counted.
bucket_of: Callable[[float], int] = partial(bisect_left, DURATION_BUCKETS)


def percentile(counts: Sequence[float], q: float) -> float | None:
    """The `q`-quantile (0..1) of values counted per bucket, linear within its bucket."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = DURATION_BUCKETS[index - 1] if index else 0.0
            if index >= len(DURATION_BUCKETS):
                return low  # beyond the last bound: its lower edge is all that is known
            return low + (DURATION_BUCKETS[index] - low) * (rank - seen) / count
        seen += count
    return DURATION_BUCKETS[-1]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its 95 % interval (`low`, `high`) from `n` samples."""

    value: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def mean_estimate(n: float, total: float, squares: float) -> Estimate | None:
    """The mean of `n` samples from their sum and sum of squares, with a normal 95 % interval."""
    if n < 1:
        return None
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    half = _Z * math.sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half, int(n))


def wilson(successes: float, n: float) -> Estimate | None:
    """A proportion with its Wilson 95 % interval (sound near 0 and 1, unlike the normal one)."""
    if n < 1:
        return None
    p = successes / n
    centre = (p + _Z * _Z / (2 * n)) / (1 + _Z * _Z / n)
    half = _Z * math.sqrt(p * (1 - p) / n + _Z * _Z / (4 * n * n)) / (1 + _Z * _Z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), int(n))


def relative_difference(arm: Estimate, control: Estimate) -> Estimate | None:
    """(arm / control - 1) with a 95 % interval by the delta method; None if undefined."""
    if control.value <= 0:
        return None
    ratio = arm.value / control.value
    se_arm, se_control = arm.half_width / _Z, control.half_width / _Z
    # Var(a / c) ~ Var(a) / c^2 + a^2 Var(c) / c^4, for independent arms.
    se = math.sqrt((se_arm / control.value) ** 2 + (arm.value * se_control / control.value**2) ** 2)
    return Estimate(ratio - 1, ratio - 1 - _Z * se, ratio - 1 + _Z * se, min(arm.n, control.n))
