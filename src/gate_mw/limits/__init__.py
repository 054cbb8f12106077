"""The guards a call passes before and after routing: budgets, rate limits, response cache."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._budget import Budget
    from ._cache import Cache, CacheMode, ResponseCache
    from ._guard import Guard, Ticket
    from ._rate import Limit

__all__ = ["Budget", "Cache", "CacheMode", "Guard", "Limit", "ResponseCache", "Ticket"]

# A policy's `Budget`, `Limit` and `Cache` load without the guard that enforces them.
if not TYPE_CHECKING:
    __getattr__ = lazy_exports(__name__, globals(), {
        "._budget": ("Budget",),
        "._cache": ("Cache", "CacheMode", "ResponseCache"),
        "._guard": ("Guard", "Ticket"),
        "._rate": ("Limit",),
    })
