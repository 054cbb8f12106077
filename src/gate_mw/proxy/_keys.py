"""Virtual keys: Bearer keys that map to a caller, with the models it may name and its
own rate limits and budget (`Limit` and `Budget`, counted by the gateway's one guard).

A key is shown once, when it is created; only its SHA-256 is kept, so a leaked store leaks
no key. With Redis the records are shared by every replica and never expire; with the
in-memory store they live in a registry of their own, bounded by `max_keys` and never
evicted by traffic (the store's per-caller LRU only holds counters).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..limits import Budget, Limit
from ..state import MemoryStore

if TYPE_CHECKING:
    from ..routing import StateStore

__all__ = ["KEY_PREFIX", "KeyStore", "VirtualKey", "hash_key", "key_rules"]

#: What every key made by the admin API starts with, so a leaked one is easy to search for.
KEY_PREFIX = "sk-gate-"
_ID_LENGTH = 12
_MAX_CAS_TRIES = 32


#: Key records never expire in a shared store: only revocation ends a key.
_FOREVER = math.inf


def key_rules(limits: Any, budget: Any) -> tuple[tuple[Limit, ...], Budget | None]:
    """A key's own limits and budget from their JSON/YAML form (`[{"rpm": 10}]`,
    `{"limit_usd": 5, "window": "month"}`); a ValueError naming the field when wrong.
    Both count per key's caller, whatever `per` says."""
    if limits is None:
        limits = ()
    if not isinstance(limits, list | tuple):
        raise ValueError("limits: expected a list of limits such as {\"rpm\": 60}")
    rules = tuple(_rule(Limit, item, f"limits[{index}]") for index, item in enumerate(limits))
    return rules, None if budget is None else _rule(Budget, budget, "budget")


