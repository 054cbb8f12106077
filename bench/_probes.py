"""The gateway benchmark's two probes that make no chat call.

- `import_probe(rounds)`: ``import gate_mw``, and what an app writes (``from gate_mw import
  Gateway, GatewayMiddleware, RoutePolicy``), against ``import httpx, pydantic`` (what any
  httpx-and-pydantic client pays anyway), each in a fresh interpreter, alternating over
  `rounds`: the import's CPU and wall time, and the process's RSS once imported.
- `middleware_probe(...)`: what `GatewayMiddleware` costs on the example app's ``GET /health``
  (a route that calls no model). The target's figure is served: two uvicorn processes serve
  the app, one with and one without the middleware, asked one request at a time over
  kept-alive connections, alternating between them, each block's server CPU per request read
  from /proc; the share lost is that of requests/s when the server is CPU-bound. For
  information, the same in process: the two ASGI stacks driven directly (no server).
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from bench._common import SRC, serving_process

from gate_mw import GatewayMiddleware

__all__ = [
    "APP_IMPORT", "BASELINE_IMPORT", "EXAMPLE_APP", "GATE_IMPORT", "ImportRun", "MiddlewareRuns",
    "import_probe", "middleware_probe",
]

EXAMPLE_APP = "examples.fastapi_app.app"
BASELINE_IMPORT = "import httpx, pydantic"
GATE_IMPORT = "import gate_mw"
# What an app writes: a lazy `import gate_mw` alone would only move the cost here.
APP_IMPORT = "from gate_mw import Gateway, GatewayMiddleware, RoutePolicy"
# Modules `import gate_mw` should not pull in until they are used (issue 14, deliverable 4).
LAZY_MODULES = (
    "aiohttp", "yaml", "opentelemetry.sdk", "starlette", "fastapi", "litestar", "redis", "httpx_aiohttp",
    # Nor, for the app's import, httpx (only a user's httpx client needs it) or the OTel API
    # (bound at the first gateway made and the middleware's first request).
    "httpx", "opentelemetry.trace",
)

# Run in a fresh interpreter: runs argv's import statement, prints CPU s, wall s, RSS bytes, and
# the LAZY_MODULES that the import loaded.
_PROBE = """
import os, sys, time
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
statement, lazy = compile(sys.argv[1], "<import>", "exec"), sys.argv[2].split(",")
wall, cpu = time.perf_counter(), time.process_time()
exec(statement)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(cpu, wall, rss(), ",".join(name for name in lazy if name in sys.modules))
"""

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

# Serves the example app with uvicorn (as `uvicorn app:app` does: uvloop and httptools when
# installed) on a free port, without `GatewayMiddleware` when argv[1] is "without" (the app's
# own middleware list minus it, as `_stacks` builds it), on CPU argv[2] if given; prints READY
# and its URL once it listens.
_SERVE = f"""
import os, socket, sys, uvicorn
if len(sys.argv) > 2:
    os.sched_setaffinity(0, {{int(sys.argv[2])}})
