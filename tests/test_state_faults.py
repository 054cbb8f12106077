"""Redis stopped mid-test, on a throwaway redis-server of our own: calls go on (fail-open)
or are refused (fail-closed) within the timeout, and the store reconnects by itself."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from _apps import MESSAGES, make_gateway, openai_entry
from gate_mw import Limit, RoutePolicy, StateUnavailable
from gate_mw.state import RedisStore
from gate_mw.testing import FakeUpstream

pytestmark = pytest.mark.anyio
TIMEOUT = 0.3
POLICY = RoutePolicy(models=("m",), limits=(Limit(rpm=1000, per="route"),))


class Server:
    """A redis-server on an ephemeral loopback port that the test may stop and start."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # its own word that it accepts connections
            if b"Ready to accept connections" in line:
                return  # the few lines it logs later fit in the pipe
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None


@pytest.fixture
def server() -> Iterator[Server]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed (scripts/ensure-redis installs it)")
    made = Server()
    made.start()
    yield made
    made.stop()


def within_timeout(started: float) -> None:
    # The store's timeout, plus the fake upstream's own time and a contended machine's slack.
    assert time.perf_counter() - started < TIMEOUT + 2.0


async def test_redis_stopped_mid_test_fails_open_and_comes_back(
    server: Server, fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(f"redis://127.0.0.1:{server.port}/0", timeout=TIMEOUT, retry_interval=0.0)
    gateway = make_gateway([openai_entry(fake_upstream, "m")], state=store)
    async with gateway:
        gate = gateway.client(POLICY, route="/faults")
        await gate.chat(MESSAGES)
        assert not store.degraded
        server.stop()
        with caplog.at_level(logging.WARNING, logger="gate_mw"):
            for _ in range(3):
                started = time.perf_counter()
                assert (await gateway.client(POLICY, route="/faults").chat(MESSAGES)).text
                within_timeout(started)
            assert store.degraded
            server.start()
            await gateway.client(POLICY, route="/faults").chat(MESSAGES)
        assert not store.degraded  # reconnected by itself
        logged = [r.message for r in caplog.records]
        assert sum("unreachable" in m for m in logged) == 1  # once per outage
        assert sum("is back after" in m for m in logged) == 1


async def test_redis_stopped_mid_test_fails_closed_with_503_in_time(
    server: Server, fake_upstream: FakeUpstream
) -> None:
    store = RedisStore(
        f"redis://127.0.0.1:{server.port}/0", timeout=TIMEOUT, on_error="closed", retry_interval=0.0
    )
    gateway = make_gateway([openai_entry(fake_upstream, "m")], state=store)
    async with gateway:
        await gateway.client(POLICY, route="/faults").chat(MESSAGES)
        server.stop()
        started = time.perf_counter()
        with pytest.raises(StateUnavailable):
            await gateway.client(POLICY, route="/faults").chat(MESSAGES)
        within_timeout(started)
        server.start()
        assert (await gateway.client(POLICY, route="/faults").chat(MESSAGES)).text


async def test_a_blackholed_redis_times_out_instead_of_hanging(fake_upstream: FakeUpstream) -> None:
    """A listener that never answers (a hung Redis): the call waits the timeout, no more."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=TIMEOUT)
        gateway = make_gateway([openai_entry(fake_upstream, "m")], state=store)
        async with gateway:
            started = time.perf_counter()
            await gateway.client(POLICY, route="/faults").chat(MESSAGES)
            within_timeout(started)
        assert store.degraded
