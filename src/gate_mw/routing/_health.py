"""Per-deployment circuit breakers (cooldowns), readable through `Gateway.cooldowns()`.

closed --(N consecutive failures, or failure rate over a window)--> open
open --(cooldown elapsed; one caller wins the probe slot)--> half_open
half_open --(probe succeeds)--> closed;  --(probe fails)--> open again
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ..errors import ConfigError, ErrorKind
from ..state import MemoryStore

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._registry import Deployment
    from ..state import StateStore, Writes

__all__ = ["UNREAD", "Breaker", "CooldownState", "Health", "breaker_keys"]

#: `Health.admit`'s `known` when the breaker was not read before the call.
UNREAD: Any = object()

State = Literal["closed", "open", "half_open"]
_MIN_SECONDS = 0.001
_MAX_WINDOWS = 4096

# The request's own fault (or an answer that did not fit its schema) says nothing about
# the deployment's health.
_NOT_COUNTED = frozenset({
    ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_LENGTH, ErrorKind.DEADLINE, ErrorKind.COOLDOWN,
    ErrorKind.CONTENT_FILTER, ErrorKind.INVALID_OUTPUT, ErrorKind.UNSUPPORTED,
})


@dataclass(frozen=True, slots=True)
class Breaker:
    """When a deployment is taken out of rotation, and for how long.

    It opens after `failures` consecutive failures, or when at least `min_calls` calls
    in the current `window` seconds failed at `failure_rate` or more. After `cooldown`
    seconds one half-open probe call goes through; its success closes the breaker. A probe
    that never reports back frees its slot after `probe_timeout` seconds.
    """

    failures: int = 5
    failure_rate: float = 0.5
    min_calls: int = 20
    window: float = 60.0
    cooldown: float = 30.0
    probe_timeout: float = 60.0

    def __post_init__(self) -> None:
        def check(ok: bool, field: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"{field} {message}", entry="Breaker", field=field)

        def number(name: str) -> bool:
            value = getattr(self, name)
            return isinstance(value, int | float) and not isinstance(value, bool)

        for name in ("failures", "failure_rate", "min_calls", "window", "cooldown", "probe_timeout"):
            check(number(name), name, f"must be a number, got {getattr(self, name)!r}")
        check(self.failures >= 1, "failures", "must be at least 1")
        check(0 < self.failure_rate <= 1, "failure_rate", "must be in (0, 1]")
        check(self.min_calls >= 1, "min_calls", "must be at least 1")
        for name in ("window", "cooldown", "probe_timeout"):
            # Windows bucket time by time // window: a tiny one would overflow at call time.
            check(getattr(self, name) >= _MIN_SECONDS, name, f"must be at least {_MIN_SECONDS:g} s")


@dataclass(frozen=True, slots=True)
class CooldownState:
    """A deployment's breaker. `since` is when it entered `state`; `until` is, when open,
    the time a probe may go through and, when half-open, when the probe's slot frees.
    Times are the state store's clock (epoch seconds by default)."""

    deployment: str
    state: State
    reason: str | None = None
    since: float | None = None
    until: float | None = None
    consecutive_failures: int = 0


class Admission(NamedTuple):
    """Whether an attempt may go to a deployment; `probe` if it is the half-open probe."""

    reason: str | None
    probe: bool = False

    @property
    def admitted(self) -> bool:
        return self.reason is None


ADMITTED = Admission(None)
_PROBE = Admission(None, probe=True)


@lru_cache(maxsize=4096)
def _keys(deployment_id: str) -> tuple[str, str]:
    # Built once per deployment: every call reads both before its first attempt.
    return "cb:" + deployment_id, "cbf:" + deployment_id


def breaker_keys(deployments: Iterable[Deployment]) -> list[str]:
    """The keys of the breakers and consecutive failures of `deployments`, read before a call."""
    return [key for deployment in deployments for key in _keys(deployment.id)]


