"""`Gateway`: the models, the default policy, the HTTP pool and telemetry of one app."""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._context import CallerResolver, RoutingContext
from ._headers import header_name_problem
from ._routes import iter_endpoints, route_template
from .errors import ConfigError, PolicyError, UpstreamError
from .policy import RoutePolicy, make_policy, policy_of, route_name

if TYPE_CHECKING:
    # What a gateway runs on: bound by `_load` at the first gateway made (see there).
    import asyncio

    import httpx  # a user's client or transport: httpx loads only on that path

    from ._registry import Deployment, ModelRegistry
    from .client import Gate
    from .config import (
        GatewayConfig,
        ModelEntry,
        UpstreamLimits,
        load_config,
        model_entries,
        simulated_models,
    )
    from .insights import ExperimentStats, Report
    from .insights._router import Authorize, InspectionApp
    from .limits import Budget, Guard, Limit, ResponseCache
    from .pricing import PriceTable
    from .providers.transport import Transport
    from .routing import Breaker, CooldownState
    from .routing._experiments import Experiments
    from .routing._router import Router
    from .state import MemoryStore, StateStore, open_store
    from .telemetry import Telemetry, TelemetryConfig

__all__ = ["Gateway"]

logger = logging.getLogger("gate_mw")

_DEFAULT_ROUTE = "default policy"
_loaded = False


def _load() -> None:
    """Import what a gateway runs on (providers, routing, state, telemetry, the chat client,
    asyncio) into this module's globals, once, when the first gateway is made: what an app's
    module writes, `from gate_mw import Gateway`, does not pay for them at import (issue 14).
    Afterwards they are plain globals, read as any import's names are: no cost per call."""
    global _loaded, asyncio, ModelRegistry, Gate, UpstreamLimits, load_config, model_entries
    global simulated_models, Budget, Guard, Limit, ResponseCache
    global PriceTable, Breaker, Router, MemoryStore, open_store, Telemetry, TelemetryConfig
    import asyncio

    from ._registry import ModelRegistry
    from .client import Gate
    from .config import UpstreamLimits, load_config, model_entries, simulated_models
    from .limits import Budget, Guard, Limit, ResponseCache
    from .pricing import PriceTable
    from .routing import Breaker
    from .routing._router import Router
    from .state import MemoryStore, open_store
    from .telemetry import Telemetry, TelemetryConfig

    _loaded = True


