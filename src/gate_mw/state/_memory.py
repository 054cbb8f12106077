"""`MemoryStore`: the state of one process, bounded, with routing state kept apart from
per-caller keys so that many callers can never evict a breaker or an experiment count."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._protocol import CALLER_TAG, Check, Verdict, Writes, ewma

__all__ = ["MemoryStore", "take"]

_Entry = tuple[Any, float | None]  # value, expiry or None


def take(check: Check, current: float, now: float) -> tuple[bool, float, float]:
    """Whether `check` fits given the counter's `current` value, the use it shows (after
    taking when it fits) and the value to store. The Redis store's Lua does the same."""
    limit, amount, period = check.limit, check.amount, check.period
    if period > 0:  # GCRA: the value is the theoretical arrival time
        base = max(current, now)
        new = base + amount * period / limit
        # Times are epoch seconds (a float's step there is ~2e-7 s): allow a microsecond.
        fits = new - now <= period * (1 + 1e-9) + 1e-6 and (amount > 0 or base - now < period)
        return fits, ((new if fits else base) - now) * limit / period, new
    new = current + amount
    fits = new <= limit * (1 + 1e-9) and (amount > 0 or current < limit)
    return fits, new if fits else current, new


class _Space:
    """One bounded LRU namespace of keys."""

    __slots__ = ("data", "max_keys")

    def __init__(self, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.data: OrderedDict[str, _Entry] = OrderedDict()

    def read(self, key: str, now: float) -> Any:
        data = self.data
        item = data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            del data[key]
            return None
        data.move_to_end(key)
        return item[0]

    def write(self, key: str, value: Any, expires: float | None) -> None:
        data = self.data
        data[key] = (value, expires)
        data.move_to_end(key)
        if len(data) > self.max_keys:
            data.popitem(last=False)


class MemoryStore:
    """`StateStore` in this process's memory.

    Routing state (breakers, latency, experiment counts) is bounded by `max_keys`; keys
    of a caller (those with the `{c:...}` hash tag) by `max_caller_keys`, apart, least
    recently used dropped first and expired ones on access. Every method completes
    without suspending, so each is atomic with respect to other requests.
    """

    __slots__ = ("_callers", "_routing", "clock")

    def __init__(
        self, *, max_keys: int = 100_000, max_caller_keys: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._routing = _Space(max_keys)
        self._callers = _Space(max_caller_keys)
        self.clock = clock

    @property
    def degraded(self) -> bool:
        return False

    @property
    def max_keys(self) -> int:
        return self._routing.max_keys

    def __len__(self) -> int:
        return len(self._routing.data) + len(self._callers.data)

    @property
    def counts(self) -> tuple[int, int]:
        """Keys held now: (routing state, per-caller)."""
        return len(self._routing.data), len(self._callers.data)

    def _space(self, key: str) -> _Space:
        return self._callers if CALLER_TAG in key else self._routing

    async def get(self, key: str) -> Any:
        return self._space(key).read(key, self.clock())

    async def get_many(self, keys: Sequence[str]) -> list[Any]:
        now = self.clock()
        routing, callers = self._routing, self._callers
        return [(callers if CALLER_TAG in key else routing).read(key, now) for key in keys]

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        self._space(key).write(key, value, None if ttl is None else self.clock() + ttl)

    async def compare_and_set(
        self, key: str, expected: Any, value: Any, *, ttl: float | None = None
    ) -> bool:
        now = self.clock()
        space = self._space(key)
        if space.read(key, now) != expected:
            return False
        space.write(key, value, None if ttl is None else now + ttl)
        return True

    async def incr(self, deltas: Mapping[str, float], *, ttl: float | None = None) -> list[float]:
        now = self.clock()
        routing, callers = self._routing, self._callers
        found: list[float] = []
        for key, delta in deltas.items():
            space = callers if CALLER_TAG in key else routing
            data = space.data
            item = data.pop(key, None)  # and set again below: most recently used
            if item is None or (item[1] is not None and item[1] <= now):
                value, expires = delta, (None if ttl is None else now + ttl)
            else:
                value, expires = item[0] + delta, item[1]
            data[key] = (value, expires)
            if item is None and len(data) > space.max_keys:
                data.popitem(last=False)
            found.append(float(value))
        return found

    def row(self, key: str, size: int, ttl: float, now: float) -> list[float]:
        """The row of `size` counters at `key`, for the caller to add to in place: zeros
        when absent or expired; made most recently used, expiring `ttl` after `now`.
        `get` reads it back (the row itself: copy what must be kept). Never suspends, so
        an update is atomic with respect to other requests."""
        space = self._callers if CALLER_TAG in key else self._routing
        data = space.data
        item = data.pop(key, None)  # and set again below: most recently used
        if item is not None and (item[1] is None or item[1] > now):
            found: list[float] = item[0]
        else:
            found = [0.0] * size
        data[key] = (found, now + ttl)
        if item is None and len(data) > space.max_keys:
            data.popitem(last=False)
        return found

    @staticmethod
    def in_place(store: object) -> MemoryStore | None:
        """`store` if it is a `MemoryStore` as it is, whose counters a caller may update in
        place (`row`, `add`) rather than through a write; None for any other store, a
        subclass included (it may watch or change its operations)."""
        return store if type(store) is MemoryStore else None

    def add(self, key: str, delta: float, ttl: float | None, now: float) -> None:
        """`write`'s counter addition, done now: `delta` added to the counter at `key`
        (absent or expired counts as 0), most recently used, its expiry set `ttl` after
        `now` (None: kept). Never suspends: a caller on this store as it is counts in place
        without building a write."""
        space = self._callers if CALLER_TAG in key else self._routing
        data = space.data
        item = data.pop(key, None)  # and set again below: most recently used
        if item is None or (item[1] is not None and item[1] <= now):
            data[key] = (delta, None if ttl is None else now + ttl)
            if len(data) > space.max_keys:
                data.popitem(last=False)
        else:
            data[key] = (item[0] + delta, item[1] if ttl is None else now + ttl)

    async def reserve(self, checks: Sequence[Check], reads: Sequence[str] = ()) -> Verdict:
        now = self.clock()
        found = [float(self._space(c.key).read(c.key, now) or 0.0) for c in checks]
        used: list[float] = []
        updates: list[float] = []
        refused: int | None = None
        for index, (check, current) in enumerate(zip(checks, found, strict=True)):
            fits, use, new = take(check, current, now)
            used.append(use)
            updates.append(new)
            if not fits and refused is None:
                refused = index
        if refused is None:
            for check, new in zip(checks, updates, strict=True):
                ttl = check.period if check.period > 0 else check.ttl
                self._space(check.key).write(check.key, new, now + ttl)
        return Verdict(refused is None, tuple(used), refused, await self.get_many(reads))

    async def write(self, writes: Writes) -> None:
        now = self.clock()
        add = self.add
        for key, (delta, ttl) in writes.adds.items():
            add(key, delta, ttl, now)
        if not (writes.puts or writes.observations):  # most calls: counters only
            return
        for key, (value, ttl) in writes.puts.items():
            self._space(key).write(key, value, None if ttl is None else now + ttl)
        for key, samples in writes.observations.items():
            space = self._space(key)
            figure = space.read(key, now)
            for sample in samples:
                figure = ewma(figure, sample, now)
            space.write(key, figure, now + samples[-1].ttl)

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
