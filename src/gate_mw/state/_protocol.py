"""The `StateStore` interface: what routing, limits and the cache need from shared state.

Every operation is what a shared store (Redis) can do atomically in one round trip. Values
are JSON-like (None, numbers, strings, and lists or dicts of them) so a shared store can
serialise them; tuples come back as lists from a shared store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

__all__ = ["CALLER_TAG", "Check", "Observation", "StateStore", "Verdict", "Writes"]

#: Keys holding this hash tag are per caller: a store bounds them apart from routing state.
CALLER_TAG = "{c:"


class Check(NamedTuple):
    """One limit a reservation must fit: take `amount` from the counter at `key`, whose
    capacity is `limit`.

    `period` > 0: a GCRA (leaky bucket) over `period` seconds; the key holds the
    theoretical arrival time. `period` == 0: a fixed counter whose key names its window;
    `ttl` is the time to the window's end.
    """

    key: str
    limit: float
    amount: float
    period: float
    ttl: float


class Verdict(NamedTuple):
    """The outcome of `reserve`: `used` per check (after the reservation when allowed, as
    found otherwise), `refused` the index of the first check that did not fit, and what
    the reads found."""

    allowed: bool
    used: tuple[float, ...]
    refused: int | None
    reads: list[Any]


class Observation(NamedTuple):
    """One sample for an exponentially weighted mean and variance (`seconds`), whose old
    weight `1 - alpha` also halves every `half_life` seconds; the figure lives `ttl`."""

    seconds: float
    alpha: float
    half_life: float
    ttl: float


class Writes:
    """Counter additions, values to store and samples to average, sent together after a
    call."""

    __slots__ = ("adds", "observations", "puts")

    def __init__(self) -> None:
        #: key -> (delta, ttl or None); the ttl is (re)applied on every write
        self.adds: dict[str, tuple[float, float | None]] = {}
        #: key -> (value, ttl or None)
        self.puts: dict[str, tuple[Any, float | None]] = {}
        #: key -> samples, applied in order (see `ewma`)
        self.observations: dict[str, list[Observation]] = {}

    def add(self, key: str, delta: float, ttl: float | None = None) -> None:
        old = self.adds.get(key)
        self.adds[key] = (delta + (old[0] if old else 0.0), ttl)

    def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.puts[key] = (value, ttl)

    def observe(self, key: str, observation: Observation) -> None:
        self.observations.setdefault(key, []).append(observation)

    def __bool__(self) -> bool:
        return bool(self.adds or self.puts or self.observations)


def ewma(old: Sequence[float] | None, sample: Observation, now: float) -> tuple[float, float, int, float]:
    """The figure (mean, variance, samples, updated) after `sample`; the Redis store's Lua
    does the same."""
    if old is None:
        return (sample.seconds, 0.0, 1, now)
    mean, var, samples, updated = old
    keep = (1.0 - sample.alpha) * 0.5 ** (max(0.0, now - updated) / sample.half_life)
    delta = sample.seconds - mean
    return (mean + (1.0 - keep) * delta, keep * (var + (1.0 - keep) * delta * delta), int(samples) + 1, now)


class StateStore(Protocol):
    """Async key-value state shared by every decision of a gateway (and, when the store
    is shared, of every replica).

    `clock` gives the wall time (seconds since the epoch) that TTLs, windows and the
    timestamps in cooldown states are measured in; tests inject a fake one. `degraded` is
    True while a shared store is unreachable and local state stands in for it.
    """

    clock: Callable[[], float]

    @property
    def degraded(self) -> bool: ...

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

    async def reserve(self, checks: Sequence[Check], reads: Sequence[str] = ()) -> Verdict:
        """Take every check's amount if all fit, none otherwise; read `reads` as well.
        One round trip."""

    async def write(self, writes: Writes) -> None:
        """Apply counter additions and stores, each atomic. One round trip."""

    async def flush(self) -> None:
        """Wait for writes still on their way (a memory store has none)."""

    async def aclose(self) -> None:
        """Finish pending writes and release connections (a memory store has none)."""
