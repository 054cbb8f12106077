"""Streamed calls: fallback until the first token, then a stream committed to one model,
under idle and total time limits, whose usage, cost and spans are settled exactly once
however it ends (done, failed, closed early or cancelled by a client disconnect)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from ._attempts import record_failure, timeout_of, walk
from ._stream_ends import DONE, NO_END, StreamEnds
from ._stream_timer import StreamTimer
from .chat._model import StreamDone, TextDelta, ToolCallDelta
from .errors import ErrorKind, UpstreamError
from .providers._base import StreamEnd, StreamEvent
from .providers._errors import error_from_exception
from .results import Attempt, ChatResult
from .telemetry._current import attempt_cancelled, error_type_of

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.trace import Span

    from ._chain import Call
    from ._registry import Deployment
    from .routing._health import Admission

__all__ = ["GateStream", "replay"]

_NEW, _OPENING, _OPEN, _DONE = 0, 1, 2, DONE


class GateStream(StreamEnds):
    """A streamed answer: iterate it for text deltas, then read `result`.

        async with gate.stream(messages) as stream:
            async for text in stream:
                ...
        stream.result.usage, stream.result.cost_usd

    Opening (`open()`, `async with`, or the first iteration) walks the route's chain until
    a model sends its first token: failures before that fall back unseen, and if every
    model fails the typed error of `Gate.chat` is raised. From that token on the stream is
    committed; a later failure (cut connection, error event, idle timeout, deadline) ends
    the iteration with `StreamInterrupted`, never with a silent clean end. `aclose()` (or
    leaving the `async with`) closes the upstream response at once. One consumer at a time.
    """

    __slots__ = ("_chunk_attributes", "_first", "_last_chunk", "_pending", "_replayed")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._state = _NEW
        self._attempts: list[Attempt] = []
        self._parts: list[str] = []
        self._first: StreamEvent | None = None  # read at the commit point, not yet returned
        self._events: AsyncGenerator[StreamEvent, None] | None = None
        self._deployment: Deployment | None = None
        self._span: Span | None = None
        self._route_span: Span | None = None
        self._started = 0.0  # perf_counter when the committed attempt began
        self._admission: Admission | None = None  # the committed attempt's, for its outcome
        self._ttfc = 0.0
        self._error: UpstreamError | None = None  # why the committed stream failed, if it did
        self._last_chunk = 0.0  # perf_counter when the last chunk arrived
        self._chunk_attributes: Mapping[str, Any] = {}
        self._disconnected = False
        # After the commit point: the idle and total limits, if the policy sets any.
        self._timer: StreamTimer | None = None
        #: The complete answer, once the stream has ended normally.
        self.result: ChatResult | None = None
        # What an interrupted or abandoned stream still cost, for budgets and usage.
        self._spent: ChatResult | None = None
        #: An answer from the response cache, replayed instead of an upstream stream.
        self._replayed: ChatResult | None = None
        self._cost_source: str | None = None
        self._pending = True
        call.context.calls_made().streaming += 1

    # -- public ------------------------------------------------------------------------

    @property
    def model(self) -> str | None:
        """The alias of the model answering, once the stream is committed."""
        if self._replayed is not None:
            return self._replayed.model
        return None if self._deployment is None else self._deployment.alias

    @property
    def request_id(self) -> str:
        return self._call.request_id

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return tuple(self._attempts)

    async def open(self) -> None:
        """Walk the chain until a model sends its first token (or ends at once, empty).

        Raises what `Gate.chat` raises when none does (`AllAttemptsFailed`,
        `DeadlineExceeded`, `RequestRejected`, `NoCandidates`). Does nothing if already
        opened.
        """
        if self._state != _NEW:
            return
        self._state = _OPENING
        call = self._call
        call.started = perf_counter()
        try:
            await call.gateway.start()
            hit = await call.prepare()  # reserve up front; settled when the stream ends or is cut
        except BaseException:
            self._state = _DONE
            self._unpend(None)
            raise
        telemetry = call.gateway.telemetry
        if hit is not None:
            with telemetry.route_span(call.route, call.route_attributes):
                self._replayed, self._events = hit, replay(hit.text)
                self._unpend(hit.model)
                self._state = _OPEN
            return
        route_span = self._route_span = telemetry.start_route(call.route, call.route_attributes())
        try:
            # Current only while walking, so the attempt spans are its children; it is
            # ended by whatever ends the stream, maybe in another task.
            with trace.use_span(route_span):
                await walk(call, self._attempts, self._attempt)
        except BaseException as exc:
            self._state = _DONE
            self._unpend(None)
            if not isinstance(exc, Exception):
                attempt_cancelled(route_span, self._cancel_reason())
                raise
            route_span.set_attribute("error.type", error_type_of(exc))
            route_span.end()  # use_span recorded the error
            await call.settle(None)
            raise
        deployment = self._deployment
        assert deployment is not None
        self._unpend(deployment.alias)
        if route_span.is_recording():
            route_span.set_attribute("gate.deployment", deployment.id)
            route_span.set_attribute("gate.attempts", len(self._attempts))
        self._state = _OPEN

    def mark_disconnected(self) -> None:
        """Note that the client went away: the cancellation or close that follows is
        recorded as `error.type=client_disconnect` rather than `cancelled`."""
        self._disconnected = True

    async def aclose(self) -> None:
        """Stop now: close the upstream response (no more tokens paid for) and end the
        spans. Safe at any point and more than once."""
        if self._state == _NEW:
            self._state = _DONE
            self._unpend(None, record=False)
        elif self._state == _OPEN and self._replayed is None:
            self._abort()
        await self._finish()

    def __aiter__(self) -> GateStream:
        return self

    async def __anext__(self) -> str:
        event = await self._step()
        while type(event) is not str:  # tool-call pieces: kept for the result, not text
            event = await self._step()
        return event

    async def events(self) -> AsyncIterator[TextDelta | ToolCallDelta | StreamDone]:
        """Every event of the stream, typed: `TextDelta`s and `ToolCallDelta`s as they
        come, then one `StreamDone` with the result (tool calls assembled, `parsed`
        validated). Raises as iterating for text does."""
        while True:
            try:
                event = await self._step()
            except StopAsyncIteration:
                break
            yield TextDelta(event) if isinstance(event, str) else event
        if self.result is not None:  # None: closed before its end
            yield StreamDone(self.result)

    async def _step(self) -> str | ToolCallDelta:
        event = self._first
        if event is not None:
            self._first = None
        elif self._state == _OPEN:
            events, timer = self._events, self._timer
            assert events is not None
            if timer is not None:
                timer.reading()
            try:
                event = await events.__anext__()
            except BaseException as exc:
                error = self._failure(exc, None if timer is None else timer.read())
                if error is None:
                    self._abort()
                    await self._finish()
                    raise
                interrupted = self._interrupt(error)
                await self._finish()
                raise interrupted from None
            if timer is not None:
                timer.read()
        elif self._state == _NEW:
            await self.open()
            return await self._step()
        else:
            raise StopAsyncIteration
        if type(event) is str:
            if self._parts and self._replayed is None:  # a chunk after the first: time since the one before
                now = perf_counter()
                self._call.gateway.telemetry.next_chunk(now - self._last_chunk, self._chunk_attributes)
                self._last_chunk = now
            self._parts.append(event)
            return event
        if type(event) is ToolCallDelta:
            return event
        sent: object = event  # what the provider sent, whatever its annotation says
        if not isinstance(sent, StreamEnd):  # a provider breaking its contract
            if isinstance(sent, str):
                self._parts.append(str(sent))
                return str(sent)
            broken = UpstreamError(ErrorKind.PROTOCOL, f"the provider sent a {type(sent).__name__}")
            interrupted = self._interrupt(broken)
            await self._finish()
            raise interrupted
        if self._replayed is not None:
            self.result = self._replayed
            await self._finish()
            raise StopAsyncIteration
        try:
            self._complete(sent)
        except UpstreamError as error:  # the answer did not fit the call's output=
            interrupted = self._interrupt(error, sent)
            await self._finish()
            raise interrupted from None
        await self._finish()
        raise StopAsyncIteration

    async def __aenter__(self) -> GateStream:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- before the commit point -------------------------------------------------------

    async def _attempt(
        self, deployment: Deployment, routing: dict[str, Any], attempts: list[Attempt]
    ) -> None:
        """Open one deployment's stream and read up to its first token, or fail."""
        call = self._call
        telemetry = call.gateway.telemetry
        provider = deployment.provider
        assert provider is not None, "the gateway builds providers before any call"
        limit = timeout_of(call, deployment)
        ttft = call.policy.ttft
        if ttft is not None and (limit is None or ttft < limit):
            limit = ttft
        span = telemetry.start_attempt(deployment, call.request, routing, stream=True)
        started = perf_counter()
        events = provider.stream(deployment.upstream_model, call.request)
        token = telemetry.activate(span)  # the request goes out on the first read
        try:
            async with asyncio.timeout(limit):
                first = await anext(events)
        except BaseException as exc:
            telemetry.deactivate(token)
            await events.aclose()
            if isinstance(exc, TimeoutError):
                error: UpstreamError | None = UpstreamError(
                    ErrorKind.TIMEOUT, f"no first token within {limit:.3g}s"
                )
            else:
                error = self._failure(exc, None)
            if error is None:
                attempt_cancelled(span, self._cancel_reason())
                raise
            record_failure(call, deployment, span, error, started, attempts)
            raise error from None
        telemetry.deactivate(token)
        ttfc = perf_counter() - started
        self._last_chunk = started + ttfc
        self._chunk_attributes = telemetry.chunk_attributes(deployment, self._extra())
        telemetry.first_chunk(span, deployment, ttfc, extra=self._extra())
        attempts.append(Attempt(deployment.alias, deployment.id, provider.system, "ok", ttfc, status=200))
        self._deployment, self._span, self._events = deployment, span, events
        self._started, self._first, self._ttfc = started, first, ttfc
        self._admission = call.admission
        idle = call.policy.idle_timeout  # the policy may be an experiment arm's
        if idle is not None or call.deadline is not None:
            deadline = None
            if call.deadline is not None:
                deadline = asyncio.get_running_loop().time() + (call.deadline - perf_counter())
            self._timer = StreamTimer(idle, deadline, call.policy.deadline)

    def _unpend(self, model: str | None, *, record: bool = True) -> None:
        """The stream committed to `model` or failed (None): account it for the headers."""
        if self._pending:
            self._pending = False
            calls = self._call.context.calls_made()
            calls.streaming -= 1
            if record:
                calls.record_stream(tuple(self._attempts), model)

    # -- after the commit point --------------------------------------------------------

    def _failure(self, exc: BaseException, task: asyncio.Task[Any] | None) -> UpstreamError | None:
        """The upstream failure `exc` stands for, or None for a cancellation to let through."""
        if isinstance(exc, UpstreamError):
            return exc
        if isinstance(exc, asyncio.CancelledError):
            return None if self._timer is None else self._timer.expired(task)
        if isinstance(exc, StopAsyncIteration):
            return UpstreamError(ErrorKind.PROTOCOL, "the stream stopped without its end event")
        if isinstance(exc, Exception):
            return error_from_exception(exc)
        return None


async def replay(text: str) -> AsyncGenerator[StreamEvent, None]:
    """A cached answer as a stream: token-sized chunks (up to four characters, with the
    whitespace before them), as providers send them, then the end."""
    for chunk in _CHUNKS.findall(text):
        yield chunk
        await asyncio.sleep(0)  # let the response go out chunk by chunk, as a stream would
    yield NO_END


_CHUNKS = re.compile(r"\s*\S{1,4}|\s+")
