"""Where routing state lives: a small async key-value interface and its in-memory implementation.

The interface is what a shared store (Redis) can do atomically in one round trip: read
many keys, write with a TTL, compare-and-set, and add to counters. Values are JSON-like
(None, numbers, strings, and tuples/lists or dicts of them) so a shared store can
serialise them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["CALLER_PREFIX", "MemoryStore", "StateStore"]

#: Keys of per-caller state (spend, limits) begin with this; everything else is routing
#: state (breakers, latency, experiment counts), bounded by the deployments and arms.
CALLER_PREFIX = "caller:"


class StateStore(Protocol):
    """Async key-value state shared by every routing decision of a gateway.

    `clock` gives the wall time (seconds since the epoch) that TTLs, windows and the
    timestamps in cooldown states are measured in; tests inject a fake one.
    """

    clock: Callable[[], float]

    async def get(self, key: str) -> Any:
        """The value of `key`, or None when absent or expired."""

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        """The values of `keys`, in order, None for absent ones."""

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Store `value`, expiring after `ttl` seconds when given."""

    async def compare_and_set(
        self, key: str, expected: Any, value: Any, *, ttl: float | None = None
    ) -> bool:
        """Store `value` only if `key` holds `expected` (None: absent); True if stored."""

    async def incr(self, deltas: Mapping[str, float], *, ttl: float | None = None) -> list[float]:
        """Add each delta to its counter (absent counts as 0) and return the new values.

        `ttl` applies when a counter is created, so a counter keyed by a time bucket
        disappears with its bucket.
        """


class MemoryStore:
    """`StateStore` in this process's memory, bounded: at most `max_keys` routing keys and,
    apart from them, at most `max_caller_keys` per-caller keys (those beginning with
    `CALLER_PREFIX`). The least recently used keys of each kind are dropped first; expired
    ones on access. So traffic from many callers can never push breaker, latency or
    experiment state out: an open breaker stays open however many callers come by.

    Every method completes without suspending, so a decision and the counting that
    follows it are never interleaved with another request's.
    """

    __slots__ = ("_callers", "_data", "clock", "max_caller_keys", "max_keys")

    def __init__(
        self, *, max_keys: int = 100_000, max_caller_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        if max_caller_keys < 1:
            raise ValueError("max_caller_keys must be at least 1")
        self.max_keys = max_keys
        self.max_caller_keys = max_caller_keys
        self.clock = clock
        # key -> (value, expiry or None), least recently used first
        self._data: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()
        self._callers: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data) + len(self._callers)

    def _table(self, key: str) -> OrderedDict[str, tuple[Any, float | None]]:
        return self._callers if key.startswith(CALLER_PREFIX) else self._data

    def _read(self, key: str, now: float) -> Any:
        data = self._table(key)
        item = data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            del data[key]
            return None
        data.move_to_end(key)
        return item[0]

    def _write(self, key: str, value: Any, expires: float | None) -> None:
        if key.startswith(CALLER_PREFIX):
            data, limit = self._callers, self.max_caller_keys
        else:
            data, limit = self._data, self.max_keys
        data[key] = (value, expires)
        data.move_to_end(key)
        if len(data) > limit:
            data.popitem(last=False)

    async def get(self, key: str) -> Any:
        return self._read(key, self.clock())

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        # _read inlined: this is on every routing decision's path
        now = self.clock()
        found: list[Any] = []
        for key in keys:
            data = self._callers if key.startswith(CALLER_PREFIX) else self._data
            item = data.get(key)
            if item is None:
                found.append(None)
            elif item[1] is not None and item[1] <= now:
                del data[key]
                found.append(None)
            else:
                data.move_to_end(key)
                found.append(item[0])
        return found

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        self._write(key, value, None if ttl is None else self.clock() + ttl)

    async def compare_and_set(
        self, key: str, expected: Any, value: Any, *, ttl: float | None = None
    ) -> bool:
        now = self.clock()
        if self._read(key, now) != expected:
            return False
        self._write(key, value, None if ttl is None else now + ttl)
        return True

    async def incr(self, deltas: Mapping[str, float], *, ttl: float | None = None) -> list[float]:
        now = self.clock()
        results: list[float] = []
        for key, delta in deltas.items():
            item = self._table(key).get(key)
            if item is None or (item[1] is not None and item[1] <= now):
                value, expires = delta, (None if ttl is None else now + ttl)
            else:
                value, expires = item[0] + delta, item[1]
            self._write(key, value, expires)
            results.append(value)
        return results
