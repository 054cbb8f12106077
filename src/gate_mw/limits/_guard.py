"""The guards a call passes before and after routing: budgets, rate limits and the
response cache, in one store round trip before the call and one after."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..chat._tokens import estimate_messages
from ..errors import BudgetExceeded, RateLimited
from ..routing._request import DEFAULT_OUTPUT_TOKENS
from ..state import Check, Writes
from ._budget import Budget
from ._cache import ResponseCache, from_entry, request_key, to_entry
from ._rate import Limit
from ._windows import CALENDAR, calendar_window, subject

if TYPE_CHECKING:
    from .._registry import Deployment
    from ..policy import RoutePolicy
    from ..providers import ChatRequest
    from ..results import ChatResult
    from ..state import StateStore
    from ._cache import CacheMode

__all__ = ["Guard", "Ticket"]

_MINUTE = 60.0
_MARGIN = 60.0  # calendar counters outlive their window by this much (clock skew)


class _Taken(NamedTuple):
    """One check of a call and what it means."""

    label: str  # e.g. "caller:requests", "route:budget"
    kind: str  # requests, tokens, usd
    rule: Limit | Budget
    check: Check
    ends: float | None  # calendar windows: epoch end


class Ticket:
    """What a call reserved and read before its attempts."""

    __slots__ = (
        "cache_entry", "cache_key", "cache_mode", "deployment_taken", "downgraded", "reads", "taken",
        "tokens", "usd", "used",
    )

    def __init__(self) -> None:
        # Empty tuples until something is taken: most calls take nothing, and a ticket
        # lives as long as its call.
        self.taken: Sequence[_Taken] = ()
        #: Deployment limits taken by attempts: (deployment id, check)
        self.deployment_taken: list[tuple[str, _Taken]] | tuple[()] = ()
        self.used: tuple[float, ...] = ()
        self.usd = 0.0  # reserved per USD check
        self.tokens = 0.0
        self.downgraded = False
        self.reads: dict[str, Any] = {}
        self.cache_key: str | None = None
        self.cache_entry: dict[str, Any] | None = None
        self.cache_mode: CacheMode = "use"


class Guard:
    """Budgets, rate limits and the cache of one gateway, on its state store."""

    def __init__(
        self, store: StateStore, cache: ResponseCache, rules: Sequence[Limit | Budget] = ()
    ) -> None:
        self.store = store
        self.cache = cache
        #: Budgets and limits of every route (`Gateway(limits=...)`), before the route's own.
        self.rules = tuple(rules)
        self._deployment_rules = tuple(
            rule for rule in self.rules if isinstance(rule, Limit) and rule.per == "deployment"
        )
        self._flights: dict[str, asyncio.Future[ChatResult]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def spawn(self, write: Coroutine[Any, Any, None]) -> None:
        """Run a store write no caller waits for (held here until it is done)."""
        task = asyncio.get_running_loop().create_task(write)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def flush(self) -> None:
        """Wait for writes no caller waited for: released reservations and the store's
        writes behind calls."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.store.flush()

    # -- before ------------------------------------------------------------------------

    def _checks(
        self, policy: RoutePolicy, route: str, caller: str | None, usd: float, tokens: float, now: float
    ) -> list[_Taken]:
        taken: list[_Taken] = []
        rules: list[Limit | Budget] = [*self.rules, *policy.limits, *policy.budgets]
        for rule in rules:
            if rule.per == "deployment" or (rule.per == "caller" and caller is None):
                continue
            who = subject(rule.per, caller if rule.per == "caller" else route)
            taken.append(_take(rule, who, usd, tokens, now))
        return taken

    async def before(
        self, policy: RoutePolicy, route: str, caller: str | None, request: ChatRequest,
        deployments: Sequence[Deployment], *, reads: Sequence[str] = (), identity: tuple[Any, ...] = (),
        cache_mode: CacheMode = "use", stream: bool = False, request_id: str | None = None,
    ) -> Ticket:
        """Reserve the call's budgets and limits, and read `reads` and the cache, in one
        round trip. Raises `BudgetExceeded` or `RateLimited` when one has no room."""
        ticket = Ticket()
        store = self.store
        cache = policy.cache
        all_reads = reads
        if cache is not None and cache_mode != "bypass" and (cache.stream or not stream):
            ticket.cache_mode = cache_mode
            ticket.cache_key = request_key(request, identity, caller if cache.scope == "caller" else None)
            if cache_mode == "use":
                if self.cache.backend == "memory":
                    ticket.cache_entry = self.cache.get(ticket.cache_key)
                else:
                    all_reads = [*reads, ticket.cache_key]
        if not (self.rules or policy.limits or policy.budget):
            # Nothing to reserve (most routes): a plain read (breakers, cache), if any.
            if all_reads:
                values = await store.get_many(all_reads)
                if all_reads is reads:  # no cache entry among them
                    ticket.reads = dict(zip(reads, values, strict=True))
                else:
                    self._found(ticket, all_reads, values)
            return ticket
        now = store.clock()
        ticket.usd, ticket.tokens = _estimate(request, deployments)
        ticket.taken = self._checks(policy, route, caller, ticket.usd, ticket.tokens, now)
        if not ticket.taken:  # only per-deployment limits, taken by the attempts
            if all_reads:
                self._found(ticket, all_reads, await store.get_many(all_reads))
            return ticket
        verdict = await store.reserve([t.check for t in ticket.taken], all_reads)
        self._found(ticket, all_reads, verdict.reads)
        ticket.used = verdict.used
        if verdict.refused is not None:
            raise _refusal(ticket.taken[verdict.refused], verdict.used[verdict.refused], now, request_id)
        for taken, used in zip(ticket.taken, verdict.used, strict=True):
            rule = taken.rule
            if isinstance(rule, Budget) and (threshold := rule.threshold_usd) is not None:
                before = used - taken.check.amount
                ticket.downgraded = ticket.downgraded or before >= threshold - 1e-12
        return ticket

    def _found(self, ticket: Ticket, reads: Sequence[str], values: Sequence[Any]) -> None:
        """What the reads before the call found: the cached answer (a store cache), the rest."""
        found = dict(zip(reads, values, strict=True))
        if ticket.cache_key is not None and self.cache.backend == "store" and ticket.cache_mode == "use":
            ticket.cache_entry = found.pop(ticket.cache_key, None)
        ticket.reads = found

    async def used(
        self, policy: RoutePolicy, *, route: str, caller: str | None = None
    ) -> dict[str, float]:
        """What each budget and limit of `policy` has taken now (USD, requests, tokens),
        by label (`caller:budget`, `route:requests`...), reservations in flight included."""
        now = self.store.clock()
        taken = self._checks(policy, route, caller, 0.0, 0.0, now)
        values = await self.store.get_many([t.check.key for t in taken])
        found: dict[str, float] = {}
        for item, value in zip(taken, values, strict=True):
            check, current = item.check, float(value or 0.0)
            if check.period > 0:  # a GCRA: the time still ahead, in the limit's units
                current = max(0.0, current - now) * check.limit / check.period
            found[item.label] = current
        return found

    def deployment_rules(self, policy: RoutePolicy, deployment: Deployment, usage: bool) -> list[Limit]:
        """The limits of one deployment on this route: the route's `per="deployment"`
        limits and, for the `usage` strategy, the deployment's own `rpm` and `tpm`."""
        rules = [*self._deployment_rules, *(rule for rule in policy.limits if rule.per == "deployment")]
        entry = deployment.entry
        if usage and entry.rpm is not None:
            rules.append(Limit(rpm=entry.rpm, per="deployment"))
        if usage and entry.tpm is not None:
            rules.append(Limit(tpm=entry.tpm, per="deployment"))
        return rules

    async def take_deployment(
        self, ticket: Ticket, deployment: Deployment, rules: Sequence[Limit]
    ) -> str | None:
        """Take one attempt's share of a deployment's limits; why not, if it is at one (one
        round trip, only for deployments with limits)."""
        now = self.store.clock()
        who = subject("deployment", deployment.id)
        taken = [_take(rule, who, ticket.usd, ticket.tokens, now) for rule in rules]
        verdict = await self.store.reserve([t.check for t in taken])
        if verdict.refused is not None:
            refused = taken[verdict.refused]
            return f"at its {refused.kind} limit ({refused.check.limit:g})"
        if not ticket.deployment_taken:
            ticket.deployment_taken = []
        for item in taken:
            ticket.deployment_taken.append((deployment.id, item))
        return None

    def headers(self, ticket: Ticket) -> list[tuple[bytes, bytes]]:
        """`x-ratelimit-*` headers of the tightest rate limit of each kind."""
        now = self.store.clock()
        best: dict[str, tuple[float, float, float]] = {}
        for taken, used in zip(ticket.taken, ticket.used, strict=True):
            if isinstance(taken.rule, Budget):
                continue
            limit = taken.check.limit
            remaining = max(0.0, limit - used)
            reset = _reset(taken, used, now)
            if taken.kind not in best or remaining < best[taken.kind][1]:
                best[taken.kind] = (limit, remaining, reset)
        headers: list[tuple[bytes, bytes]] = []
        for kind, (limit, remaining, reset) in best.items():
            fmt = "{:.6f}" if kind == "usd" else "{:.0f}"
            if kind != "usd":
                remaining //= 1
            headers += [
                (f"x-ratelimit-limit-{kind}".encode(), fmt.format(limit).encode()),
                (f"x-ratelimit-remaining-{kind}".encode(), fmt.format(remaining).encode()),
                (f"x-ratelimit-reset-{kind}".encode(), f"{reset:.3f}s".encode()),
            ]
        return headers

    # -- cache ---------------------------------------------------------------------------

    def hit(self, ticket: Ticket, *, request_id: str, latency_s: float, arm: str | None) -> ChatResult | None:
        """The cached answer the call found, as this request's result (cost 0), if any."""
        entry = ticket.cache_entry
        if entry is None:
            return None
        return from_entry(entry, request_id=request_id, latency_s=latency_s, arm=arm)

    def flight(self, ticket: Ticket) -> asyncio.Future[ChatResult] | None:
        """Single flight: the answer of an identical call in progress, if one is."""
        return None if ticket.cache_key is None else self._flights.get(ticket.cache_key)

    def lead(self, ticket: Ticket) -> asyncio.Future[ChatResult] | None:
        """Single flight: this call goes upstream; identical calls follow its future."""
        if ticket.cache_key is None:
            return None
        future: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._flights[ticket.cache_key] = future
        return future

    def land(self, ticket: Ticket, future: asyncio.Future[ChatResult], result: ChatResult | None,
             error: BaseException | None) -> None:
        """Single flight: the leading call ended; hand its answer (or error) to followers."""
        assert ticket.cache_key is not None
        if self._flights.get(ticket.cache_key) is future:
            del self._flights[ticket.cache_key]
        if future.done():
            return
        if result is not None:
            future.set_result(result)
        else:
            future.set_exception(error or RuntimeError("the leading call was cancelled"))
            future.exception()  # retrieved: followers that left must not warn

    # -- after ---------------------------------------------------------------------------

    def settle(
        self, ticket: Ticket, writes: Writes, result: ChatResult | None, *, ok: bool, ttl: float | None
    ) -> None:
        """Settle reservations to the actual cost and tokens (releasing the rest), and
        store a complete answer in the cache; into `writes`, sent in one round trip."""
        if ticket.taken or ticket.deployment_taken:
            self._settle_taken(ticket, writes, result)
        if ticket.cache_key is not None and ok and ttl and result is not None and not result.cached:
            if result.finish_reason not in (None, "stop", "end_turn", "length", "tool_calls", "tool_use"):
                return
            entry = to_entry(result)
            if self.cache.backend == "memory":
                self.cache.put(ticket.cache_key, entry, ttl)
            elif self.cache.fits(entry):
                writes.put(ticket.cache_key, entry, ttl)


    @staticmethod
    def _settle_taken(ticket: Ticket, writes: Writes, result: ChatResult | None) -> None:
        """Settle what the call took to its actual cost and tokens, releasing the rest."""
        cost = 0.0 if result is None or result.cached else (result.cost_usd or 0.0)
        tokens = 0.0 if result is None or result.cached else float(result.usage.total_tokens)
        answered = None if result is None or result.cached else result.deployment
        settled = [(None, taken) for taken in ticket.taken] + list(ticket.deployment_taken)
        for deployment, taken in settled:
            check = taken.check
            paid = deployment is None or deployment == answered  # other attempts used nothing
            actual = 1.0 if taken.kind == "requests" else (
                (cost if taken.kind == "usd" else tokens) if paid else 0.0
            )
            delta = actual - check.amount
            if delta:
                writes.add(check.key, _units(check, delta), check.period or check.ttl)


