"""Where a gateway's shared state lives: the StateStore protocol, in memory or on Redis."""

from __future__ import annotations

from typing import Any

from ._memory import MemoryStore
from ._protocol import CALLER_TAG, Check, Observation, StateStore, Verdict, Writes, ewma
from ._redis import RedisStore

__all__ = [
    "CALLER_TAG", "Check", "MemoryStore", "Observation", "RedisStore", "StateStore", "Verdict",
    "Writes", "ewma", "open_store",
]


def open_store(state: StateStore | str | None, **options: Any) -> StateStore:
    """A store from a URL (`redis://...`, `rediss://...`, `memory://`), a store, or None
    (in memory). `options` go to `RedisStore`."""
    if state is None or state == "memory://":
        return MemoryStore()
    if isinstance(state, str):
        if state.startswith(("redis://", "rediss://", "unix://")):
            return RedisStore(state, **options)
        raise ValueError(f"unknown state store URL {state!r} (use redis://, rediss:// or memory://)")
    return state
