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

__all__ = ["MemoryStore", "StateStore"]


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
    """`StateStore` in this process's memory, bounded to `max_keys` (least recently used
    keys are dropped first; expired ones on access).

    Every method completes without suspending, so a decision and the counting that
    follows it are never interleaved with another request's.
    """

    __slots__ = ("_data", "clock", "max_keys")

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.clock = clock
        # key -> (value, expiry or None), least recently used first
        self._data: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def _read(self, key: str, now: float) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[0]

    def _write(self, key: str, value: Any, expires: float | None) -> None:
        data = self._data
        data[key] = (value, expires)
        data.move_to_end(key)
        if len(data) > self.max_keys:
            data.popitem(last=False)

    async def get(self, key: str) -> Any:
        return self._read(key, self.clock())

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        # _read inlined: this is on every routing decision's path
        now = self.clock()
        data = self._data
        found: list[Any] = []
        for key in keys:
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
            item = self._data.get(key)
            if item is None or (item[1] is not None and item[1] <= now):
                value, expires = delta, (None if ttl is None else now + ttl)
            else:
                value, expires = item[0] + delta, item[1]
            self._write(key, value, expires)
            results.append(value)
        return results
