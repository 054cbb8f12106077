"""Litestar integration: one plugin wires the gateway into an app.

    gateway = Gateway.from_file("gateway.yaml")
    app = Litestar([summarise], plugins=[GatePlugin(gateway)])

    @post("/summarise")
    @route_policy(models=["claude-sonnet", "gpt-4o"], timeout=20)
    async def summarise(data: In, gate: GateClient) -> Out:
        result = await gate.chat([{"role": "user", "content": data.text}])

Needs the ``litestar`` extra: ``pip install 'gate_mw[litestar]'``.
"""

from __future__ import annotations

from .._optional import require

require("litestar", "litestar")

from ._utils import GateClient  # noqa: E402 - after the guard, for its clear message
from .config import GatePluginConfig  # noqa: E402
from .plugin import GatePlugin  # noqa: E402
from .responses import GateStreamResponse, sse_response, text_event_stream  # noqa: E402

__all__ = [
    "GateClient",
    "GatePlugin",
    "GatePluginConfig",
    "GateStreamResponse",
    "sse_response",
    "text_event_stream",
]
