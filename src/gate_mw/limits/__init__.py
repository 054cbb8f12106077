"""The guards a call passes before and after routing: budgets, rate limits, response cache."""

from ._budget import Budget
from ._cache import Cache, CacheMode, ResponseCache
from ._guard import Guard, Ticket
from ._rate import Limit

__all__ = ["Budget", "Cache", "CacheMode", "Guard", "Limit", "ResponseCache", "Ticket"]