def _take(rule: Limit | Budget, who: str, usd: float, tokens: float, now: float) -> _Taken:
    """The check of one limit or budget for the subject `who`."""
    per = rule.per
    if isinstance(rule, Budget):
        kind, label, limit, amount = "usd", f"{per}:budget", rule.limit_usd, usd
        window, base = rule.window, f"bud:{who}"
    else:
        kind, label, limit = rule.kind, f"{per}:{rule.kind}", rule.amount
        amount = 1.0 if kind == "requests" else tokens if kind == "tokens" else usd
        window = rule.window if kind == "usd" else _MINUTE
        base = f"rl:{who}:{kind}"
    if isinstance(window, str) and window in CALENDAR:
        window_id, ends = calendar_window(window, rule.timezone, now)
        key = f"{base}:{window}:{rule.timezone}:{window_id}"
        return _Taken(label, kind, rule, Check(key, limit, amount, 0.0, ends - now + _MARGIN), ends)
    seconds = float(window)
    return _Taken(label, kind, rule, Check(f"{base}:{seconds:g}", limit, amount, seconds, seconds), None)


def _estimate(request: ChatRequest, deployments: Sequence[Deployment]) -> tuple[float, float]:
    """The most the call may cost and the tokens it is expected to use, over its
    candidates. Cost assumes the longest answer allowed (a default when nothing bounds
    it), so that a budget holds; tokens count the output bound only when one is set, since
    they are settled to the actual count right after."""
    prompt = estimate_messages(request.messages)
    usd, tokens = 0.0, 0.0
    for deployment in deployments:
        bound = request.max_tokens or deployment.entry.max_output_tokens
        tokens = max(tokens, float(prompt + (bound or 0)))
        if deployment.price is not None:
            usd = max(usd, deployment.price.estimate(prompt, bound or DEFAULT_OUTPUT_TOKENS))
    return usd, tokens


