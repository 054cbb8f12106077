"""`Proxy`: the OpenAI- and Anthropic-compatible endpoints over a gateway, as small ASGI
apps that every framework flavour mounts unchanged.

Each request: read the body (bounded), admit the caller (master key or virtual key), find
the policy its `model` names, call through a `Gate` on the request's routing context, and
answer in the API's own shapes, errors included. The `x-gate-*` headers say which model
answered, after how many attempts, at what cost; nothing else shows a fallback.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope

from .._context import SCOPE_KEY, RoutingContext
from .._events import openai_chunks
from .._json import loads
from .._streaming import GateStream
from ..client import Gate
from ..errors import ConfigError, GateError
from ..policy import RoutePolicy
from ..providers._base import ChatRequest, estimated_usage
from ._anthropic import message_body, message_events, read_messages
from ._asgi import Endpoint, Reply, Streamed
from ._errors import Api, ProxyError, error_body
from ._keys import KeyStore, VirtualKey, hash_key, key_rules
from ._litellm_limits import key_fields
from ._openai import ChatArgs, completion_body, read_chat
from ._settings import ProxySettings, from_env, settings_of

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = ["Proxy"]

logger = logging.getLogger("gate_mw.proxy")

_MASTER = VirtualKey(id="master", name="master key", caller="master", origin="config")
_MAX_KEYED = 4096


def with_key_rules(policy: RoutePolicy, key: VirtualKey) -> RoutePolicy:
    """`policy` as `key`'s caller runs it: the key's own limits replace the policy's
    per-caller limits of the same kind, and its budget the per-caller budgets (so one
    counter never serves two different limits). Route and global limits still apply."""
    kinds = {(rule.kind, rule.window) for rule in key.limits}
    limits = (
        *(rule for rule in policy.limits if rule.per != "caller" or (rule.kind, rule.window) not in kinds),
        *key.limits,
    )
    budgets = policy.budgets
    if key.budget is not None:
        budgets = (*(rule for rule in budgets if rule.per != "caller"), key.budget)
    return policy.model_copy(update={"limits": limits, "budget": budgets or None})


class Proxy:
    """The proxy over `gateway`. Settings come from the gateway file's `proxy:` section
    unless given; keys made by the admin API live in the gateway's state store."""

    def __init__(
        self,
        gateway: Gateway,
        settings: ProxySettings | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.gateway = gateway
        source = gateway.registry.source
        if settings is None:
            config = gateway.config
            settings = settings_of(None if config is None else config.proxy, source)
        self.settings = settings
        env = os.environ if env is None else env
        self._master = self._master_key(settings, env, source)
        self.keys = KeyStore(gateway.router.state.store, max_keys=settings.max_keys)
        for index, spec in enumerate(settings.keys):
            digest = spec.key_sha256
            if spec.key_env is not None:
                where = f"proxy.keys[{index}] ({spec.name})"
                digest = hash_key(from_env(env, spec.key_env, source=source, field="key_env", entry=where))
            assert digest is not None
            limits, budget = key_rules(spec.limits, spec.budget)
            self.keys.add_static(
                spec.name, digest, caller=spec.caller, models=spec.models, metadata=spec.metadata,
                limits=limits, budget=budget,
            )
        required = settings.require_key
        self.require_key = bool(self._master or self.keys.configured) if required is None else required
        self.created = int(time.time())
        self._policies = self._models()
        # (key id, model) -> the model's policy under the key's own limits; bounded.
        self._keyed: dict[tuple[str, str], RoutePolicy] = {}

    @staticmethod
    def _master_key(settings: ProxySettings, env: Mapping[str, str], source: str | None) -> str | None:
        if settings.master_key_env is not None:
            return from_env(env, settings.master_key_env, source=source, field="proxy.master_key_env")
        if settings.master_key is not None:
            logger.warning(
                "gate_mw: %s holds the proxy's master key itself; keep it in the environment "
                "(proxy.master_key_env, or os.environ/NAME in a LiteLLM file)",
                source or "the config",
            )
        return settings.master_key

    def _models(self) -> dict[str, RoutePolicy]:
        """What a request's `model` may name: named policies, then aliases, each an alias
        under the default policy's limits with its own deployments as the chain."""
        gateway = self.gateway
        models = dict(gateway.policies)
        base = gateway.default_policy
        for alias in gateway.registry.aliases:
            if alias not in models:
                policy = base.model_copy(update={"models": (alias,), "experiment": None, "name": alias})
                models[alias] = gateway.validate_policy(policy, f"model {alias}")
        return models

    # -- ASGI endpoints ---------------------------------------------------------------

    def endpoints(self) -> list[tuple[str, Endpoint]]:
        """`(path, endpoint)` pairs, paths relative to where the proxy is mounted."""
        post, get, delete = frozenset({"POST"}), frozenset({"GET", "HEAD"}), frozenset({"DELETE"})
        return [
            ("/chat/completions", Endpoint(self, "openai", post, self._chat)),
            ("/messages", Endpoint(self, "anthropic", post, self._messages)),
            ("/models", Endpoint(self, "openai", get, self._list_models)),
            ("/models/{model}", Endpoint(self, "openai", get, self._get_model)),
            ("/keys", Endpoint(self, "openai", post | get, self._keys)),
            ("/keys/{key_id}", Endpoint(self, "openai", delete, self._revoke)),
            ("/healthz", Endpoint(self, "openai", get, self._health)),
            ("/readyz", Endpoint(self, "openai", get, self._ready)),
        ]

    def context(self, scope: Scope) -> RoutingContext:
        """The request's routing context: GatewayMiddleware's, or a new one where the proxy
        is mounted without it."""
        context = scope.get(SCOPE_KEY)
        return context if isinstance(context, RoutingContext) else self.gateway.new_context(scope)

    def error(self, api: Api, exc: ProxyError, context: RoutingContext) -> Reply:
        """The answer to a failed request; secret-free, with the `x-gate-*` headers when a
        model was called."""
        if exc.status >= 500:
            logger.warning(
                "gate_mw proxy: request %s failed: %s %s", context.request_id, exc.code, exc.message
            )
        gate = self._gate_headers(context)
        # A refusal by a limit already put its Retry-After among the call's headers.
        named = {name for name, _ in gate}
        headers = [(n.encode(), v.encode()) for n, v in exc.headers if n.encode() not in named]
        return Reply(exc.status, error_body(api, exc), headers + gate)

    @staticmethod
    def _gate_headers(context: RoutingContext) -> list[tuple[bytes, bytes]]:
        calls = context.calls
        if calls is None or not calls.count:
            return [(b"x-request-id", context.request_id.encode("latin-1"))]
        return context.response_headers()

    # -- request parts ----------------------------------------------------------------

    async def _body(self, receive: Receive) -> Any:
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ProxyError(400, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ProxyError(413, f"the body is larger than {limit} bytes", code="request_too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            return loads(b"".join(chunks))
        except ValueError:
            raise ProxyError(400, "the body is not valid JSON", code="invalid_json") from None

    async def _caller(self, scope: Scope) -> VirtualKey | None:
        """The key the request carries (`Authorization: Bearer` or `x-api-key`); None when
        the proxy is open. 401 for a missing, unknown or revoked key."""
        if not self.require_key:
            return None
        secret = _secret(scope)
        if secret is None:
            raise ProxyError(
                401, "an API key is required: send Authorization: Bearer <key>", code="missing_api_key"
            )
        if self._master is not None and hmac.compare_digest(secret.encode(), self._master.encode()):
            return _MASTER
        key = await self.keys.resolve(secret)
        if key is None:
            raise ProxyError(401, "the API key is not valid or was revoked", code="invalid_api_key")
        return key

    def available(self, key: VirtualKey | None) -> list[str]:
        """The models `key` may name."""
        return [name for name in self._policies if key is None or key.allows(name)]

    def _policy(self, model: str, key: VirtualKey | None) -> RoutePolicy:
        policy = self._policies.get(model)
        if policy is None:
            listed = ", ".join(self.available(key)) or "none"
            raise ProxyError(
                404,
                f"The model `{model}` does not exist. Available models: {listed}",
                param="model",
                code="model_not_found",
            )
        if key is not None and not key.allows(model):
            raise ProxyError(
                403, f"this key may not use the model `{model}`", param="model", code="model_not_allowed"
            )
        if key is None or not key.own_rules:
            return policy
        keyed = self._keyed.get((key.id, model))
        if keyed is None:
            if len(self._keyed) >= _MAX_KEYED:
                self._keyed.clear()  # rebuilt on demand: cheap, and bounded whatever keys exist
            keyed = self._keyed[(key.id, model)] = with_key_rules(policy, key)
        return keyed

    async def _gate(
        self, scope: Scope, receive: Receive, context: RoutingContext, read: Callable[[Any], ChatArgs]
    ) -> tuple[Gate, ChatArgs]:
        key = await self._caller(scope)
        args = read(await self._body(receive))
        policy = self._policy(args.model, key)
        if key is not None:
            # Budgets, limits and experiments key on the caller: per virtual key, then.
            context.caller = key.caller
        return Gate(self.gateway, context, policy, args.model), args

    async def _open(self, gate: Gate, args: ChatArgs) -> GateStream:
        stream: GateStream = _call(gate.stream, args)
        await stream.open()  # falls back before any byte is sent; errors answer as errors
        return stream

    # -- handlers ---------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        gate, args = await self._gate(scope, receive, context, read_chat)
        if args.stream:
            stream = await self._open(gate, args)
            events = openai_chunks(
                stream, model=args.model, include_usage=args.include_usage, extension=False
            )
            return Streamed(stream, events, context.response_headers())
        result = await _call(gate.chat, args)
        return Reply(200, completion_body(result, args.model, int(time.time())), context.response_headers())

    async def _messages(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        gate, args = await self._gate(scope, receive, context, read_messages)
        if args.stream:
            stream = await self._open(gate, args)
            # Anthropic sends input tokens first; the upstream's count comes at the end.
            estimate = estimated_usage(ChatRequest(args.messages), "").input_tokens
            events = message_events(stream, args.model, estimate)
            return Streamed(stream, events, context.response_headers())
        result = await _call(gate.chat, args)
        return Reply(200, message_body(result, args.model), context.response_headers())

    def _model_object(self, name: str) -> dict[str, Any]:
        deployments = self.gateway.registry.by_alias.get(name)
        # A named policy is gate_mw's own; an alias belongs to its (first) provider.
        aliased = deployments is not None and name not in self.gateway.policies
        owner = deployments[0].entry.provider if deployments and aliased else "gate_mw"
        return {"id": name, "object": "model", "created": self.created, "owned_by": owner}

    async def _list_models(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        key = await self._caller(scope)
        return Reply(200, {"object": "list", "data": [self._model_object(n) for n in self.available(key)]})

    async def _get_model(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        key = await self._caller(scope)
        name = _path_param(scope, "model")
        if name not in self.available(key):
            self._policy(name, key)  # raises the 404 (or 403) a chat request would get
        return Reply(200, self._model_object(name))

    async def _admin(self, scope: Scope) -> None:
        if self._master is None:
            raise ProxyError(
                403, "the key admin API needs a master key (proxy.master_key_env)", code="no_master_key"
            )
        if await self._caller(scope) is not _MASTER:
            raise ProxyError(403, "only the master key may manage keys", code="not_master_key")

    async def _keys(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        await self._admin(scope)
        if scope["method"] != "POST":
            return Reply(200, {"object": "list", "data": [k.to_dict() for k in await self.keys.list()]})
        body = await self._body(receive)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            raise ProxyError(400, "give the key a name", param="name")
        models = body.get("models")
        if models is not None:
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise ProxyError(400, "models must be a list of model names", param="models")
            if unknown := [m for m in models if m not in self._policies]:
                raise ProxyError(400, f"unknown model {unknown[0]!r}", param="models", code="model_not_found")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ProxyError(400, "metadata must map names to strings", param="metadata")
        caller = body.get("caller")
        if caller is not None and not isinstance(caller, str):
            raise ProxyError(400, "caller must be a string", param="caller")
        try:
            limits, budget = key_rules(*key_fields(body))  # gate_mw's fields, or LiteLLM's
        except ValueError as exc:
            field = str(exc).partition(":")[0].partition("[")[0].partition(" ")[0]  # limits, budget...
            raise ProxyError(400, str(exc), param=field) from None
        try:
            secret, key = await self.keys.create(
                body["name"], caller=caller, models=models, metadata=metadata, limits=limits, budget=budget
            )
        except OverflowError as exc:
            raise ProxyError(409, str(exc), code="too_many_keys") from None
        return Reply(200, {"key": secret, **key.to_dict()})

    async def _revoke(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        await self._admin(scope)
        key = await self.keys.revoke(_path_param(scope, "key_id"))
        if key is None:
            raise ProxyError(404, "no key with this id was made by the admin API", code="key_not_found")
        return Reply(200, key.to_dict())

    async def _health(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        return Reply(200, {"status": "ok"})

    async def _ready(self, scope: Scope, receive: Receive, context: RoutingContext) -> Reply:
        """Ready when the gateway started (keys read) and some deployment is not cooling down."""
        try:
            await self.gateway.start()
        except ConfigError as exc:
            return Reply(503, {"status": "not ready", "reason": str(exc)})
        cooling = [c.deployment for c in await self.gateway.cooldowns() if c.state == "open"]
        ready = len(cooling) < len(self.gateway.registry.deployments)
        body = {
            "status": "ready" if ready else "not ready",
            "models": len(self._policies),
            "cooling_down": cooling,
        }
        return Reply(200 if ready else 503, body)


def _path_param(scope: Scope, name: str) -> str:
    """A path parameter; the path's last segment where the framework gives none (a
    Litestar mount)."""
    value = scope.get("path_params", {}).get(name)
    return str(value) if value else str(scope["path"]).rstrip("/").rsplit("/", 1)[-1]


def _secret(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value.decode("latin-1")
    return None


def _call(method: Callable[..., Any], args: ChatArgs) -> Any:
    """`gate.chat` or `gate.stream` with `args`; an argument it refuses is the caller's
    mistake (400), named as the client sent it."""
    try:
        return method(args.messages, **args.kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, GateError):
            raise
        raise ProxyError(400, str(exc), code="invalid_request") from None
