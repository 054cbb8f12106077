"""The routing context of one request: who asks, under which id, until when, and what the
gateway did for it (read back by the middleware for the response headers)."""

from __future__ import annotations

import contextvars
import hashlib
import random
from collections.abc import Callable, MutableMapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gateway import Gateway
    from .policy import RoutePolicy
    from .results import Attempt, ChatResult

__all__ = ["SCOPE_KEY", "Calls", "RoutingContext", "current_context"]

#: The ASGI scope key holding the request's `RoutingContext`.
SCOPE_KEY = "gate_mw.context"

CallerResolver = Callable[[MutableMapping[str, Any]], "str | None"]

_current: contextvars.ContextVar[RoutingContext | None] = contextvars.ContextVar(
    "gate_mw_context", default=None
)


#: Caller keys longer than this are kept as a hash: state per caller stays small whatever
#: a client puts in its caller header.
MAX_CALLER_CHARS = 128


def caller_key(caller: str | None) -> str | None:
    """`caller` as routing state keeps it: as is when short, else `#` and a hash of it."""
    if caller is None or (len(caller) <= MAX_CALLER_CHARS and caller.isprintable()):
        return caller
    digest = hashlib.blake2b(caller.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return "#" + digest


# Request ids need to be unique, not unguessable: the module's generator (reseeded in each
# forked worker) spares the system call `secrets` makes.
_random_bits = random.getrandbits


def current_context() -> RoutingContext | None:
    """The routing context of the request being handled, if any."""
    return _current.get()


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RoutingContext:
    """Per-request routing state. Header-derived fields are read lazily, so a request that
    never calls a model pays only for creating this object."""

    __slots__ = (
        "_caller", "_caller_known", "_request_id", "arm", "calls", "deadline", "gateway", "scope", "started",
    )

    # Made for every request, model call or not: positional arguments and slots keep that
    # cheap (passing these by keyword made creating it half as costly again).
    def __init__(
        self, gateway: Gateway, scope: MutableMapping[str, Any], deadline: float | None = None
    ) -> None:
        self.gateway = gateway
        self.scope = scope
        self.started = perf_counter()
        self.deadline = deadline
        self._request_id: str | None = None
        self._caller: str | None = None
        self._caller_known = False  # resolved once: "no caller" is an answer too
        self.arm: str | None = None
        #: What the gateway did for the request; None until its first call.
        self.calls: Calls | None = None

    @property
    def request_id(self) -> str:
        """The incoming request id header, or a new random id."""
        if self._request_id is None:
            incoming = _header(self.scope, self.gateway.request_id_header)
            # 24 hex digits, as f"{bits:024x}" writes them in twice the time.
            self._request_id = incoming[:128] if incoming else _random_bits(96).to_bytes(12).hex()
        return self._request_id

    @property
    def caller(self) -> str | None:
        """The user/tenant key: set explicitly, or from the resolver or caller header;
        hashed when longer than `MAX_CALLER_CHARS` (see `caller_key`)."""
        if not self._caller_known:
            gateway = self.gateway
            if gateway.caller_resolver is not None:
                self._caller = caller_key(gateway.caller_resolver(self.scope))
            elif gateway.caller_header is not None:
                found = _header(self.scope, gateway.caller_header)
                # No caller header (most requests): nothing to shorten, no call for it.
                self._caller = None if found is None else caller_key(found)
            self._caller_known = True
        return self._caller

    @caller.setter
    def caller(self, value: str | None) -> None:
        """Set the caller; None leaves it to the resolver or header, as if never set."""
        self._caller = caller_key(value)
        self._caller_known = value is not None

    def header(self, name: bytes) -> str | None:
        """A header of the incoming request; `name` in lower case."""
        return _header(self.scope, name)

    def deadline_for(self, policy: RoutePolicy) -> float | None:
        """The absolute (perf_counter) deadline of a call under `policy` in this request."""
        own = None if policy.deadline is None else self.started + policy.deadline
        if self.deadline is None:
            return own
        return self.deadline if own is None else min(own, self.deadline)

    def calls_made(self) -> Calls:
        """The request's `Calls`, made on the first call."""
        calls = self.calls
        if calls is None:
            calls = self.calls = Calls()
        return calls

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """`x-gate-*` headers describing the calls made, for the middleware to add."""
        calls = self.calls_made()
        cost = "unknown" if calls.cost_unknown else f"{calls.cost_usd:.6f}"
        headers = [
            (b"x-gate-attempts", str(calls.attempts).encode()),
            (b"x-gate-cost-usd", cost.encode()),
            (b"x-request-id", self.request_id.encode("latin-1")),
        ]
        if calls.model is not None:
            headers.append((b"x-gate-model", calls.model.encode("latin-1")))
        if self.arm is not None:
            headers.append((b"x-gate-arm", self.arm.encode("latin-1")))
        headers.extend(calls.headers)
        return headers


class Calls:
    """The gateway calls of one request, as the response headers report them. Kept apart
    from `RoutingContext` so that a request that calls no model never makes one."""

    __slots__ = ("attempts", "cost_unknown", "cost_usd", "count", "headers", "model", "streaming")

    def __init__(self) -> None:
        self.count = 0
        self.attempts = 0
        self.model: str | None = None
        self.cost_usd = 0.0
        self.cost_unknown = False
        # Streams begun but not yet committed to a model: while any is, the middleware
        # holds the response head so that x-gate-model names the model that answers.
        self.streaming = 0
        #: Further headers the guards add: x-ratelimit-*, x-gate-cache, retry-after.
        self.headers: list[tuple[bytes, bytes]] = []

    def record(self, attempts: tuple[Attempt, ...], result: ChatResult | None) -> None:
        """Account one gateway call."""
        self.count += 1
        self.attempts += len(attempts)
        if result is not None:
            self.model = result.model
            self.add_cost(result.cost_usd)

    def record_stream(self, attempts: tuple[Attempt, ...], model: str | None) -> None:
        """Account a stream when it commits to `model` (None: it failed before). Its cost
        is known only when it ends, after the headers: they say "unknown"."""
        self.count += 1
        self.attempts += len(attempts)
        if model is not None:
            self.model = model
            self.cost_unknown = True

    def add_cost(self, cost: float | None) -> None:
        if cost is None:
            self.cost_unknown = True
        else:
            self.cost_usd += cost


#: Make a context current (`activate(context)` returns a token); undo with `deactivate(token)`.
#: The context variable's own methods, so the middleware pays no Python call for them.
activate = _current.set
deactivate = _current.reset
