"""The cycle collector of a process about to serve: `gate-mw serve`'s workers and the fake
upstream's benchmark server (`python -m gate_mw.testing`)."""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "settle_heap"]

#: The cycle collector's thresholds in a serving process (Python's are 700, 10, 10).
THRESHOLDS = (10_000, 50, 100)


def settle_heap() -> None:
    """Tune the cycle collector of a process that is about to serve.

    With hundreds of requests in flight the young generation fills every few requests and
    each collection scans the in-flight objects again: at 256 in flight the collector took
    ~10 % of the proxy server's instructions (callgrind). Objects made so far (modules, the
    gateway) live as long as the process: frozen, no collection scans them again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
