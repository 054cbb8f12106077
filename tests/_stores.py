"""State stores for tests: the memory store and the real Redis, each with its own key prefix."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gate_mw.state import MemoryStore, RedisStore, StateStore

__all__ = ["REDIS_URL", "make_store", "redis_cluster", "store"]

REDIS_URL = "redis://127.0.0.1:6379/0"


def make_store(kind: str, clock: Callable[[], float] | None = None, **options: object) -> StateStore:
    """A fresh store; a Redis one gets a unique prefix, since teammates share that Redis."""
    extra = {} if clock is None else {"clock": clock}
    if kind == "memory":
        return MemoryStore(**extra)  # type: ignore[arg-type]
    options.setdefault("prefix", f"test:{uuid.uuid4().hex[:12]}:")
    # A contended machine, and hundreds of calls at once; fault tests set their own.
    options.setdefault("timeout", 10.0)
    made = RedisStore(REDIS_URL, **extra, **options)  # type: ignore[arg-type]
    # "redis-cluster-path": the Cluster code (a script per hash tag, pipelined, refusals
    # given back) run against the single Redis, which accepts it too.
    made.cluster = kind == "redis-cluster-path"
    return made


def _cluster_port() -> int:
    # A Cluster node also listens on its port + 10000, so ports above 55535 cannot be used.
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55_000:
            return port


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A throwaway three-node Redis Cluster on loopback (host and port of one node)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are needed (scripts/ensure-redis installs them)")
    root: Path = tmp_path_factory.mktemp("cluster")
    nodes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for index in range(3):
            port = _cluster_port()
            folder = root / str(index)
            folder.mkdir()
            node = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(folder / "nodes.conf"), "--save", "", "--appendonly", "no",
                 "--dir", str(folder)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            nodes.append(node)
            ports.append(port)
            assert node.stdout is not None
            for line in node.stdout:  # its own word that it accepts connections
                if b"Ready to accept connections" in line:
                    break
        # --cluster create assigns the slots and waits for the nodes to agree.
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        yield "127.0.0.1", ports[0]
    finally:
        for node in nodes:
            node.kill()
            node.wait()
            if node.stdout is not None:
                node.stdout.close()


@pytest.fixture(params=["memory", "redis", "redis-cluster-path"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    """One suite, every store: memory, Redis, and the Cluster code path run on one Redis
    (a real Cluster: tests/test_state_cluster.py)."""
    made = make_store(request.param)
    yield made
    await made.aclose()
