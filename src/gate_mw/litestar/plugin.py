"""`GatePlugin`: registers the middleware, the gateway's lifespan, the `Gate` dependency
and the gate error handler on a Litestar app."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.middleware.base import DefineMiddleware
from litestar.plugins import InitPlugin

from ..client import Gate
from ..errors import GateError
from ..gateway import Gateway
from ..middleware import GatewayMiddleware
from ._utils import GateClient, error_handler, provide_gate
from .config import GatePluginConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp
    from litestar.types.composite_types import Middleware

__all__ = ["GatePlugin"]


class GatePlugin(InitPlugin):
    """Make a Litestar app its own LLM gateway: `Litestar(plugins=[GatePlugin(gateway)])`.

    Handlers receive the request's `Gate` by declaring a `gate: GateClient` parameter; policies
    come from `@route_policy` or from `opt={"gate_policy": RoutePolicy(...)}` on any layer.
    """

    __slots__ = ("config",)

    def __init__(self, config: GatePluginConfig | Gateway) -> None:
        self.config = config if isinstance(config, GatePluginConfig) else GatePluginConfig(config)
        super().__init__()

    @property
    def middleware(self) -> DefineMiddleware:
        # Typed with Starlette's ASGI aliases, which Litestar's match only at runtime.
        middleware = cast("Callable[..., ASGIApp]", GatewayMiddleware)
        return DefineMiddleware(middleware, gateway=self.config.gateway)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        config = self.config
        key = config.dependency_key
        if key in app_config.dependencies:
            raise ImproperlyConfiguredException(
                f"GatePlugin: the app already has a dependency named {key!r}; "
                "set GatePluginConfig(dependency_key=...) to another name"
            )
        app_config.dependencies[key] = Provide(provide_gate, sync_to_thread=False)
        if not any(_is_gateway_middleware(middleware) for middleware in app_config.middleware):
            # First, so it is outermost: its headers go on whatever the app's middleware sends.
            app_config.middleware.insert(0, self.middleware)
        # An app's own handler for gate errors wins over the default JSON answer.
        app_config.exception_handlers.setdefault(GateError, error_handler(config.gateway))
        # Lets handlers import these only for type checking, under `from __future__ import annotations`.
        app_config.signature_namespace.setdefault("Gate", Gate)
        app_config.signature_namespace.setdefault("GateClient", GateClient)
        if config.manage_lifespan:
            app_config.lifespan.append(config.gateway.lifespan)
        return app_config


def _is_gateway_middleware(middleware: Middleware) -> bool:
    if isinstance(middleware, DefineMiddleware):
        middleware = middleware.middleware
    return isinstance(middleware, type) and issubclass(middleware, GatewayMiddleware)