class Gateway:
    """Holds what every request shares: models, policies, HTTP pool, telemetry.

    Open and close it with the app: `FastAPI(lifespan=gateway.lifespan)`, or
    `async with gateway:`. Providers read their API keys when it starts.
    """

    def __init__(
        self,
        models: Sequence[ModelEntry | Mapping[str, Any]] = (),
        *,
        default_policy: RoutePolicy | Mapping[str, Any] | None = None,
        policies: Mapping[str, RoutePolicy | Mapping[str, Any]] | None = None,
        caller_header: str | None = "x-gate-caller",
        caller_resolver: CallerResolver | None = None,
        request_id_header: str = "x-request-id",
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 1024,
        telemetry: TelemetryConfig | None = None,
        prices: PriceTable | None = None,
        env: Mapping[str, str] | None = None,
        seed: int | None = None,
        state: StateStore | str | None = None,
        state_options: Mapping[str, Any] | None = None,
        response_cache: ResponseCache | None = None,
        limits: Sequence[Limit | Budget] = (),
        breaker: Breaker | None = None,
        source: str | None = None,
        upstream_limits: UpstreamLimits | None = None,
    ) -> None:
        if not _loaded:
            _load()
        for field, header in (("caller_header", caller_header), ("request_id_header", request_id_header)):
            if header is not None and (problem := header_name_problem(header)):
                raise ConfigError(problem, source=source, field=field)
        entries = model_entries(models, source) or simulated_models()
        self.registry = ModelRegistry(entries, prices or PriceTable.bundled(), source=source)
        self.telemetry = Telemetry(telemetry or TelemetryConfig())
        self.rng = random.Random(seed)
        # Latency windows, in-flight counts, cooldowns, experiment counts, budgets, limits:
        # in this process, or shared by every replica (a redis:// URL).
        store = open_store(state, **(state_options or {}))
        self.router = Router(self.registry, store, breaker or Breaker(), self.rng)
        # Report counters go to a shared store when there is one; in memory, to a store of
        # their own, so that they never push routing state (cooldowns) out of its bound.
        from .insights import Insights  # here: reports are not needed to `import gate_mw`

        self.insights = Insights(
            MemoryStore(max_keys=200_000) if state is None else store,
            self.router.experiments,
        )
        if response_cache is None:
            response_cache = ResponseCache("memory" if isinstance(store, MemoryStore) else "store")
        for rule in limits:
            if not isinstance(rule, Limit | Budget) or (problem := rule.problem()):
                raise ConfigError(
                    "each of limits must be a valid Limit or Budget"
                    + (f": {problem}" if isinstance(rule, Limit | Budget) else f", not {rule!r}"),
                    source=source or "Gateway(limits=...)", field="limits",
                )
        self.guard = Guard(store, response_cache, limits)
        self.default_policy = self._default_policy(default_policy)
        #: Named policies, which a proxy request's `model` may name as it names an alias.
        self.policies = {
            name: self._named_policy(name, policy) for name, policy in (policies or {}).items()
        }
        #: The file this gateway was loaded from, when it was (its `proxy` settings among it).
        self.config: GatewayConfig | None = None
        # Header names in lower-case bytes, as ASGI gives them; read by each RoutingContext.
        self.caller_header = caller_header.lower().encode() if caller_header else None
        self.caller_resolver = caller_resolver
        self.request_id_header = request_id_header.lower().encode()
        self._http_client = http_client
        self._transport = transport
        self._pool: Transport | None = None
        self._max_connections = max_connections
        self._env = env
        self.upstream_limits = upstream_limits or UpstreamLimits()
        self._started = False
        # The event loop the gateway's own HTTP pool belongs to, once made.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._policies: dict[int, tuple[Any, RoutePolicy, str]] = {}
        self._reported: set[str] = set()

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Gateway:
        """A gateway from a YAML or JSON file; keyword options override the file's."""
        if not _loaded:
            _load()
        config = load_config(path)
        settings: dict[str, Any] = {
            "default_policy": config.default_policy,
            "caller_header": config.caller_header,
            "request_id_header": config.request_id_header,
            "max_connections": config.max_connections,
            "telemetry": TelemetryConfig(capture_content=config.capture_content),
            "upstream_limits": config.upstream_limits,
            "policies": config.policies,
            "state": config.state,
            "state_options": config.state_options.model_dump(),
        }
        if config.breaker is not None:
            try:
                settings["breaker"] = Breaker(**config.breaker)
            except ConfigError as exc:
                raise ConfigError(exc.detail, source=str(path), field="breaker") from None
            except (TypeError, ValueError) as exc:
                raise ConfigError(str(exc), source=str(path), field="breaker") from None
        gateway = cls(config.models, source=str(path), **{**settings, **options})
        gateway.config = config
        return gateway

    def _default_policy(self, policy: RoutePolicy | Mapping[str, Any] | None) -> RoutePolicy:
        if policy is None:
            return RoutePolicy(models=tuple(self.registry.aliases))
        if not isinstance(policy, RoutePolicy):
            if not isinstance(policy, Mapping):
                raise PolicyError("give a RoutePolicy or a mapping of its fields", route=_DEFAULT_ROUTE)
            policy = make_policy(_DEFAULT_ROUTE, dict(policy))
        if not policy.models:
            policy = policy.model_copy(update={"models": tuple(self.registry.aliases)})
        return self.validate_policy(policy, _DEFAULT_ROUTE)

    def _named_policy(self, name: str, policy: RoutePolicy | Mapping[str, Any]) -> RoutePolicy:
        route = f"policies.{name}"
        try:
            if not isinstance(policy, RoutePolicy):
                policy = make_policy(route, {"name": name, **policy})
            return self.validate_policy(policy, route)
        except PolicyError as exc:  # a policy of the file: name the file too
            detail = str(exc).split(": ", 1)[-1]
            raise ConfigError(detail, source=self.registry.source, entry=route, field=exc.field) from None

    def validate_policy(self, policy: RoutePolicy, route: str) -> RoutePolicy:
        """`policy` with defaults filled in, checked against this gateway's models."""
        if policy.models and self.router.routes.compiled(policy):  # checked already
            return policy
        if not policy.models:
            policy = policy.model_copy(update={"models": self.default_policy.models})
        if unknown := self.registry.unknown(policy.models):
            known = ", ".join(self.registry.aliases)
            raise PolicyError(f"unknown model {unknown[0]!r} (known: {known})", route=route, field="models")
        self.router.compile(policy, route)
        return policy

    @property
    def experiments(self) -> Experiments:
        """The A/B experiments of this gateway's routes: `await .summary(name)`."""
        return self.router.experiments

    async def cooldowns(self) -> list[CooldownState]:
        """The circuit breaker of every deployment: state, reason, since, until."""
        return await self.router.cooldowns()

    async def report(
        self, window: str = "day", by: Sequence[str] = ("caller", "route", "model")
    ) -> Report:
        """Spend, calls, tokens, errors and latency percentiles per group over the last
        `window` ("hour", "day" or "week"), from the state store (shared by replicas)."""
        return await self.insights.report(window, by)

    async def experiment_stats(self, name: str, control: str | None = None) -> ExperimentStats:
        """Per-arm calls, error rate, mean cost and latency with 95 % intervals, and each
        arm against `control` (default: the first arm) with a verdict in plain words."""
        return await self.insights.experiment(name, control)

    async def budgets(self) -> list[dict[str, Any]]:
        """Each route budget seen so far, with what is spent or reserved in its current
        window (per caller for a caller budget, from the callers seen in reports)."""
        found: list[dict[str, Any]] = []
        groups = await self.insights.counters.groups()
        routes = {(label, policy) for _, policy, label in self._policies.values() if policy.budgets}
        for label, policy in sorted(routes, key=lambda item: item[0]):
            callers = sorted({caller for caller, route, _ in groups if route == label and caller})
            for budget in policy.budgets:
                window = budget.window
                base = {
                    "route": label, "per": budget.per, "limit_usd": budget.limit_usd,
                    "window": window if isinstance(window, str) else f"{window:g} s",
                    "downgrade_at_usd": budget.threshold_usd,
                }
                single = RoutePolicy(budget=budget)
                for caller in callers if budget.per == "caller" else [None]:
                    used = await self.guard.used(single, route=label, caller=caller)
                    found.append({**base, "caller": caller, "spent_usd": used.get(f"{budget.per}:budget")})
                if budget.per == "caller" and not callers:
                    found.append({**base, "caller": None, "spent_usd": None})
        return found

    def inspector(self, *, key: str | None = None, authorize: Authorize | None = None) -> InspectionApp:
        """The inspection app (JSON and the dashboard page), to mount in the application:
        `app.mount("/gate", gateway.inspector(key=os.environ["GATE_INSPECT_KEY"]))`.
        It needs `key` or `authorize` (a check on the Starlette `Request`)."""
        from .insights._router import InspectionApp

        return InspectionApp(self.insights, self.cooldowns, self.budgets, key=key, authorize=authorize)

    # -- lifecycle ---------------------------------------------------------------------

    def _client(self) -> Transport:
        """The transport every provider sends through, made on first use: the user's
        `httpx.AsyncClient` as given, an httpx client over their httpx `transport`, or
        else the gateway's own aiohttp pool, spoken directly (the cheapest)."""
        if self._pool is None:
            from .providers.transport._httpx import HttpxTransport, default_http_client

            if self._http_client is not None:
                self._pool = HttpxTransport(self._http_client)
                return self._pool
            if self._transport is not None:
                client = default_http_client(self._max_connections, self._transport)
                self._pool = HttpxTransport(client, owned=True)
            else:
                from .providers.transport._aiohttp import AiohttpTransport

                self._pool = AiohttpTransport(self._max_connections)
            self._loop = asyncio.get_running_loop()  # a pool the gateway made is bound to it
        return self._pool

    def _ready(self) -> bool:
        """Whether calls may go out now without `start` (it has run, on this event loop)."""
        return self._started and (self._loop is None or self._loop is asyncio.get_running_loop())

    async def start(self, app: Any = None) -> None:
        """Read API keys and build providers; with `app`, check every route policy in it."""
        if app is not None:
            for endpoint in iter_endpoints(app):
                if policy_of(endpoint) is not None:
                    self._resolve(endpoint, None)
        if self._started:
            if self._loop is not None and self._loop is not asyncio.get_running_loop():
                self._moved_loop()
            return
        self.registry.build_providers(
            os.environ if self._env is None else self._env, self._client, self.upstream_limits
        )
        self._started = True

    def _moved_loop(self) -> None:
        """A call on another event loop than the one the HTTP pool was made on: a gateway
        used without its lifespan by a server or test client that runs requests in new
        loops. A pool cannot move between loops: fail at once, before any upstream is
        called, and say what to do."""
        raise ConfigError(
            "this Gateway was started on another event loop, and its HTTP pool cannot move "
            "between loops: open it with the app's lifespan (FastAPI(lifespan=gateway.lifespan), "
            "Starlette(lifespan=gateway.lifespan), Litestar's GatePlugin; with Starlette's "
            "TestClient, `with TestClient(app)`), or `async with gateway:` in the loop that "
            "makes the calls"
        )

    @property
    def state(self) -> StateStore:
        """Where budgets, limits, breakers, latency and experiment counts live."""
        return self.router.store

    async def aclose(self) -> None:
        """Close the HTTP pool (when the gateway made it) and the providers, flush the
        telemetry buffered so far (bounded: a stopping server does not hang on it), and
        close the state store's connections (a shared store reconnects when used again)."""
        # In a thread: an exporter waiting on a slow collector must not stall the loop.
        await asyncio.to_thread(self.telemetry.flush)
        await self.registry.aclose()
        await self.guard.flush()
        await self.router.store.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()
        self._started = False
        self._loop = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """An ASGI lifespan: `FastAPI(lifespan=gateway.lifespan)`."""
        await self.start(app)
        try:
            yield
        finally:
            await self.aclose()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- requests ----------------------------------------------------------------------

    def new_context(self, scope: MutableMapping[str, Any]) -> RoutingContext:
        """The routing context of a new request."""
        return RoutingContext(self, scope)

    def _route_label(self, endpoint: Any, scope: MutableMapping[str, Any] | None) -> str:
        path = route_template(scope) if scope else None
        path = path or next(iter(getattr(endpoint, "paths", ()) or ()), None)
        return str(path) if path else route_name(endpoint)

    def _resolve(self, endpoint: Any, scope: MutableMapping[str, Any] | None) -> tuple[RoutePolicy, str]:
        cached = self._policies.get(id(endpoint))
        if cached is not None and cached[0] is endpoint:
            return cached[1], cached[2]
        declared = policy_of(endpoint) if endpoint is not None else None
        label = self._route_label(endpoint, scope) if endpoint is not None else "(unrouted)"
        if declared is None:
            policy = self.default_policy
        else:
            policy = self.validate_policy(declared, route_name(endpoint))
            label = declared.name or label
        # Only a request's scope knows the route's path: a label found at startup (without
        # one) would name every span of the route after the function instead.
        if endpoint is not None and scope is not None:
            self._policies[id(endpoint)] = (endpoint, policy, label)
        return policy, label

    def bind(self, context: RoutingContext, scope: MutableMapping[str, Any]) -> Gate:
        """The client bound to `context` and the policy of the route matched in `scope`."""
        policy, route = self._resolve(scope.get("route_handler") or scope.get("endpoint"), scope)
        return Gate(self, context, policy, route)

    def client(
        self, policy: RoutePolicy | None = None, *, route: str = "background",
        caller: str | None = None,
    ) -> Gate:
        """A client for work outside a request (jobs, scripts), with its own context."""
        context = RoutingContext(self, {"type": "gate_mw", "headers": []})
        if caller is not None:  # a new context has none
            context.caller = caller
        resolved = self.default_policy if policy is None else self.validate_policy(policy, route)
        return Gate(self, context, resolved, route)

    def report_misconfigured(self, deployment: Deployment, error: UpstreamError) -> None:
        """Log, once per deployment, an upstream that refuses us for a config reason."""
        if deployment.id in self._reported:
            return
        self._reported.add(deployment.id)
        logger.error(
            "gate_mw: deployment %s (%s, model %s) answered %s: %s; skipping it. "
            "Check its api_key_env, api_base and model id.",
            deployment.id, deployment.system, deployment.upstream_model,
            error.status or error.kind.value, error,
        )

