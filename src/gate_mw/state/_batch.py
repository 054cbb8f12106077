"""How `RedisStore` sends the commands of one operation: one pipeline on a single Redis, or
concurrent per-node calls on a Cluster (whose pipelines cannot carry scripts)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ._protocol import Check

__all__ = ["Batch", "hash_tag", "open_cluster", "reserve_argv"]


class Batch:
    """Commands sent together; either way one round trip of waiting."""

    __slots__ = ("calls", "client", "cluster")

    def __init__(self, client: Any, cluster: bool) -> None:
        self.client, self.cluster = client, cluster
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def evalsha(self, *args: Any) -> None:
        self.calls.append(("evalsha", args, {}))

    def get(self, key: str) -> None:
        self.calls.append(("get", (key,), {}))

    def set(self, key: str, value: str, *, px: int) -> None:
        self.calls.append(("set", (key, value), {"px": px}))

    async def execute(self) -> list[Any]:
        if self.cluster:
            client = self.client
            replies: list[Any] = await asyncio.gather(
                *(getattr(client, name)(*args, **kwargs) for name, args, kwargs in self.calls),
                return_exceptions=True,
            )
            for index, reply in enumerate(replies):
                if isinstance(reply, AttributeError):
                    # redis-py's opening race (see `open_cluster`) on a further connection to
                    # a node: raised before the command was written, so it is sent again,
                    # alone.
                    name, args, kwargs = self.calls[index]
                    replies[index] = await getattr(client, name)(*args, **kwargs)
                elif isinstance(reply, BaseException):
                    raise reply
            return replies
        pipe = self.client.pipeline(transaction=False)
        for name, args, kwargs in self.calls:
            getattr(pipe, name)(*args, **kwargs)
        return list(await pipe.execute())


async def open_cluster(client: Any) -> None:
    """Set up a Cluster client and open one connection to each node, one node at a time.

    redis-py's asyncio Cluster client can break a connection it is opening while other
    calls open theirs to the same node (an AttributeError in `send_packed_command`); a
    store's first operations would hit that, as a multi-slot batch goes to every node at
    once. Opened here first, with the scripts loaded, they no longer race. A single Redis
    (the Cluster code path run on one, as the tests do) needs nothing."""
    if not hasattr(client, "get_nodes"):
        return
    await client.initialize()
    for node in client.get_nodes():
        await client.execute_command("PING", target_nodes=node)


def reserve_argv(now: str, checks: Sequence[Check]) -> list[str]:
    """The RESERVE script's arguments: the time, then limit, amount, period, ttl per check."""
    argv = [now, str(len(checks))]
    for c in checks:
        argv += [repr(float(c.limit)), repr(float(c.amount)), repr(float(c.period)), repr(float(c.ttl))]
    return argv


def hash_tag(key: str) -> str:
    """The hash tag of `key` as Redis Cluster reads it: the first `{...}`, else the key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key
