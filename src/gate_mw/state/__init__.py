"""Where a gateway's shared state lives: the StateStore protocol, in memory or on Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_exports
from ._memory import MemoryStore
from ._protocol import CALLER_TAG, Check, Observation, StateStore, Verdict, Writes, ewma

if TYPE_CHECKING:
    from ._redis import RedisStore

__all__ = [
    "CALLER_TAG", "Check", "MemoryStore", "Observation", "RedisStore", "StateStore", "Verdict",
    "Writes", "ewma", "open_store",
]

# The Redis store and its Lua scripts load with the first redis:// URL or `RedisStore`.
if not TYPE_CHECKING:
    __getattr__ = lazy_exports(__name__, globals(), {"._redis": ("RedisStore",)})


def open_store(state: StateStore | str | None, **options: Any) -> StateStore:
    """A store from a URL (`redis://...`, `rediss://...`, `memory://`), a store, or None
    (in memory). `options` go to `RedisStore`."""
    if state is None or state == "memory://":
        return MemoryStore()
    if isinstance(state, str):
        if state.startswith(("redis://", "rediss://", "unix://")):
            from ._redis import RedisStore

            return RedisStore(state, **options)
        raise ValueError(f"unknown state store URL {state!r} (use redis://, rediss:// or memory://)")
    return state
