"""`RedisStore`: state shared by every replica, on Redis (redis-py asyncio, the `redis` extra).

Every key carries the store's prefix and expires. Each read-modify-write is a Lua script
loaded once and called by SHA; the operations a call makes before and after its attempts
(`reserve`, `write`) are one pipelined round trip each. Every call has a short timeout;
when Redis fails, the store either stands in with local state (fail-open, logged once per
outage) or raises `StateUnavailable` (fail-closed), and tries Redis again shortly after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..errors import StateUnavailable
from . import _lua
from ._batch import Batch, hash_tag, open_cluster, reserve_argv
from ._memory import MemoryStore
from ._protocol import Check, Verdict, Writes

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStore"]

logger = logging.getLogger("gate_mw")
_T = TypeVar("_T")
_DAY = 86_400.0


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _load(raw: bytes | str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _ms(seconds: float) -> int:
    """Milliseconds for PX; 0 (no expiry) for `math.inf`, a record meant to persist."""
    return 0 if seconds == math.inf else max(1, int(seconds * 1000 + 0.999))


class RedisStore:
    """`StateStore` on Redis.

    `url` (`redis://host:6379/0`, `rediss://...`) or a ready `client` (e.g. a
    `RedisCluster`). `prefix` namespaces every key; keys without a TTL of their own expire
    `max_ttl` seconds after their last write. `timeout` bounds every call; `on_error`
    is "open" (route on local state) or "closed" (raise `StateUnavailable`, a 503);
    after a failure Redis is tried again after `retry_interval` seconds. At most
    `max_connections` connections are open and `concurrency` operations run at once;
    further calls wait (within the timeout). With
    `write_behind`, what a call learnt is written without delaying its answer (`flush()`
    waits for those writes).
    """

    def __init__(
        self, url: str | None = None, *, client: Redis | None = None, prefix: str = "gate:",
        timeout: float = 0.25, on_error: Literal["open", "closed"] = "open",
        retry_interval: float = 1.0, max_ttl: float = 7 * _DAY, max_connections: int = 64,
        write_behind: bool = True, concurrency: int = 32,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("give a Redis url or a client")
        if on_error not in ("open", "closed"):
            raise ValueError(f"on_error must be 'open' or 'closed', got {on_error!r}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            assert url is not None
            # A blocking pool: calls beyond max_connections wait (within the timeout) for a
            # connection instead of failing, which would split state under load.
            pool = BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
                # One immediate retry on a fresh connection: a pooled one may be stale
                # after a Redis restart. The overall timeout still bounds the call.
                socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1),
            )
            client = Redis(connection_pool=pool)
        self.client = client
        self.cluster = type(client).__name__ == "RedisCluster"
        self.prefix = prefix
        self.timeout = timeout
        self.on_error = on_error
        self.retry_interval = retry_interval
        self.max_ttl = max_ttl
        self.clock = clock
        self.url = url
        #: Stands in for Redis while it is unreachable (fail-open).
        self.local = MemoryStore(clock=clock)
        self._shas: dict[str, str] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0
        self.round_trips = 0  # for the benchmark: pipelines and commands sent
        self.write_behind = write_behind
        self.max_pending = 1024  # writes behind calls; beyond, a call waits for its own
        self._pending: set[asyncio.Task[None]] = set()
        # Operations in flight at once: each takes a connection per node it touches, and a
        # Cluster client fails (rather than waits) past its connections per node.
        self._slots = asyncio.Semaphore(concurrency)
        self._loading = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, on_error={self.on_error!r})"

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def _k(self, key: str) -> str:
        return self.prefix + key

    # -- failure handling --------------------------------------------------------------

    async def _run(self, remote: Callable[[], Awaitable[_T]], local: Callable[[], Awaitable[_T]]) -> _T:
        from redis.exceptions import NoScriptError

        if self._down_since is not None and time.monotonic() < self._retry_at:
            return await self._fallback(local)
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                if not self._shas:
                    await self._load_scripts()
                try:
                    result = await remote()
                except NoScriptError:  # Redis restarted or flushed its scripts
                    await self._load_scripts()
                    result = await remote()
        # Any failure of the client counts as an outage (not only RedisError: redis-py's
        # asyncio Cluster client can fail with AttributeError on a connection it is opening).
        except Exception as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                logger.error(
                    "gate_mw: state store %r unreachable (%s: %s); %s until it is back", self,
                    type(exc).__name__, exc,
                    "using local state" if self.on_error == "open" else "refusing calls (503)",
                )
            self._retry_at = time.monotonic() + self.retry_interval
            # Drop every pooled connection: after a restart they are all stale.
            with contextlib.suppress(Exception):
                await self.client.connection_pool.disconnect()
            return await self._fallback(local)
        if self._down_since is not None:
            logger.warning(
                "gate_mw: state store %r is back after %.1fs", self, time.monotonic() - self._down_since
            )
            self._down_since = None
        return result

    async def _fallback(self, local: Callable[[], Awaitable[_T]]) -> _T:
        if self.on_error == "closed":
            raise StateUnavailable("the shared state store is unreachable")
        return await local()

    async def _load_scripts(self) -> None:
        # Once, however many calls arrive at the start: the first also sets up a Cluster
        # client, which concurrent first commands would race to do.
        shas = dict(self._shas)
        async with self._loading:
            if self._shas == shas:
                await self._load_scripts_now()

    async def _load_scripts_now(self) -> None:
        self.round_trips += 1
        names = ("RESERVE", "ADD", "COMPARE_AND_SET", "WRITE", "OBSERVE")
        if self.cluster:  # SCRIPT LOAD goes to every primary; a Cluster pipeline cannot send it
            await open_cluster(self.client)
            shas = [await self.client.script_load(getattr(_lua, name)) for name in names]
        else:
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.script_load(getattr(_lua, name))
            shas = await pipe.execute()
        self._shas = {
            name: sha if isinstance(sha, str) else sha.decode()
            for name, sha in zip(names, shas, strict=True)
        }

    # -- StateStore --------------------------------------------------------------------

    async def get(self, key: str) -> Any:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        if not keys:
            return []

        async def remote() -> list[Any]:
            self.round_trips += 1
            if len(keys) == 1:
                raw = [await self.client.get(self._k(keys[0]))]
            elif not self.cluster:
                raw = await self.client.mget([self._k(key) for key in keys])
            else:  # keys in many slots: one GET each, sent together
                pipe = self._batch()
                for key in keys:
                    pipe.get(self._k(key))
                raw = await pipe.execute()
            return [_load(value) for value in raw]

        return await self._run(remote, lambda: self.local.get_many(keys))

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        async def remote() -> None:
            self.round_trips += 1
            px = _ms(self.max_ttl if ttl is None else ttl) or None  # None: never expires
            await self.client.set(self._k(key), _dump(value), px=px)

        await self._run(remote, lambda: self.local.set(key, value, ttl=ttl))

    async def compare_and_set(
        self, key: str, expected: Any, value: Any, *, ttl: float | None = None
    ) -> bool:
        async def remote() -> bool:
            self.round_trips += 1
            stored = await self.client.evalsha(
                self._shas["COMPARE_AND_SET"], 1, self._k(key),
                "" if expected is None else _dump(expected), _dump(value),
                _ms(self.max_ttl if ttl is None else ttl),
            )
            return bool(stored)

        return await self._run(remote, lambda: self.local.compare_and_set(key, expected, value, ttl=ttl))

    def _batch(self) -> Batch:
        return Batch(self.client, self.cluster)

    def _add(self, pipe: Batch, key: str, delta: float, ttl: float | None, *, refresh: bool) -> None:
        # A counter without a TTL of its own (in flight, consecutive failures) lives
        # max_ttl past its last change.
        refresh = refresh or ttl is None
        pipe.evalsha(
            self._shas["ADD"], 1, self._k(key), repr(float(delta)),
            _ms(self.max_ttl if ttl is None else ttl), "1" if refresh else "0",
        )

    async def incr(self, deltas: Mapping[str, float], *, ttl: float | None = None) -> list[float]:
        if not deltas:
            return []

        async def remote() -> list[float]:
            self.round_trips += 1
            pipe = self._batch()
            for key, delta in deltas.items():
                self._add(pipe, key, delta, ttl, refresh=False)
            return [float(value) for value in await pipe.execute()]

        return await self._run(remote, lambda: self.local.incr(deltas, ttl=ttl))

    async def reserve(self, checks: Sequence[Check], reads: Sequence[str] = ()) -> Verdict:
        # One script for all (exactly all-or-nothing) on a single Redis; in a Cluster, one
        # per hash tag (slot), all in one pipeline, and if one refuses, the others give
        # back what they took (refusals only).
        groups: dict[str, list[int]] = {}
        for index, check in enumerate(checks):
            groups.setdefault(hash_tag(check.key), []).append(index)

        async def remote() -> Verdict:
            self.round_trips += 1
            now = repr(self.clock())
            if not self.cluster:  # one script: all or nothing, and the reads, in one call
                refusal, values, found = await self.client.evalsha(
                    self._shas["RESERVE"], len(checks) + len(reads),
                    *[self._k(c.key) for c in checks], *[self._k(key) for key in reads],
                    *reserve_argv(now, checks),
                )
                refused = int(refusal) - 1 if refusal else None
                return Verdict(refused is None, tuple(float(v) for v in values), refused,
                               [_load(raw) for raw in found])
            pipe = self._batch()
            for members in groups.values():
                keys = [self._k(checks[i].key) for i in members]
                pipe.evalsha(self._shas["RESERVE"], len(members), *keys,
                             *reserve_argv(now, [checks[i] for i in members]))
            for key in reads:
                pipe.get(self._k(key))
            replies = await pipe.execute()
            used = [0.0] * len(checks)
            refused = None
            taken: list[int] = []
            for members, (refusal, values, _) in zip(groups.values(), replies, strict=False):
                for i, value in zip(members, values, strict=True):
                    used[i] = float(value)
                if refusal:
                    first = members[int(refusal) - 1]
                    refused = first if refused is None else min(refused, first)
                else:
                    taken += members
            if refused is not None and taken:
                await self._give_back([checks[i] for i in taken])
            return Verdict(refused is None, tuple(used), refused,
                           [_load(raw) for raw in replies[len(groups):]])

        return await self._run(remote, lambda: self.local.reserve(checks, reads))

    async def _give_back(self, checks: Sequence[Check]) -> None:
        self.round_trips += 1
        pipe = self._batch()
        for check in checks:
            delta = -check.amount * check.period / check.limit if check.period > 0 else -check.amount
            self._add(pipe, check.key, delta, check.period or check.ttl, refresh=False)
        await pipe.execute()

    async def write(self, writes: Writes) -> None:
        """Counter additions (settlements, breaker and routing figures) are sent behind
        the call (`write_behind`) and not waited for: they only ever lower what a
        reservation holds, so a read that overtakes them errs on the safe side. Writes that
        store values (a cache entry) are waited for, so the next request sees them."""
        if not writes:
            return
        if writes.puts or not self.write_behind or len(self._pending) >= self.max_pending:
            await self._write(writes)
            return
        task = asyncio.get_running_loop().create_task(self._write_behind(writes))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write_behind(self, writes: Writes) -> None:
        try:
            await self._write(writes)
        except StateUnavailable:
            pass  # fail-closed: the outage is logged; the next call is refused
        except Exception:  # nobody awaits this task: say what went wrong
            logger.exception("gate_mw: writing call state to %r failed", self)

    async def flush(self) -> None:
        """Wait for the writes sent behind calls."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    async def _write(self, writes: Writes) -> None:
        async def remote() -> None:
            self.round_trips += 1
            if not self.cluster and not writes.observations:  # one script call
                await self.client.evalsha(*self._write_args(writes))
                return
            pipe = self._batch()
            if not self.cluster:
                if writes.adds or writes.puts:
                    pipe.evalsha(*self._write_args(writes))
            else:
                for key, (delta, ttl) in writes.adds.items():
                    self._add(pipe, key, delta, ttl, refresh=True)
                for key, (value, ttl) in writes.puts.items():
                    pipe.set(self._k(key), _dump(value), px=_ms(self.max_ttl if ttl is None else ttl))
            now = repr(self.clock())
            for key, samples in writes.observations.items():
                argv: list[Any] = [now, _ms(samples[-1].ttl)]
                for sample in samples:
                    argv += [repr(sample.seconds), repr(sample.alpha), repr(sample.half_life)]
                pipe.evalsha(self._shas["OBSERVE"], 1, self._k(key), *argv)
            await pipe.execute()

        await self._run(remote, lambda: self.local.write(writes))

    def _write_args(self, writes: Writes) -> list[Any]:
        """EVALSHA arguments of the WRITE script: every addition and store of `writes`."""
        argv: list[Any] = [len(writes.adds)]
        for delta, ttl in writes.adds.values():
            argv += [repr(float(delta)), _ms(self.max_ttl if ttl is None else ttl), "1"]
        for value, ttl in writes.puts.values():
            argv += [_dump(value), _ms(self.max_ttl if ttl is None else ttl)]
        keys = [self._k(key) for key in (*writes.adds, *writes.puts)]
        return [self._shas["WRITE"], len(keys), *keys, *argv]

    async def ping(self) -> bool:
        """Whether Redis answers now (within the timeout)."""
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.client.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self.flush()
        # Our own pool is closed with the client; a client given to us is the caller's.
        if self.url is not None:
            await self.client.aclose(close_connection_pool=True)