from gate_mw import GatewayMiddleware
from {EXAMPLE_APP} import app
if sys.argv[1] == "without":
    app.user_middleware = [m for m in app.user_middleware if m.cls is not GatewayMiddleware]
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
print("READY http://127.0.0.1:%d" % sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
"""


# -- import ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRun:
    """One fresh interpreter's import: CPU and wall seconds, RSS bytes after it, lazy modules loaded."""

    cpu: float
    wall: float
    rss: int
    loaded: tuple[str, ...]


def _import_once(statement: str) -> ImportRun:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    # An installed package imports from its bytecode caches: without them every import
    # here would compile gate_mw's sources (the baseline's are cached by pip at install).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    output = subprocess.run(
        [sys.executable, "-c", _PROBE, statement, ",".join(LAZY_MODULES)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    cpu, wall, rss = float(output[0]), float(output[1]), int(output[2])
    return ImportRun(cpu, wall, rss, tuple(output[3].split(",")) if len(output) > 3 else ())


def import_probe(rounds: int) -> dict[str, list[ImportRun]]:
    """`rounds` fresh-process runs of each import statement, keyed by it, rotating which goes
    first; one untimed round before (it writes the bytecode caches)."""
    statements = [BASELINE_IMPORT, GATE_IMPORT, APP_IMPORT]
    for statement in statements:
        _import_once(statement)
    runs: dict[str, list[ImportRun]] = {statement: [] for statement in statements}
    for round_ in range(rounds):
        turn = round_ % len(statements)
        for statement in statements[turn:] + statements[:turn]:
            runs[statement].append(_import_once(statement))
    return runs


# -- the middleware on a route without model calls ---------------------------------------


@dataclass(frozen=True, slots=True)
class MiddlewareRuns:
    """The path; whether it was an A/A control (no middleware on either side); per block,
    the served app's CPU seconds per request with and without the middleware; and in
    process, requests/s of the median request with and without it."""

    path: str
    control: bool
    served_with: list[float]
    served_without: list[float]
    with_: list[float]
    without: list[float]

    @property
    def served_cost(self) -> float:
        """Share of requests/s lost by a CPU-bound server: the median over block pairs of
        1 - CPU per request without / with."""
        pairs = zip(self.served_with, self.served_without, strict=True)
        return statistics.median(1 - without / with_ for with_, without in pairs)

    @property
    def served_us(self) -> tuple[float, float]:
        """Median server CPU per request, with and without the middleware, in us."""
        return statistics.median(self.served_with) * 1e6, statistics.median(self.served_without) * 1e6

    @property
    def cost(self) -> float:
        """In process: share of requests/s lost, the median over blocks of each block's."""
        return statistics.median(1 - w / wo for w, wo in zip(self.with_, self.without, strict=True))

    @property
    def added_us(self) -> float:
        """In process: us the middleware adds to a request, the median over blocks."""
        return statistics.median(1e6 / w - 1e6 / wo for w, wo in zip(self.with_, self.without, strict=True))


def _stacks(app: Any) -> tuple[ASGIApp, ASGIApp]:
    """The app's middleware stack built with, and without, `GatewayMiddleware`, from the
    app's own middleware list; each is called as the app calls its own."""
    declared = list(app.user_middleware)
    if not any(middleware.cls is GatewayMiddleware for middleware in declared):
        raise SystemExit(f"{EXAMPLE_APP} does not install GatewayMiddleware")
    with_stack = app.build_middleware_stack()
    app.user_middleware = [middleware for middleware in declared if middleware.cls is not GatewayMiddleware]
    without_stack = app.build_middleware_stack()
    app.user_middleware = declared
    return with_stack, without_stack


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


async def _block(
    stacks: tuple[ASGIApp, ASGIApp], scope: dict[str, Any], requests: int
) -> tuple[float, float]:
    """`requests` requests through each stack, alternating one by one (the order swapped
    every other pair), each timed alone; the requests/s of each stack's median request.

    Alternating per request puts both under the same load, caches and heap; the median
    drops requests that a collection or the scheduler interrupted."""
    statuses: set[int] = set()
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    times: tuple[list[int], list[int]] = ([], [])
    clock = time.perf_counter_ns
    gc.collect()
    for index in range(requests):
        for side in (0, 1) if index % 2 else (1, 0):
            fresh = {**scope, "state": dict(scope["state"])}
            started = clock()
            await stacks[side](fresh, receive, send)
            times[side].append(clock() - started)
    if statuses != {200}:
        raise RuntimeError(f"the route answered {statuses}, not 200")
    return 1e9 / statistics.median(times[0]), 1e9 / statistics.median(times[1])


async def middleware_probe(
    requests: int, rounds: int, served_requests: int, served_rounds: int, path: str = "/health",
    *, control: bool = False,
) -> MiddlewareRuns:
    """`served_rounds` blocks of `served_requests` requests each way to `path`, served with and
    without the middleware, then `rounds` in-process blocks of `requests` each way.
    `control`: the app without the middleware on both sides (an A/A run: the noise)."""
    app = importlib.import_module(EXAMPLE_APP).app
    stacks = _stacks(app)
    runs = MiddlewareRuns(path, control, [], [], [], [])
    sides = ("without", "without") if control else ("with", "without")
    await _served(path, sides, served_requests, served_rounds, runs)
    if control:
        stacks = (stacks[1], stacks[1])
    async with _lifespan(app) as state:
        scope = _http_scope(path, state)
        scope["app"] = app  # what the app's own `__call__` adds before calling its stack
        await _block(stacks, scope, requests // 10)  # warm-up: caches, route policy resolution
        for _ in range(rounds):
            with_, without = await _block(stacks, scope, requests)
            runs.with_.append(with_)
            runs.without.append(without)
    return runs


async def _served(
    path: str, sides: tuple[str, str], requests: int, rounds: int, runs: MiddlewareRuns
) -> None:
    """Two uvicorn processes serving the example app (`sides`: with or without the
    middleware), asked `GET path` one request at a time over one kept-alive connection each,
    alternating between them request by request (the order swapped every other pair);
    appends each block's server CPU seconds per request (`requests` each way) to `runs`.

    Server CPU, not wall time: the client's own work and the other process's share of the
    machine stay out of it. Alternating request by request puts both servers under the same
    load and clock speed; the mean over a block keeps what a CPU-bound server pays for the
    rare slow request (a collection) in the figure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), str(SRC.parent), env.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in both processes
    # Both servers on one CPU and this client on another, when there are two: otherwise where
    # the scheduler wakes each server (beside the client or not) differs between the two
    # processes and weighs more than the middleware.
    cpus = sorted(os.sched_getaffinity(0))
    pinned = [str(cpus[-1])] if len(cpus) > 1 else []
    with contextlib.ExitStack() as servers:
        if pinned:
            servers.callback(os.sched_setaffinity, 0, set(cpus))
            os.sched_setaffinity(0, set(cpus[:-1]))
        urls, pids = [], []
        for name in sides:
            command = [sys.executable, "-c", _SERVE, name, *pinned]
            line, pid = servers.enter_context(serving_process(command, env, "READY "))
            urls.append(line.split()[1] + path)
            pids.append(pid)
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(_session()) for _ in sides]

            async def request(side: int) -> int:
                """The server's CPU ns for one request (what it did after the previous
                one's response was read counts here: nothing is lost over a block)."""
                started = _thread_cpu_ns(pids[side])
                async with clients[side].get(urls[side]) as response:
                    await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{sides[side]}: the route answered {response.status}")
                return _thread_cpu_ns(pids[side]) - started

            for index in range(requests // 2):  # warm-up: first-request imports, policy resolution
                await request(index % 2)
            for _ in range(rounds):
                cpu = [0, 0]
                for index in range(requests):
                    for side in (0, 1) if index % 2 else (1, 0):
                        cpu[side] += await request(side)
                runs.served_with.append(cpu[0] / 1e9 / requests)
                runs.served_without.append(cpu[1] / 1e9 / requests)


def _session() -> aiohttp.ClientSession:
    """A session over one kept-alive connection."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))


def _thread_cpu_ns(pid: int) -> int:
    # The main thread's CPU in nanoseconds (/proc's clock ticks are 10 ms: too coarse here);
    # uvicorn serves on it.
    with open(f"/proc/{pid}/task/{pid}/schedstat") as schedstat:
        return int(schedstat.read().split()[0])
