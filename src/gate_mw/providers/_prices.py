"""Model prices read from the `genai-prices` package and turned into plain `Price`s."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from genai_prices import data_snapshot, types

from ..pricing import Price

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["genai_lookup"]

# The parts of a model's price gate_mw reports usage for; others (audio, images, searches,
# per-request fees) are not priced.
_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


def _at(value: Decimal | types.TieredPrices | None, input_tokens: int) -> float | None:
    """A field's price for a prompt of more than `input_tokens` (None: not priced)."""
    if value is None:
        return None
    if isinstance(value, types.TieredPrices):
        found = value.base
        for tier in value.tiers:
            if input_tokens >= tier.start:
                found = tier.price
        return float(found)
    return float(value)


def _price(prices: types.ModelPrice, above: int = -1) -> Price | None:
    input_, output, cache_read, cache_write = (_at(getattr(prices, name), above) for name in _FIELDS)
    if input_ is None and output is None:
        return None  # not priced per token
    return Price(input_ or 0.0, output or 0.0, cache_read, cache_write)


def _convert(prices: types.ModelPrice) -> Price | None:
    base = _price(prices)
    if base is None:
        return None
    thresholds = sorted({
        tier.start for name in _FIELDS if isinstance(value := getattr(prices, name), types.TieredPrices)
        for tier in value.tiers
    })
    tiers = tuple((start, tier) for start in thresholds if (tier := _price(prices, start)) is not None)
    return Price(base.input, base.output, base.cached_input, base.cache_write, tiers)


def _changes(model: types.ModelInfo, now: datetime) -> Iterator[datetime]:
    """The moments after `now` at which a conditional price may start or stop applying."""
    if not isinstance(model.prices, list):
        return
    for conditional in model.prices:
        constraint = conditional.constraint
        if isinstance(constraint, types.StartDateConstraint) and constraint.start_date > now.date():
            yield datetime.combine(constraint.start_date, time(), UTC)
        elif isinstance(constraint, types.TimeOfDateConstraint):
            for moment in (constraint.start_time, constraint.end_time):
                at = datetime.combine(now.date(), moment.replace(tzinfo=moment.tzinfo or UTC))
                yield at if at > now else at + timedelta(days=1)


def _find(model_id: str, provider_id: str | None) -> types.ModelInfo | None:
    """The model as `genai-prices` matches it. Its own lookup caches every model id it is
    asked about, without bound; the caller's cache is bounded, so this one must not grow."""
    providers = data_snapshot.get_snapshot().providers
    model_id = model_id.lower()
    if provider_id == "litellm":  # a LiteLLM id names its vendor: "openai/gpt-4o"
        vendor, _, rest = model_id.partition("/")
        provider_id = vendor if rest and data_snapshot.find_provider_by_id(providers, vendor) else None
        model_id = rest if provider_id else model_id
    if provider_id is not None:
        found = data_snapshot.find_provider_by_id(providers, provider_id)
    else:
        found = next((p for p in providers if p.model_match and p.model_match.is_match(model_id)), None)
    return None if found is None else found.find_model(model_id, all_providers=providers)


def genai_lookup(model_id: str, provider: str | None) -> tuple[Price | None, int | None, float | None]:
    """The price of `model_id` as `provider` charges it now, its context window, and when that
    price may change (a POSIX time, or None): all None when `genai-prices` does not know it."""
    now = datetime.now(UTC)
    model = _find(model_id, provider)
    if model is None:
        return None, None, None
    until = min(_changes(model, now), default=None)
    changes = None if until is None else until.timestamp()
    return _convert(model.get_prices(now)), model.context_window, changes

