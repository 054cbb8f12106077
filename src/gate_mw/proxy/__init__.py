"""Self-hosted proxy mode: OpenAI- and Anthropic-compatible endpoints over a gateway,
virtual keys, the `gate-mw serve` CLI and LiteLLM config mapping.

    app.include_router(openai_router(gateway), prefix="/v1")   # gate_mw.proxy.fastapi

Starlette: `gate_mw.proxy.starlette.openai_routes`; Litestar: `gate_mw.proxy.litestar`.
"""

from ._core import Proxy
from ._keys import KeyStore, VirtualKey
from ._settings import KeySpec, ProxySettings

__all__ = ["KeySpec", "KeyStore", "Proxy", "ProxySettings", "VirtualKey"]