def _units(check: Check, amount: float) -> float:
    """`amount` in the counter's units: a GCRA counts time."""
    return amount * check.period / check.limit if check.period > 0 else amount


def _reset(taken: _Taken, used: float, now: float) -> float:
    """Seconds until the counter is empty again."""
    if taken.ends is not None:
        return max(0.0, taken.ends - now)
    check = taken.check
    return max(0.0, used * check.period / check.limit)


def _refusal(taken: _Taken, used: float, now: float, request_id: str | None) -> BudgetExceeded | RateLimited:
    check = taken.check
    if taken.ends is not None:
        wait = max(0.0, taken.ends - now)
    else:  # until enough has leaked for this amount (or the whole period if it never fits)
        wait = min(check.period, max(0.0, (used + check.amount - check.limit) * check.period / check.limit))
    if isinstance(taken.rule, Budget):
        return BudgetExceeded(
            f"{taken.label}: ${used:.6f} of ${check.limit:g} spent or reserved; this call may cost "
            f"${check.amount:.6f}",
            limit=taken.label, limit_value=check.limit, used=used, reset=wait, request_id=request_id,
            status=taken.rule.status,
        )
    return RateLimited(
        f"{taken.label}: {used:g} of {check.limit:g} used", limit=taken.label, limit_value=check.limit,
        used=used, reset=wait, request_id=request_id,
    )
