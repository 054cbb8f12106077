"""Deployments resolved from model entries: provider, price and context window in one place."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import ModelEntry, UpstreamLimits
from .errors import ConfigError
from .pricing import CostSource, Price, PriceTable
from .providers import Provider, ProviderReply, build_provider, price_lookup
from .providers.transport import Transport

__all__ = ["Deployment", "ModelRegistry"]


@dataclass(eq=False, slots=True)
class Deployment:
    """One callable deployment of an alias. Its provider exists once the gateway started."""

    id: str
    alias: str
    entry: ModelEntry
    label: str
    price: Price | None
    context_window: int | None
    provider: Provider | None = None
    #: The table that prices the model that answered, and the provider id it looks up;
    #: None when the entry sets its own prices or the model is self-hosted.
    prices: PriceTable | None = None
    price_provider: str | None = None
    # Metric attributes that never change for this deployment, built once.
    metric_attributes: dict[str, Any] = field(default_factory=dict)
    #: The model id sent upstream (the entry's, which is frozen): read on every call, so
    #: kept here rather than through two properties (~800 instructions a call, estimated).
    upstream_model: str = field(init=False)

    def __post_init__(self) -> None:
        self.upstream_model = self.entry.upstream_model

    @property
    def system(self) -> str:
        return self.provider.system if self.provider else self.entry.provider

    def cost(self, reply: ProviderReply) -> tuple[float | None, CostSource | None]:
        """What `reply` cost and where that figure came from: the upstream's own bill, else
        the price of the model that answered (`openrouter/auto` names the model it chose),
        else this deployment's price; None when unknown."""
        if reply.cost is not None:
            return reply.cost, "upstream"
        prices = self.prices
        if prices is None:
            price = self.price
            return (None, None) if price is None else (price.cost(reply.usage), "override")
        price = prices.price(reply.model, self.price_provider)
        if price is None and reply.model != self.upstream_model:
            price = prices.price(self.upstream_model, self.price_provider)
        return (None, None) if price is None else (price.cost(reply.usage), "price_table")


def _override(entry: ModelEntry, label: str) -> Price | None:
    """The entry's own prices, or None when it sets none."""
    given = (entry.input_cost_per_mtok, entry.output_cost_per_mtok)
    if given == (None, None):
        if entry.cached_input_cost_per_mtok is not None or entry.cache_write_cost_per_mtok is not None:
            raise ConfigError(
                "a cache price needs input and output prices too", entry=label, field="input_cost_per_mtok"
            )
        return None
    if None in given:
        missing = "output_cost_per_mtok" if given[1] is None else "input_cost_per_mtok"
        raise ConfigError("set both input and output prices, or neither", entry=label, field=missing)
    return Price(
        given[0] or 0.0, given[1] or 0.0, entry.cached_input_cost_per_mtok, entry.cache_write_cost_per_mtok
    )


class ModelRegistry:
    """Every deployment by id and by alias, in declaration order."""

    def __init__(self, entries: Sequence[ModelEntry], prices: PriceTable, *, source: str | None) -> None:
        self.source = source
        self.deployments: list[Deployment] = []
        self.by_alias: dict[str, list[Deployment]] = {}
        self.by_id: dict[str, Deployment] = {}
        counts = Counter(entry.name for entry in entries)
        seen: Counter[str] = Counter()
        for index, entry in enumerate(entries):
            label = f"models[{index}] ({entry.name})"
            seen[entry.name] += 1
            dep_id = entry.id or (
                entry.name if counts[entry.name] == 1 else f"{entry.name}#{seen[entry.name]}"
            )
            if dep_id in self.by_id:
                raise ConfigError(
                    f"deployment id {dep_id!r} is used twice", source=source, entry=label, field="id"
                )
            try:
                price = _override(entry, label)
            except ConfigError as exc:
                raise exc.located(source) from None
            looked_up, provider_id = price_lookup(entry.provider)
            table = prices if price is None and looked_up else None
            model = entry.upstream_model
            deployment = Deployment(
                id=dep_id, alias=entry.name, entry=entry, label=label,
                # Resolved once here; a call then costs only arithmetic.
                price=price if table is None else table.price(model, provider_id),
                context_window=entry.context_window or (
                    prices.context_window(model, provider_id) if looked_up else None
                ),
                prices=table, price_provider=provider_id,
            )
            self.deployments.append(deployment)
            self.by_id[dep_id] = deployment
            self.by_alias.setdefault(entry.name, []).append(deployment)
        self._chains: dict[tuple[str, ...], tuple[Deployment, ...]] = {}

    @property
    def aliases(self) -> list[str]:
        return list(self.by_alias)

    def unknown(self, aliases: Sequence[str]) -> list[str]:
        return [alias for alias in aliases if alias not in self.by_alias]

    def chain(self, aliases: tuple[str, ...]) -> tuple[Deployment, ...]:
        """The deployments of `aliases`, in chain order (cached: chains are few)."""
        found = self._chains.get(aliases)
        if found is None:
            found = self._chains[aliases] = tuple(
                deployment for alias in aliases for deployment in self.by_alias[alias]
            )
        return found

    def build_providers(
        self, env: Mapping[str, str], client: Callable[[], Transport],
        limits: UpstreamLimits | None = None,
    ) -> None:
        """Create every provider, reading API keys from `env`; fails naming the entry."""
        for deployment in self.deployments:
            try:
                deployment.provider = build_provider(
                    deployment.entry, deployment_id=deployment.id, label=deployment.label,
                    env=env, client=client, limits=limits,
                )
            except ConfigError as exc:
                raise exc.located(self.source) from None
            provider = deployment.provider
            deployment.metric_attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider.system,
                "gen_ai.request.model": deployment.upstream_model,
                **({"server.address": provider.server_address} if provider.server_address else {}),
                **({"server.port": provider.server_port} if provider.server_port else {}),
            }

    async def aclose(self) -> None:
        for deployment in self.deployments:
            if deployment.provider is not None:
                await deployment.provider.aclose()