def _rule(kind: Any, value: Any, where: str) -> Any:
    if isinstance(value, Limit | Budget):
        value = asdict(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping of {kind.__name__} fields")
    per = value.get("per", "caller")
    if per != "caller":
        raise ValueError(f"{where}: a key's own limits count per caller, got per={per!r}")
    try:
        rule = kind(**{**value, "per": "caller"})
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if problem := rule.problem():
        raise ValueError(f"{where}: {problem}")
    return rule


def hash_key(secret: str) -> str:
    """The SHA-256 of a key, in hex: what is stored and compared."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """What a key stands for. `id` is public (derived from the hash); the key is not kept."""

    id: str
    name: str
    caller: str
    models: tuple[str, ...] | None = None
    created: float = 0.0
    revoked: bool = False
    origin: str = "api"
    metadata: Mapping[str, str] = field(default_factory=dict)
    limits: tuple[Limit, ...] = ()
    budget: Budget | None = None

    @property
    def own_rules(self) -> bool:
        """Whether the key carries limits or a budget of its own."""
        return bool(self.limits) or self.budget is not None

    def allows(self, model: str) -> bool:
        """Whether this key may name `model` (an alias or a named policy)."""
        return self.models is None or model in self.models

    def to_dict(self) -> dict[str, Any]:
        """The public view: never the key nor its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "caller": self.caller,
            "models": None if self.models is None else list(self.models),
            "created": int(self.created),
            "revoked": self.revoked,
            "origin": self.origin,
            "metadata": dict(self.metadata),
            "limits": [_plain(rule) for rule in self.limits],
            "budget": None if self.budget is None else _plain(self.budget),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> VirtualKey:
        models = record.get("models")
        limits, budget = key_rules(record.get("limits"), record.get("budget"))
        return cls(
            id=str(record["id"]),
            name=str(record["name"]),
            caller=str(record["caller"]),
            models=None if models is None else tuple(str(m) for m in models),
            created=float(record.get("created") or 0.0),
            revoked=bool(record.get("revoked")),
            origin=str(record.get("origin") or "api"),
            metadata=dict(record.get("metadata") or {}),
            limits=limits,
            budget=budget,
        )


def _plain(rule: Limit | Budget) -> dict[str, Any]:
    """A limit or budget as JSON, without its unset or default fields."""
    return {name: value for name, value in asdict(rule).items() if value is not None and name != "per"}


class KeyStore:
    """Keys listed in config (held in memory) and keys made by the admin API: in `store`
    when it is shared (Redis, without expiry), else in a registry of this process.

    At most `max_keys` API keys exist at once (revoked ones included), so the index and
    the registry stay bounded; past that, creation is refused, nothing is evicted.
    """

    def __init__(
        self, store: StateStore, *, namespace: str = "gate:proxy:keys:", max_keys: int = 10_000
    ) -> None:
        self._store = store
        self._namespace = namespace
        self._max_keys = max_keys
        self._static: dict[str, VirtualKey] = {}  # hash -> key, from config
        # The in-memory store evicts least recently used keys under load: key records
        # must not be among them, so they stay here instead.
        self._local: dict[str, Any] | None = {} if isinstance(store, MemoryStore) else None

    async def _get(self, key: str) -> Any:
        if self._local is not None:
            return self._local.get(key)
        return await self._store.get(key)

    async def _set(self, key: str, value: Any) -> None:
        if self._local is not None:
            self._local[key] = value
        else:
            await self._store.set(key, value, ttl=_FOREVER)

    async def _swap(self, key: str, expected: Any, value: Any) -> bool:
        if self._local is None:
            return await self._store.compare_and_set(key, expected, value, ttl=_FOREVER)
        if self._local.get(key) != expected:
            return False
        self._local[key] = value
        return True

    def _record_key(self, digest: str) -> str:
        return f"{self._namespace}k:{digest}"

    @property
    def _index_key(self) -> str:
        return f"{self._namespace}index"

    def add_static(
        self,
        name: str,
        digest: str,
        *,
        caller: str | None = None,
        models: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        limits: Sequence[Limit] = (),
        budget: Budget | None = None,
    ) -> VirtualKey:
        """Register a key listed in config, by the SHA-256 of its secret."""
        key = VirtualKey(
            id=f"key_{digest[:_ID_LENGTH]}",
            name=name,
            caller=caller or name,
            models=None if models is None else tuple(models),
            created=time.time(),
            origin="config",
            metadata=dict(metadata or {}),
            limits=tuple(limits),
            budget=budget,
        )
        self._static[digest] = key
        return key

    @property
    def configured(self) -> bool:
        """Whether any key is listed in config."""
        return bool(self._static)

    async def create(
        self,
        name: str,
        *,
        caller: str | None = None,
        models: Iterable[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        limits: Sequence[Limit] = (),
        budget: Budget | None = None,
    ) -> tuple[str, VirtualKey]:
        """A new key and what it stands for; the key itself is returned only here."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = hash_key(secret)
        key = VirtualKey(
            id=f"key_{digest[:_ID_LENGTH]}",
            name=name,
            caller=caller or f"key:{name}",
            models=None if models is None else tuple(models),
            created=time.time(),
            metadata=dict(metadata or {}),
            limits=tuple(limits),
            budget=budget,
        )
        if not await self._update_index(lambda index: {**index, key.id: digest}):
            raise OverflowError(f"at most {self._max_keys} keys may exist; revoke or delete some first")
        await self._set(self._record_key(digest), {**key.to_dict(), "hash": digest})
        return secret, key

    async def resolve(self, secret: str) -> VirtualKey | None:
        """The live key `secret` stands for, or None (unknown or revoked)."""
        digest = hash_key(secret)
        key = self._static.get(digest)
        if key is None:
            record = await self._get(self._record_key(digest))
            # The lookup is by hash already; the constant-time check keeps it so if the
            # store ever answers for a near key.
            if not isinstance(record, Mapping) or not hmac.compare_digest(str(record.get("hash")), digest):
                return None
            key = VirtualKey.from_record(record)
        return None if key.revoked else key

    async def revoke(self, key_id: str) -> VirtualKey | None:
        """Revoke the API key with this id; it answers 401 from now on. None if unknown."""
        index = await self._get(self._index_key) or {}
        digest = index.get(key_id) if isinstance(index, Mapping) else None
        if digest is None:
            return None
        for _ in range(_MAX_CAS_TRIES):
            record = await self._get(self._record_key(digest))
            if not isinstance(record, Mapping):
                return None
            revoked = {**record, "revoked": True}
            if await self._swap(self._record_key(digest), record, revoked):
                return VirtualKey.from_record(revoked)
        raise RuntimeError("the key record kept changing; try again")

    async def list(self) -> list[VirtualKey]:
        """Every key, config ones first; revoked API keys included."""
        keys = list(self._static.values())
        index = await self._get(self._index_key) or {}
        for digest in index.values() if isinstance(index, Mapping) else ():
            record = await self._get(self._record_key(digest))
            if isinstance(record, Mapping):
                keys.append(VirtualKey.from_record(record))
        return keys

    async def _update_index(self, change: Any) -> bool:
        for _ in range(_MAX_CAS_TRIES):
            current = await self._get(self._index_key)
            index = dict(current) if isinstance(current, Mapping) else {}
            updated = change(index)
            if len(updated) > self._max_keys:
                return False
            if await self._swap(self._index_key, current, updated):
                return True
        raise RuntimeError("the key index kept changing; try again")
