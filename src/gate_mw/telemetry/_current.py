"""Spans made current and ended: the route span of a call, an attempt's context sent
upstream, and the endings of failed or cancelled spans."""

from __future__ import annotations

from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ..errors import GateError

__all__ = ["CurrentSpan", "attach", "attempt_cancelled", "error_type_of", "span_failed"]


def attach(span: Span, context: otel_context.Context | None = None) -> object | None:
    """Make `span` current in `context` (the current one by default); None when it already
    is: without an SDK the API's tracer hands back the current span, and attaching it again
    would change nothing but cost a context."""
    if context is None:
        context = otel_context.get_current()
    if not span.is_recording() and span is trace.get_current_span(context):
        return None
    return otel_context.attach(trace.set_span_in_context(span, context))


class CurrentSpan:
    """`span`, current inside the block and ended after it, with an escaping exception
    recorded on it as `start_as_current_span` does. One small object where that makes three
    generator-based context managers, which a call holds for as long as its upstream takes."""

    __slots__ = ("_context", "_token", "span")

    def __init__(self, span: Span, context: otel_context.Context) -> None:
        self.span = span
        self._context = context

    def __enter__(self) -> Span:
        self._token = attach(self.span, self._context)
        return self.span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        span = self.span
        # Like the SDK, only Exception: GeneratorExit and cancellation are not errors.
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_attribute("error.type", error_type_of(exc))
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()


def error_type_of(exc: BaseException) -> str:
    """`error.type` for a failed call: the gate error's type (`all_attempts_failed`, ...),
    else the exception's qualified class name, as the conventions advise."""
    return exc.error_type if isinstance(exc, GateError) else type(exc).__qualname__


_CANCELLED = {"cancelled": "cancelled by the caller", "client_disconnect": "the client disconnected"}


def attempt_cancelled(span: Span, reason: str = "cancelled") -> None:
    """End a span whose caller went away: `reason` is "cancelled" (outer timeout, task
    cancelled, stream closed early) or "client_disconnect"."""
    span_failed(span, reason, _CANCELLED.get(reason, reason))


def span_failed(span: Span, error_type: str, message: str) -> None:
    """End `span` with an error status and `error.type`."""
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message))
    span.end()
