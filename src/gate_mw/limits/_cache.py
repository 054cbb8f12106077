"""Response cache: exact match on the normalised request, in a bounded in-memory LRU or in
the shared state store (Redis), so a hit in one replica serves the others."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..providers import ChatRequest
    from ..results import ChatResult

__all__ = ["Cache", "CacheMode", "ResponseCache"]

#: Per call: use the cache, skip it (neither read nor write), or skip reading and store anew.
CacheMode = Literal["use", "bypass", "refresh"]


@dataclass(frozen=True, slots=True)
class Cache:
    """Answer repeated identical requests from a cache for `ttl` seconds.

    The key covers the route's models and strategy (or the call's `model=`), every field
    of the request (messages, tools, sampling parameters, output schema) and, with
    `scope="caller"`, the caller key. Only complete successful answers are stored. A hit
    costs nothing and keeps the model that answered. `stream=True` also caches streams
    and replays hits to them in token-sized chunks. `single_flight=True` makes concurrent
    identical misses of `Gate.chat` in one process wait for the first one's answer
    instead of each calling upstream.
    """

    ttl: float = 3600.0
    scope: Literal["shared", "caller"] = "shared"
    stream: bool = False
    single_flight: bool = False

    def problem(self) -> str | None:
        if isinstance(self.ttl, bool) or not isinstance(self.ttl, int | float) or not self.ttl > 0:
            return f"ttl must be positive seconds, got {self.ttl!r}"
        if self.scope not in ("shared", "caller"):
            return f"scope must be shared or caller, got {self.scope!r}"
        return None


def _plain(value: Any) -> Any:
    """JSON for what requests may hold beyond JSON: mappings, `output=` schemas,
    dataclasses, models. Never a repr with an address: keys must match across processes."""
    if isinstance(value, Mapping):
        return dict(value)
    output_schema = getattr(value, "schema", None)
    if isinstance(output_schema, dict):  # an `Output`: what is asked for is its schema
        return {"output": getattr(value, "name", None), "schema": output_schema}
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):
        return schema()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def request_key(request: ChatRequest, route: tuple[Any, ...], caller: str | None) -> str:
    """The cache key of `request`: a digest of every field of the request object (so
    fields added to `ChatRequest` later take part), the route identity and the caller."""
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    text = json.dumps([route, caller, fields], sort_keys=True, separators=(",", ":"), default=_plain)
    return "cache:" + hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def to_entry(result: ChatResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "text": result.text, "model": result.model, "deployment": result.deployment,
        "provider": result.provider, "provider_model": result.provider_model,
        "finish_reason": result.finish_reason, "response_id": result.response_id,
        "usage": [usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.reasoning_tokens],
        "system_fingerprint": result.system_fingerprint,
    }


def from_entry(entry: dict[str, Any], *, request_id: str, latency_s: float, arm: str | None) -> ChatResult:
    # Here: a policy's `Cache` loads without the result types (the first call loads them).
    from ..results import ChatResult, Usage

    return ChatResult(
        text=entry["text"], model=entry["model"], deployment=entry["deployment"],
        provider=entry["provider"], provider_model=entry["provider_model"],
        finish_reason=entry["finish_reason"], usage=Usage(*entry["usage"]), cost_usd=0.0,
        latency_s=latency_s, attempts=(), request_id=request_id, response_id=entry["response_id"],
        arm=arm, cached=True, cost_source="cache", system_fingerprint=entry.get("system_fingerprint"),
    )


class ResponseCache:
    """Where cached answers live: in memory (`backend="memory"`, an LRU bounded by
    `max_entries` and `max_bytes`) or in the state store (`"store"`; entries expire by
    TTL). Answers over `max_entry_bytes` are not cached."""

    __slots__ = ("_bytes", "_entries", "backend", "clock", "max_bytes", "max_entries", "max_entry_bytes")

    def __init__(
        self, backend: Literal["memory", "store"] = "memory", *, max_entries: int = 10_000,
        max_bytes: int = 64 << 20, max_entry_bytes: int = 1 << 20,
        clock: Any = time.time,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or max_entry_bytes < 1:
            raise ValueError("cache bounds must be positive")
        self.backend = backend
        self.max_entries, self.max_bytes, self.max_entry_bytes = max_entries, max_bytes, max_entry_bytes
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, int, dict[str, Any]]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> dict[str, Any] | None:
        """A memory-backend entry, if fresh."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found[2]

    def fits(self, entry: dict[str, Any]) -> bool:
        return len(json.dumps(entry)) <= self.max_entry_bytes

    def put(self, key: str, entry: dict[str, Any], ttl: float) -> None:
        size = len(json.dumps(entry))
        if size > self.max_entry_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self.clock() + ttl, size, entry)
        self._bytes += size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, size, _ = self._entries.pop(key)
        self._bytes -= size
