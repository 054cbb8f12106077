"""How providers reach upstreams: aiohttp on the gateway's own pool, httpx on a user's client."""

from __future__ import annotations

from ._base import Reply, Streamed, Transport, read_capped

__all__ = ["Reply", "Streamed", "Transport", "read_capped"]
