"""Where insights live in the state store: time-bucketed counters per group, per-arm counters,
and the bounded list of groups seen. One place owns the key names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..state import MemoryStore
from ._stats import DURATION_BUCKETS, bucket_of

if TYPE_CHECKING:
    from ..state import StateStore, Writes

__all__ = ["ARM_FIELDS", "FIELDS", "GRANULARITIES", "OTHER", "Counters"]

#: Counted per group and time bucket; `lat{i}` counts calls whose latency fell in bucket i.
FIELDS: tuple[str, ...] = (
    "calls", "errors", "cost", "in", "out", *(f"lat{i}" for i in range(len(DURATION_BUCKETS) + 1)),
)
#: Counted per experiment arm, for its lifetime.
ARM_FIELDS: tuple[str, ...] = (
    "calls", "errors", "cost", "cost2", "lat", "lat2",
    *(f"lat{i}" for i in range(len(DURATION_BUCKETS) + 1)),
)
#: Bucket width and how long its counters live, in seconds: 5-minute buckets for the last
#: hours, hourly ones for days.
GRANULARITIES: tuple[tuple[float, float], ...] = ((300.0, 3 * 3600.0), (3600.0, 8 * 86400.0))
OTHER = "(other)"
# Per granularity: the key prefix, bucket width and ttl; and each latency bucket's field.
_GRANULARITIES = tuple((f"ins:{width:g}:", width, ttl) for width, ttl in GRANULARITIES)
_LATENCY = tuple(f"lat{i}" for i in range(len(DURATION_BUCKETS) + 1))
# Each width is a multiple of the first, so a group's keys change only when the first
# granularity's bucket does: they are built then, not per call.
_FIRST_WIDTH = GRANULARITIES[0][0]
assert all(width % _FIRST_WIDTH == 0 for width, _ in GRANULARITIES)
_RowKeys = tuple[tuple[str, float], ...]  # per granularity: the row's key, its ttl
_FieldKeys = tuple[tuple[float, dict[str, str]], ...]  # per granularity: ttl, field -> key
_GROUPS_KEY = "ins:groups"
# In a row (see `Counters`), each field's index.
_SIZE = len(FIELDS)
_CALLS, _ERRORS, _COST, _IN, _OUT, _LAT0 = range(6)
assert FIELDS[:6] == ("calls", "errors", "cost", "in", "out", "lat0")


class Counters:
    """Adds a finished call to the counters and reads them back.

    A shared store keeps one counter per group, bucket and field (`ins:300:{bucket}:{gid}:calls`),
    added to in the call's one write. A `MemoryStore` (the gateway's own for insights) keeps
    a group's fields of one bucket as one row instead (`ins:300:{bucket}:{gid}`, FIELDS in
    order), added to in place: one update per granularity rather than one per field, and a
    bucket is one key of its bound. Only a `MemoryStore` as it is: a subclass may watch or
    change its operations."""

    __slots__ = ("_buckets", "_ids", "_rows", "max_groups", "store")

    def __init__(self, store: StateStore, *, max_groups: int = 500) -> None:
        if max_groups < 1:
            raise ValueError("max_groups must be at least 1")
        self.store = store
        self.max_groups = max_groups
        self._ids: dict[tuple[str, str, str], int] = {}  # groups known here -> id
        # group id -> (first granularity's bucket, its keys now (see `_keys_of`))
        self._buckets: dict[int, tuple[int, _RowKeys, _FieldKeys]] = {}
        self._rows = MemoryStore.in_place(store)

    @property
    def rows(self) -> bool:
        """Whether calls are counted in rows, in place (no write to send)."""
        return self._rows is not None

    async def groups(self) -> list[tuple[str, str, str]]:
        """Every (caller, route, model) recorded by any replica, in id order."""
        raw = await self.store.get(_GROUPS_KEY)
        stored = [_group(value) for value in raw or ()]
        if len(stored) < len(self._ids):
            # The list was dropped (a bounded store evicts what is not read for long): put
            # back what this process knows, so that its counters stay readable.
            known = sorted(self._ids, key=self._ids.__getitem__)
            if [self._ids[g] for g in known] == list(range(len(known))):
                await self.store.compare_and_set(_GROUPS_KEY, raw, [list(g) for g in known])
                return known
        return stored

    async def register(self, group: tuple[str, str, str]) -> int:
        """The id of `group`, registered in the store on first sight; past `max_groups`,
        the id of the overflow group ("(other)", "(other)", "(other)")."""
        found = self._ids.get(group)
        if found is not None:
            return found
        overflow = (OTHER, OTHER, OTHER)
        for _ in range(5):  # lost races retry against the new list
            current = await self.store.get(_GROUPS_KEY)
            known = [_group(value) for value in current or ()]
            for index, other in enumerate(known):
                self._ids.setdefault(other, index)
            if group in self._ids:
                return self._ids[group]
            wanted = group if len(known) < self.max_groups - 1 else overflow
            if wanted in self._ids:
                return self._ids[wanted]
            # Lists, as a shared store's JSON gives them back, so compare-and-set matches.
            if await self.store.compare_and_set(_GROUPS_KEY, current, [*map(list, known), list(wanted)]):
                self._ids[wanted] = len(known)
                return len(known)
        return self._ids.get(overflow, 0)

    def count(
        self, group: tuple[str, str, str], ok: bool, cost: float, input_tokens: int,
        output_tokens: int, latency_s: float, writes: Writes | None, *, gid: int | None = None,
    ) -> bool:
        """Count one call of `group`: in its rows, or into `writes`. False, counting
        nothing, if the counters are a store's keys and `writes` is None, or if this process
        does not know the group yet: `register` it and pass the id it gives as `gid` (an
        overflowing group counts as "(other)")."""
        if gid is None:
            gid = self._ids.get(group)
            if gid is None:
                return False
        now = self.store.clock()
        first = int(now // _FIRST_WIDTH)
        found = self._buckets.get(gid)
        if found is None or found[0] != first:
            rows, fields = _keys_of(gid, now)
            found = self._buckets[gid] = (first, rows, fields)
        store = self._rows
        if store is not None:
            latency = _LAT0 + bucket_of(latency_s)
            for key, ttl in found[1]:
                row = store.row(key, _SIZE, ttl, now)
                row[_CALLS] += 1.0
                if not ok:
                    row[_ERRORS] += 1.0
                row[_COST] += cost
                row[_IN] += input_tokens
                row[_OUT] += output_tokens
                row[latency] += 1.0
            return True
        if writes is None:
            return False
        add = writes.add
        for ttl, keys in found[2]:
            add(keys["calls"], 1, ttl)
            if not ok:
                add(keys["errors"], 1, ttl)
            if cost:
                add(keys["cost"], cost, ttl)
            if input_tokens:
                add(keys["in"], input_tokens, ttl)
            if output_tokens:
                add(keys["out"], output_tokens, ttl)
            add(keys[_LATENCY[bucket_of(latency_s)]], 1, ttl)
        return True

    async def read(
        self, gids: Sequence[int], width: float, buckets: Sequence[int]
    ) -> dict[tuple[int, int], dict[str, float]]:
        """The counters of each (group id, bucket) that saw calls: calls are read first, so
        the other fields are read only where there is something to read."""
        pairs = [(gid, b) for gid in gids for b in buckets]
        if self._rows is not None:
            rows = await self.store.get_many([f"ins:{width:g}:{b}:{gid}" for gid, b in pairs])
            return {
                pair: dict(zip(FIELDS, row, strict=True))
                for pair, row in zip(pairs, rows, strict=True) if row is not None and row[_CALLS]
            }
        calls = await self.store.get_many([f"ins:{width:g}:{b}:{gid}:calls" for gid, b in pairs])
        active = [pair for pair, count in zip(pairs, calls, strict=True) if count]
        keys = [f"ins:{width:g}:{b}:{gid}:{name}" for gid, b in active for name in FIELDS]
        raw = await self.store.get_many(keys)
        found: dict[tuple[int, int], dict[str, float]] = {}
        for index, pair in enumerate(active):
            values = raw[index * len(FIELDS):(index + 1) * len(FIELDS)]
            found[pair] = {name: float(v or 0) for name, v in zip(FIELDS, values, strict=True)}
        return found

    async def add_arm(
        self, experiment: str, arm: str, *, ok: bool, cost: float, latency_s: float,
        writes: Writes | None = None,
    ) -> None:
        values: dict[str, float] = {"calls": 1}
        if not ok:
            values["errors"] = 1
        else:  # cost and latency describe answered calls
            values.update({
                "cost": cost, "cost2": cost * cost, "lat": latency_s, "lat2": latency_s * latency_s,
                f"lat{bucket_of(latency_s)}": 1,
            })
        if writes is not None:
            for k, v in values.items():
                if v:
                    writes.add(f"ins:xp:{experiment}:{arm}:{k}", v)
            return
        await self.store.incr({f"ins:xp:{experiment}:{arm}:{k}": v for k, v in values.items() if v})

    async def arm(self, experiment: str, arm: str) -> dict[str, float]:
        raw = await self.store.get_many([f"ins:xp:{experiment}:{arm}:{k}" for k in ARM_FIELDS])
        return {name: float(value or 0) for name, value in zip(ARM_FIELDS, raw, strict=True)}


def _keys_of(gid: int, now: float) -> tuple[_RowKeys, _FieldKeys]:
    """Group `gid`'s keys in the buckets holding `now`, per granularity: its row and ttl
    (in a `MemoryStore`), and its ttl and each field's key (in any other store)."""
    rows = tuple((f"{label}{int(now // width)}:{gid}", ttl) for label, width, ttl in _GRANULARITIES)
    return rows, tuple((ttl, {name: f"{row}:{name}" for name in FIELDS}) for row, ttl in rows)


def _group(value: Any) -> tuple[str, str, str]:
    caller, route, model = value
    return str(caller), str(route), str(model)


def latency_counts(values: dict[str, Any]) -> list[float]:
    return [float(values.get(f"lat{i}", 0)) for i in range(len(DURATION_BUCKETS) + 1)]
