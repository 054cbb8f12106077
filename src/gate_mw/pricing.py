"""Model prices and the cost of a call. Unknown prices give unknown cost, never zero.

Prices come from the `genai-prices` package (maintained by the Pydantic team), looked up
exactly by provider and model id, or from entries you give. Each model is resolved once and
cached, so pricing a call is plain arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .results import Usage

__all__ = ["CostSource", "Price", "PriceTable"]

_PER_MILLION = 1_000_000
# Models whose lookups are kept (found or not): a hostile upstream naming a new model in
# every reply cannot grow the cache without bound.
_MAX_CACHED = 2048

#: Where the cost of a call came from: the upstream's own bill (OpenRouter `usage.cost`,
#: LiteLLM `x-litellm-response-cost`), the price table, or the entry's own prices.
CostSource: TypeAlias = Literal["upstream", "price_table", "override"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. `cached_input` (cache reads) and `cache_write` default to the input
    price when a vendor has none. `tiers` are `(threshold, Price)` pairs, ascending: a prompt
    of more than `threshold` input tokens is charged wholly at that tier's prices (the
    long-context prices of Gemini 2.5 Pro or Claude Sonnet 4.5)."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    tiers: tuple[tuple[int, Price], ...] = ()

    def _for(self, input_tokens: int) -> Price:
        price = self
        for threshold, tier in self.tiers:
            if input_tokens > threshold:
                price = tier
        return price

    def cost(self, usage: Usage) -> float:
        """The cost of `usage` in USD. Cache reads and writes are parts of input tokens."""
        input_tokens = usage.input_tokens
        price = self._for(input_tokens) if self.tiers else self
        rate = price.input
        if not usage.cached_tokens and not usage.cache_write_tokens:
            # No cache reads or writes, the common call: the same sum, without its zero
            # terms (~1.5k instructions fewer, estimated).
            return (input_tokens * rate + usage.output_tokens * price.output) / _PER_MILLION
        cached = min(usage.cached_tokens, input_tokens)
        written = min(usage.cache_write_tokens, input_tokens - cached)
        return (
            (input_tokens - cached - written) * rate
            + cached * (rate if price.cached_input is None else price.cached_input)
            + written * (rate if price.cache_write is None else price.cache_write)
            + usage.output_tokens * price.output
        ) / _PER_MILLION

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """The most a call with this many prompt and output tokens may cost."""
        price = self._for(input_tokens) if self.tiers else self
        return (input_tokens * price.input + output_tokens * price.output) / _PER_MILLION


@dataclass(frozen=True, slots=True)
class _Found:
    price: Price | None
    context_window: int | None
    until: float | None = None  # when the price changes (a new list price, off-peak hours)


_UNKNOWN = _Found(None, None)


def _entry(spec: Mapping[str, Any] | Price) -> _Found:
    if isinstance(spec, Price):
        return _Found(spec, None)
    cached, written = (
        None if spec.get(name) is None else float(spec[name]) for name in ("cached_input", "cache_write")
    )
    price = Price(float(spec["input"]), float(spec["output"]), cached, written)
    return _Found(price, spec.get("context_window"))


class PriceTable:
    """Prices by model id, matched exactly (case aside): no prefix guessing, so `o3-pro` is
    never priced as `o3` and an unknown model stays unknown.

    `entries` (model id -> `Price`, or a mapping with `input`, `output`, optional
    `cached_input`, `cache_write` and `context_window`) come first; then, unless
    `genai_prices=False`, the `genai-prices` data, which knows dated snapshots and
    provider-prefixed ids (`openai/gpt-4o`) and prices per provider.
    """

    def __init__(
        self, entries: Mapping[str, Mapping[str, Any] | Price] | None = None, *,
        genai_prices: bool = True, as_of: str | None = None,
    ) -> None:
        self.as_of = as_of
        self._entries = {name.lower(): _entry(spec) for name, spec in (entries or {}).items()}
        self._genai = genai_prices
        self._found: dict[tuple[str | None, str], _Found] = {}

    @classmethod
    def bundled(cls) -> PriceTable:
        """The `genai-prices` data installed with gate_mw; see `genai_prices.__version__`."""
        return _BUNDLED

    def _find(self, model_id: str, provider: str | None) -> _Found:
        key = (provider, model_id)
        found = self._found.get(key)
        if found is None or (found.until is not None and time.time() >= found.until):
            found = self._entries.get(model_id.lower())
            if found is None:
                found = _UNKNOWN
                if self._genai:
                    from .providers._prices import genai_lookup  # ~0.3 s: only when first needed

                    found = _Found(*genai_lookup(model_id, provider)) if model_id else _UNKNOWN
            if len(self._found) >= _MAX_CACHED:
                self._found.pop(next(iter(self._found)))
            self._found[key] = found
        return found

    def price(self, model_id: str, provider: str | None = None) -> Price | None:
        """The price of `model_id` now, as `provider` (a `genai-prices` provider id such as
        "openai", "anthropic", "openrouter"; None: guessed from the model id) charges it."""
        # `_find`'s common case, a price found before that does not expire, without the call.
        found = self._found.get((provider, model_id))
        if found is None or found.until is not None:
            found = self._find(model_id, provider)
        return found.price

    def context_window(self, model_id: str, provider: str | None = None) -> int | None:
        return self._find(model_id, provider).context_window


_BUNDLED = PriceTable()
