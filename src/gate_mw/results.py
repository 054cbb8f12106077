"""Normalised results: the same shapes whichever provider answered."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .chat._model import Choice, ToolCall, assistant_message

__all__ = ["Attempt", "ChatResult", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one call. `cached_tokens` (prompt-cache reads) and `cache_write_tokens`
    (prompt written to the cache, Anthropic's `cache_creation_input_tokens`) are part of
    `input_tokens`, `reasoning_tokens` part of `output_tokens`, as OpenAI counts them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one deployment, successful or not."""

    model: str
    deployment: str
    provider: str
    outcome: str
    latency_s: float
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "deployment": self.deployment,
            "provider": self.provider,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": round(self.latency_s * 1000, 1),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ChatResult:
    """The answer of `Gate.chat`: text and tool calls, who answered, what it cost, how it
    got there. `message` is the assistant turn to append to the history; `parsed` the
    validated object when the call gave `output=`; `choices` every answer when it asked
    for `n > 1`; `raw` the provider's JSON when it asked for `raw=True`."""

    text: str
    model: str
    deployment: str
    provider: str
    provider_model: str
    finish_reason: str | None
    usage: Usage
    cost_usd: float | None
    latency_s: float
    attempts: tuple[Attempt, ...]
    request_id: str
    response_id: str | None = None
    arm: str | None = None
    #: Where `cost_usd` came from: "upstream" (its bill), "price_table", "override" or
    #: "cache" (a cache hit costs nothing).
    cost_source: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)
    tool_calls: tuple[ToolCall, ...] = ()
    parsed: Any = None
    choices: tuple[Choice, ...] = ()
    #: Served from the response cache: no upstream call, no cost.
    cached: bool = False
    #: OpenAI's `system_fingerprint`, when the upstream sent one.
    system_fingerprint: str | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message (text and tool calls) in OpenAI's format."""
        return assistant_message(self.text, self.tool_calls)

    @property
    def fallbacks(self) -> int:
        """How many failed attempts preceded the answer."""
        return len(self.attempts) - 1

    @property
    def input_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.usage.output_tokens


def _init_through_twin(cls: type) -> None:
    """Give the frozen, slotted dataclass `cls` a quicker `__init__` with the same signature.

    A frozen dataclass stores each field with `object.__setattr__`, which made building a
    ChatResult cost more than the rest of settling a call. This one turns the new instance
    into a mutable twin of `cls` (the same slots, so the same layout), stores the fields
    as plain attributes and turns it back: one `object.__setattr__` per instance. All else
    (equality, hashing, repr, immutability, `replace`, pickling) is the dataclass's own; an
    instance of a subclass gets the dataclass's `__init__`. Code is generated as
    `dataclasses` does, so that the signature follows the fields."""
    fields = dataclasses.fields(cls)
    generated = cls.__init__  # type: ignore[misc]
    assert not hasattr(cls, "__post_init__"), "no __post_init__ is run"
    assert all(f.init and not f.kw_only and f.default_factory is dataclasses.MISSING for f in fields)
    twin = type(f"_{cls.__name__}Fields", (), {"__slots__": vars(cls)["__slots__"]})
    names = [f.name for f in fields]
    params = [f.name if f.default is dataclasses.MISSING else f"{f.name}=_d_{f.name}" for f in fields]
    namespace: dict[str, Any] = {f"_d_{f.name}": f.default for f in fields}
    namespace.update(_cls=cls, _twin=twin, _set=object.__setattr__, _generated=generated)
    lines = [
        f"def __init__(self, {', '.join(params)}):",
        "    if self.__class__ is not _cls:",
        f"        return _generated(self, {', '.join(names)})",
        "    _set(self, '__class__', _twin)",
        *(f"    self.{name} = {name}" for name in names),
        "    self.__class__ = _cls",
    ]
    exec("\n".join(lines), namespace)  # code built from the field names above
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(generated.__annotations__)
    cls.__init__ = init  # type: ignore[misc]


for _cls in (Usage, Attempt, ChatResult):
    _init_through_twin(_cls)
del _cls
