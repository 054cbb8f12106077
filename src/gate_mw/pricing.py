"""Model prices and the cost of a call. Unknown prices give unknown cost, never zero."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .results import Usage

__all__ = ["Price", "PriceTable"]

_PER_MILLION = 1_000_000
# Dated snapshots ("-2024-08-06", "-20241022") and "-latest" name the same price as the base id.
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|:.*)$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. `cached_input` defaults to the input price when a vendor has none."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        """The cost of `usage` in USD; cached tokens are the part of input read from cache."""
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.input_tokens - cached) * self.input
            + cached * cached_price
            + usage.output_tokens * self.output
        ) / _PER_MILLION

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """The most a call with this many prompt and output tokens may cost."""
        return (input_tokens * self.input + output_tokens * self.output) / _PER_MILLION


def _normalise(model_id: str) -> str:
    name = model_id.rsplit("/", 1)[-1].lower()
    return name.replace(".", "-")


@dataclass(frozen=True, slots=True)
class _Entry:
    price: Price
    context_window: int | None


class PriceTable:
    """Prices by upstream model id, matched leniently: vendor prefixes (`openai/gpt-4o`),
    dated snapshots and dotted versions (`claude-3.5-sonnet`) find the base entry."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], *, as_of: str | None = None) -> None:
        self.as_of = as_of
        self._entries = {
            _normalise(name): _Entry(
                Price(
                    float(spec["input"]),
                    float(spec["output"]),
                    None if spec.get("cached_input") is None else float(spec["cached_input"]),
                ),
                spec.get("context_window"),
            )
            for name, spec in entries.items()
        }
        # Longest first, so "gpt-4o-mini-x" finds "gpt-4o-mini" before "gpt-4o".
        self._prefixes = sorted(self._entries, key=len, reverse=True)

    @classmethod
    def bundled(cls) -> PriceTable:
        """The price table shipped with gate_mw (see its `as_of` date)."""
        return _BUNDLED

    def _find(self, model_id: str) -> _Entry | None:
        name = _normalise(model_id)
        entry = self._entries.get(name) or self._entries.get(_SNAPSHOT.sub("", name))
        if entry is not None:
            return entry
        for prefix in self._prefixes:
            if name.startswith(prefix) and name[len(prefix)] == "-":
                return self._entries[prefix]
        return None

    def price(self, model_id: str) -> Price | None:
        entry = self._find(model_id)
        return entry.price if entry else None

    def context_window(self, model_id: str) -> int | None:
        entry = self._find(model_id)
        return entry.context_window if entry else None


def _load_bundled() -> PriceTable:
    data = json.loads(resources.files(__package__).joinpath("data/prices.json").read_text())
    return PriceTable(data["models"], as_of=data["as_of"])


_BUNDLED = _load_bundled()
