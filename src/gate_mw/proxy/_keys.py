"""Virtual keys: Bearer keys that map to a caller, with the models it may name.

A key is shown once, when it is created; only its SHA-256 is kept, in the gateway's state
store (shared by every replica once that store is Redis), so a leaked store leaks no key.
The store is used through `get`, `set` and `compare_and_set` only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..routing import StateStore

__all__ = ["KEY_PREFIX", "KeyStore", "VirtualKey", "hash_key"]

#: What every key made by the admin API starts with, so a leaked one is easy to search for.
KEY_PREFIX = "sk-gate-"
_ID_LENGTH = 12
_MAX_CAS_TRIES = 32


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
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> VirtualKey:
        models = record.get("models")
        return cls(
            id=str(record["id"]),
            name=str(record["name"]),
            caller=str(record["caller"]),
            models=None if models is None else tuple(str(m) for m in models),
            created=float(record.get("created") or 0.0),
            revoked=bool(record.get("revoked")),
            origin=str(record.get("origin") or "api"),
            metadata=dict(record.get("metadata") or {}),
        )


class KeyStore:
    """Keys listed in config (held in memory) and keys made by the admin API (in `store`).

    At most `max_keys` API keys exist at once (revoked ones included), so the index kept
    in the store stays bounded.
    """

    def __init__(
        self, store: StateStore, *, namespace: str = "gate:proxy:keys:", max_keys: int = 10_000
    ) -> None:
        self._store = store
        self._namespace = namespace
        self._max_keys = max_keys
        self._static: dict[str, VirtualKey] = {}  # hash -> key, from config

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
        )
        if not await self._update_index(lambda index: {**index, key.id: digest}):
            raise OverflowError(f"at most {self._max_keys} keys may exist; revoke or delete some first")
        await self._store.set(self._record_key(digest), {**key.to_dict(), "hash": digest})
        return secret, key

    async def resolve(self, secret: str) -> VirtualKey | None:
        """The live key `secret` stands for, or None (unknown or revoked)."""
        digest = hash_key(secret)
        key = self._static.get(digest)
        if key is None:
            record = await self._store.get(self._record_key(digest))
            # The lookup is by hash already; the constant-time check keeps it so if the
            # store ever answers for a near key.
            if not isinstance(record, Mapping) or not hmac.compare_digest(str(record.get("hash")), digest):
                return None
            key = VirtualKey.from_record(record)
        return None if key.revoked else key

    async def revoke(self, key_id: str) -> VirtualKey | None:
        """Revoke the API key with this id; it answers 401 from now on. None if unknown."""
        index = await self._store.get(self._index_key) or {}
        digest = index.get(key_id) if isinstance(index, Mapping) else None
        if digest is None:
            return None
        for _ in range(_MAX_CAS_TRIES):
            record = await self._store.get(self._record_key(digest))
            if not isinstance(record, Mapping):
                return None
            revoked = {**record, "revoked": True}
            if await self._store.compare_and_set(self._record_key(digest), record, revoked):
                return VirtualKey.from_record(revoked)
        raise RuntimeError("the key record kept changing; try again")

    async def list(self) -> list[VirtualKey]:
        """Every key, config ones first; revoked API keys included."""
        keys = list(self._static.values())
        index = await self._store.get(self._index_key) or {}
        for digest in index.values() if isinstance(index, Mapping) else ():
            record = await self._store.get(self._record_key(digest))
            if isinstance(record, Mapping):
                keys.append(VirtualKey.from_record(record))
        return keys

    async def _update_index(self, change: Any) -> bool:
        for _ in range(_MAX_CAS_TRIES):
            current = await self._store.get(self._index_key)
            index = dict(current) if isinstance(current, Mapping) else {}
            updated = change(index)
            if len(updated) > self._max_keys:
                return False
            if await self._store.compare_and_set(self._index_key, current, updated):
                return True
        raise RuntimeError("the key index kept changing; try again")
