"""The benchmarks' upstream: gate_mw's fake (`gate_mw.testing.FakeUpstream`) in its own process.

    python bench/_upstream.py [--latency SECONDS] [--fail-model MODEL ...]

Answers every chat request after ``--latency`` seconds; a request for a ``--fail-model``
gets a 500 in the API's error format instead (the first hop of a fallback). Prints
``READY http://127.0.0.1:PORT`` once listening and serves until SIGTERM. It does what
``python -m gate_mw.testing`` does, plus the failing models, which that CLI has no flag for.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from gate_mw.testing import FakeUpstream, Fault, Reply


async def _serve(latency: float, fail_models: Sequence[str]) -> None:
    # Not recording: a long benchmark would otherwise keep every request body in memory.
    upstream = FakeUpstream(port=0, record=False)
    upstream.set_default(None, Reply(latency=latency))
    for model in fail_models:
        upstream.set_default(model, Fault(500, latency=latency))
    loop = asyncio.get_running_loop()

    def ready(url: str) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, upstream.stop)
        print(f"READY {url}", flush=True)

    await upstream.serve(on_ready=ready)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--fail-model", action="append", default=[], help="answer this model with a 500")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.latency, args.fail_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