class Health:
    """Breaker bookkeeping for every deployment, in the routing state store."""

    __slots__ = ("_memory", "_windows", "breaker", "store")

    def __init__(self, store: StateStore, breaker: Breaker) -> None:
        self.store = store
        self.breaker = breaker
        # A plain memory store counts successes in place: no entry in the call's write,
        # and no write at all for most calls.
        self._memory = MemoryStore.in_place(store)
        # deployment id -> (window bucket, its keys): built once per window, not per call.
        self._windows: dict[str, tuple[int, tuple[str, str]]] = {}

    def _window_keys(self, deployment_id: str, now: float | None = None) -> tuple[str, str]:
        bucket = int((self.store.clock() if now is None else now) // self.breaker.window)
        found = self._windows.get(deployment_id)
        if found is not None and found[0] == bucket:
            return found[1]
        keys = f"cbc:{deployment_id}:{bucket}", f"cbe:{deployment_id}:{bucket}"
        if len(self._windows) >= _MAX_WINDOWS:  # deployments come from the registry; still bounded
            self._windows.clear()
        self._windows[deployment_id] = (bucket, keys)
        return keys

    @staticmethod
    def keys(deployment_id: str) -> tuple[str, str]:
        """The keys of a deployment's breaker and consecutive failures, read before a call."""
        return _keys(deployment_id)

    @staticmethod
    def closed(known: Any) -> Admission | None:
        """The admission when the breaker record read before the call (`known`) shows it
        closed, without a store call; None when `admit` must decide."""
        if known is None or (known is not UNREAD and known[0] == "closed"):
            return ADMITTED
        return None

    async def admit(self, deployment_id: str, known: Any = UNREAD) -> Admission:
        """Closed: admitted. Open: refused until the cooldown ends, then one caller wins
        the half-open probe. Half-open: refused while the probe is out. `known`: the
        breaker record as read before the call (saves a round trip)."""
        key = "cb:" + deployment_id
        store = self.store
        raw = await store.get(key) if known is UNREAD else known
        if raw is None or raw[0] == "closed":
            return ADMITTED
        state, reason, _since, until = raw
        now = store.clock()
        if now < until:
            if state == "open":
                return Admission(f"cooling down until {until:.3f}: {reason}")
            return Admission("half-open: a probe call is in flight")
        probe = ("half_open", reason, now, now + self.breaker.probe_timeout)
        if await store.compare_and_set(key, raw, probe):
            return _PROBE
        return Admission("half-open: a probe call is in flight")

    def success(self, deployment_id: str, writes: Writes, *, reset: bool) -> None:
        """A success of a closed breaker: counted in its window (in place in a memory
        store, else into the call's writes); `reset`: the consecutive-failure count may be
        non-zero, and is zeroed in the call's writes."""
        now = self.store.clock()
        calls, _errors = self._window_keys(deployment_id, now)
        if self._memory is not None:
            self._memory.add(calls, 1, self.breaker.window, now)
        else:
            writes.add(calls, 1, self.breaker.window)
        if reset:
            writes.put("cbf:" + deployment_id, 0)

    async def succeeded(self, deployment_id: str, admission: Admission) -> None:
        store = self.store
        calls, _errors = self._window_keys(deployment_id)
        await store.incr({calls: 1}, ttl=self.breaker.window)
        await store.set("cbf:" + deployment_id, 0)
        if admission.probe:
            await self._close(deployment_id)

    async def failed(self, deployment_id: str, admission: Admission, kind: ErrorKind) -> bool:
        """Count a failed attempt; True if the breaker is (now) open."""
        if kind in _NOT_COUNTED:
            if admission.probe:
                await self.abandoned(deployment_id, admission)
            return False
        store, breaker = self.store, self.breaker
        calls_key, errors_key = self._window_keys(deployment_id)
        calls, errors = await store.incr({calls_key: 1, errors_key: 1}, ttl=breaker.window)
        (consecutive,) = await store.incr({"cbf:" + deployment_id: 1})
        if admission.probe:
            return await self._open(deployment_id, f"half-open probe failed ({kind.value})", force=True)
        if consecutive >= breaker.failures:
            return await self._open(
                deployment_id, f"{int(consecutive)} consecutive failures (last: {kind.value})"
            )
        if calls >= breaker.min_calls and errors >= breaker.failure_rate * calls:
            return await self._open(
                deployment_id,
                f"{int(errors)} of {int(calls)} calls failed within {breaker.window:g}s "
                f"(last: {kind.value})",
            )
        return False

    async def abandoned(self, deployment_id: str, admission: Admission) -> None:
        """The attempt ended without telling anything (cancelled): free the probe slot."""
        if not admission.probe:
            return
        key = "cb:" + deployment_id
        raw = await self.store.get(key)
        if raw is not None and raw[0] == "half_open":
            now = self.store.clock()
            await self.store.compare_and_set(key, raw, ("open", raw[1], raw[2], now))

    async def _open(self, deployment_id: str, reason: str, *, force: bool = False) -> bool:
        key = "cb:" + deployment_id
        store = self.store
        raw = await store.get(key)
        if raw is not None and raw[0] != "closed" and not force:
            return True  # already open or probing; keep its since
        now = store.clock()
        await store.compare_and_set(key, raw, ("open", reason, now, now + self.breaker.cooldown))
        return True

    async def _close(self, deployment_id: str) -> None:
        store = self.store
        calls, errors = self._window_keys(deployment_id)
        await store.set(calls, 0, ttl=self.breaker.window)
        await store.set(errors, 0, ttl=self.breaker.window)
        await store.set("cb:" + deployment_id, ("closed", None, store.clock(), None))

    async def states(self, deployment_ids: list[str]) -> list[CooldownState]:
        """The breaker of each deployment."""
        raw = await self.store.get_many(
            [f"{prefix}:{dep}" for dep in deployment_ids for prefix in ("cb", "cbf")]
        )
        found: list[CooldownState] = []
        for index, dep in enumerate(deployment_ids):
            record, failures = raw[2 * index], int(raw[2 * index + 1] or 0)
            if record is None:
                found.append(CooldownState(dep, "closed", consecutive_failures=failures))
            else:
                state, reason, since, until = record
                found.append(CooldownState(dep, state, reason, since, until, failures))
        return found
