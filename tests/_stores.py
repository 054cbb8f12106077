"""State stores for tests: the memory store and the real Redis, each with its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from gate_mw.state import MemoryStore, RedisStore, StateStore

__all__ = ["REDIS_URL", "make_store", "store"]

REDIS_URL = "redis://127.0.0.1:6379/0"


def make_store(kind: str, clock: Callable[[], float] | None = None, **options: object) -> StateStore:
    """A fresh store; a Redis one gets a unique prefix, since teammates share that Redis."""
    extra = {} if clock is None else {"clock": clock}
    if kind == "memory":
        return MemoryStore(**extra)  # type: ignore[arg-type]
    options.setdefault("prefix", f"test:{uuid.uuid4().hex[:12]}:")
    options.setdefault("timeout", 2.0)  # a contended machine; fault tests set their own
    made = RedisStore(REDIS_URL, **extra, **options)  # type: ignore[arg-type]
    # "redis-cluster-path": the Cluster code (a script per hash tag, pipelined, refusals
    # given back) run against the single Redis, which accepts it too.
    made.cluster = kind == "redis-cluster-path"
    return made


@pytest.fixture(params=["memory", "redis", "redis-cluster-path"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    """One suite, two stores."""
    made = make_store(request.param)
    yield made
    await made.aclose()
