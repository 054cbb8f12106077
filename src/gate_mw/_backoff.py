"""Delays between retries: exponential with full jitter, or the upstream's Retry-After."""

from __future__ import annotations

import random

from .policy import Backoff

__all__ = ["retry_delay"]


def retry_delay(
    backoff: Backoff, retry: int, retry_after: float | None, rng: random.Random
) -> float | None:
    """Seconds to wait before retry number `retry` (0-based), or None to move on instead.

    A Retry-After longer than the cap means the deployment asked not to be called for a
    while: the chain goes to its next model rather than wait or hammer it.
    """
    if retry_after is not None:
        return retry_after if retry_after <= backoff.retry_after_cap else None
    return rng.uniform(0.0, min(backoff.maximum, backoff.initial * 2.0**retry))
