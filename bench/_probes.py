"""The gateway benchmark's two probes that make no chat call.

- `import_probe(rounds)`: ``import gate_mw`` against ``import httpx, pydantic`` (what any
  httpx-and-pydantic client pays anyway), each in a fresh interpreter, alternating over
  `rounds`: the import's CPU and wall time, and the process's RSS once imported.
- `middleware_probe(requests, rounds)`: requests/s of the example app's ``GET /health`` (a route
  that calls no model) with and without `GatewayMiddleware`, driving the ASGI app in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import os
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench._common import SRC, Clock

from gate_mw import GatewayMiddleware

__all__ = ["EXAMPLE_APP", "ImportRun", "MiddlewareRuns", "import_probe", "middleware_probe"]

EXAMPLE_APP = "examples.fastapi_app.app"
BASELINE_IMPORT = ("httpx", "pydantic")
GATE_IMPORT = ("gate_mw",)
# Modules `import gate_mw` should not pull in until they are used (issue 14, deliverable 4).
LAZY_MODULES = (
    "aiohttp", "yaml", "opentelemetry.sdk", "starlette", "fastapi", "litestar", "redis", "httpx_aiohttp",
)

# Run in a fresh interpreter: imports argv's modules, prints CPU s, wall s, RSS bytes, and the
# LAZY_MODULES that the import loaded.
_PROBE = """
import os, sys, time
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
names, lazy = sys.argv[1].split(","), sys.argv[2].split(",")
wall, cpu = time.perf_counter(), time.process_time()
for name in names:
    __import__(name)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(cpu, wall, rss(), ",".join(name for name in lazy if name in sys.modules))
"""

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


# -- import ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRun:
    """One fresh interpreter's import: CPU and wall seconds, RSS bytes after it, lazy modules loaded."""

    cpu: float
    wall: float
    rss: int
    loaded: tuple[str, ...]


def _import_once(modules: Sequence[str]) -> ImportRun:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    output = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(modules), ",".join(LAZY_MODULES)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    cpu, wall, rss = float(output[0]), float(output[1]), int(output[2])
    return ImportRun(cpu, wall, rss, tuple(output[3].split(",")) if len(output) > 3 else ())


def import_probe(rounds: int) -> dict[str, list[ImportRun]]:
    """`rounds` fresh-process imports of the baseline and of gate_mw, alternating which goes
    first; one untimed pair before (it writes the bytecode caches)."""
    probes = {"import httpx, pydantic": BASELINE_IMPORT, "import gate_mw": GATE_IMPORT}
    for modules in probes.values():
        _import_once(modules)
    runs: dict[str, list[ImportRun]] = {name: [] for name in probes}
    for round_ in range(rounds):
        for name in sorted(probes, reverse=bool(round_ % 2)):
            runs[name].append(_import_once(probes[name]))
    return runs


# -- the middleware on a route without model calls ---------------------------------------


@dataclass(frozen=True, slots=True)
class MiddlewareRuns:
    """Requests per CPU second, per round, with and without the middleware; and the path."""

    path: str
    with_: list[float]
    without: list[float]

    @property
    def cost(self) -> float:
        """Share of requests/s lost: the median over rounds of each back-to-back pair's."""
        return statistics.median(1 - w / wo for w, wo in zip(self.with_, self.without, strict=True))

    @property
    def added_us(self) -> float:
        return statistics.median(1e6 / w - 1e6 / wo for w, wo in zip(self.with_, self.without, strict=True))


def _stacks(app: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """Switches putting the app's middleware stack with, or without, `GatewayMiddleware` in place.

    Both stacks are built once, from the app's own middleware list, and swapped in between rounds.
    """
    declared = list(app.user_middleware)
    if not any(middleware.cls is GatewayMiddleware for middleware in declared):
        raise SystemExit(f"{EXAMPLE_APP} does not install GatewayMiddleware")
    with_stack = app.build_middleware_stack()
    app.user_middleware = [middleware for middleware in declared if middleware.cls is not GatewayMiddleware]
    without_stack = app.build_middleware_stack()
    app.user_middleware = declared

    def use(stack: Any) -> Callable[[], None]:
        return lambda: setattr(app, "middleware_stack", stack)

    return use(with_stack), use(without_stack)


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run the app's ASGI lifespan around the block; yields its lifespan state."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {started}")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def _http_scope(path: str, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000), "state": state,
        "headers": [(b"host", b"bench.local"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    }


async def _requests_per_s(app: ASGIApp, scope: dict[str, Any], requests: int) -> float:
    statuses: list[int] = []
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    gc.collect()
    with Clock() as clock:
        for _ in range(requests):
            await app({**scope, "state": dict(scope["state"])}, receive, send)
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"the route answered {set(statuses)}, not 200")
    return requests / clock.cpu  # single-threaded and CPU-bound: time descheduled is not counted


async def middleware_probe(requests: int, rounds: int, path: str = "/health") -> MiddlewareRuns:
    """`rounds` pairs of `requests` requests to `path`, without then with the middleware."""
    app = importlib.import_module(EXAMPLE_APP).app
    use_with, use_without = _stacks(app)
    runs = MiddlewareRuns(path, [], [])
    async with _lifespan(app) as state:
        scope = _http_scope(path, state)
        for use in (use_without, use_with):  # warm-up: caches, route policy resolution
            use()
            await _requests_per_s(app, scope, requests // 10)
        for _ in range(rounds):
            for figures, use in ((runs.without, use_without), (runs.with_, use_with)):
                use()
                figures.append(await _requests_per_s(app, scope, requests))
    return runs
