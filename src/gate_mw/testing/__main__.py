"""``python -m gate_mw.testing``: run the fake upstream in the foreground, for benchmarks.

Prints one line, ``READY http://127.0.0.1:PORT``, once listening; serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

from .._heap import settle_heap
from ._behaviours import Fault, Reply, Stream
from ._upstream import FakeUpstream

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gate_mw.testing",
        description="Fake OpenAI/Anthropic-compatible upstream for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument(
        "--stream-chunks",
        type=int,
        default=None,
        metavar="N",
        help="answer streaming requests with N content chunks",
    )
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--require-api-key", default=None, metavar="KEY")
    parser.add_argument(
        "--fail-model",
        action="append",
        default=[],
        metavar="MODEL",
        help="answer this model with a 500 in its API's error format (repeatable)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    # Not recording: a long benchmark would otherwise keep every request body in memory.
    upstream = FakeUpstream(
        host=args.host, port=args.port, require_api_key=args.require_api_key, record=False
    )
    stream: Stream | None = None
    if args.stream_chunks is not None:
        chunks = tuple(f"token{i} " for i in range(args.stream_chunks))
        stream = Stream(chunks=chunks, ttft=args.latency, chunk_delay=args.chunk_delay)
    upstream.set_default(None, Reply(latency=args.latency), stream=stream)
    for model in args.fail_model:
        upstream.set_default(model, Fault(500, latency=args.latency))
    loop = asyncio.get_running_loop()

    def ready(url: str) -> None:
        settle_heap()  # a benchmark's upstream: as little of the machine as it can take
        # Installed only once serving, so stop() always has a running server to stop.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, upstream.stop)
        print(f"READY {url}", flush=True)

    await upstream.serve(on_ready=ready)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed: a benchmark's upstream should take as little of
    the machine's CPU as it can (a real provider takes none of it)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
