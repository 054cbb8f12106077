"""The proxy for FastAPI: one router.

app.include_router(openai_router(gateway), prefix="/v1")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import require

require("fastapi", "fastapi")

from fastapi import APIRouter  # noqa: E402 - after the guard, for its clear message

from .starlette import openai_routes  # noqa: E402

if TYPE_CHECKING:
    from ..gateway import Gateway
    from ._core import Proxy

__all__ = ["openai_router"]


def openai_router(target: Gateway | Proxy) -> APIRouter:
    """An `APIRouter` serving the OpenAI- and Anthropic-compatible endpoints; include it
    with `prefix="/v1"` so SDKs reach it at `base_url=".../v1"`."""
    router = APIRouter()
    router.routes.extend(openai_routes(target))
    return router
