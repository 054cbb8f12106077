"""FakeUpstream: scripted OpenAI/Anthropic endpoints on a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from ._behaviours import Behaviour, Drop, Fault, Raw, Reply, Stream
from ._formats import (
    Api,
    Completion,
    completion_body,
    error_body,
    estimate_tokens,
    fault_body,
    openrouter_stream_error,
    prompt_messages,
    received_images,
    simulated_text,
    sse_format,
)
from ._http import HTTPConnection, HTTPRequest, HTTPServer

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FakeUpstream", "RecordedRequest"]

logger = logging.getLogger("gate_mw.testing")

# The chat path of every API and preset the fake speaks: OpenAI, Mistral, xAI, Together,
# LiteLLM (/v1); DeepSeek (no version); OpenRouter (/api/v1); Gemini's OpenAI-compatible
# endpoint; Groq; Fireworks; Anthropic. Azure's path is matched by _AZURE.
_ROUTES: dict[str, Api] = {
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
    "/api/v1/chat/completions": "openai",
    "/v1beta/openai/chat/completions": "openai",
    "/openai/v1/chat/completions": "openai",
    "/inference/v1/chat/completions": "openai",
    "/v1/messages": "anthropic",
}
_AZURE = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
_JSON_HEADERS = (("content-type", "application/json"),)
_SSE_HEADERS = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))
_WORD = re.compile(r"\s*\S+|\s+")
_STREAM_ERROR = {
    "openai": "The server had an error while processing your request.",
    "anthropic": "Overloaded",
}
_STOP_TIMEOUT = 10.0
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request that reached an API route, as received.

    ``json`` is the parsed body (``None`` if it was not valid JSON); ``model`` and ``stream``
    are read from it. Header names are lower-case.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any
    api: Api
    model: str | None
    stream: bool
    received_at: float

    @property
    def images(self) -> list[str]:
        """The images the request carried, as URLs (``data:`` URLs for inline ones), in
        either API's shape."""
        return received_images(self.api, self.json) if isinstance(self.json, dict) else []


@dataclass(frozen=True, slots=True)
class _AsyncWaiter:
    predicate: Callable[[], bool]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    # A closed loop raises RuntimeError; nobody can be waiting on its future any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future)


def _seconds(value: float) -> str:
    """``1.0 -> "1"``, ``0.5 -> "0.5"``: what providers put in ``Retry-After``."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _forced_tool(api: Api, body: Mapping[str, Any]) -> str | None:
    """The tool an Anthropic request forces (how structured output is asked for there)."""
    choice = body.get("tool_choice") if api == "anthropic" else None
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        name = choice.get("name")
        return name if isinstance(name, str) else None
    return None


def _authorized(api: Api, headers: Mapping[str, str], key: str, azure: bool) -> bool:
    if azure:
        return headers.get("api-key") == key
    if api == "openai":
        return headers.get("authorization") == f"Bearer {key}"
    return headers.get("x-api-key") == key


class FakeUpstream:
    """A fake OpenAI- and Anthropic-compatible LLM provider on ``127.0.0.1``.

    Use it as a (sync or async) context manager, or call :meth:`start`/:meth:`stop`; it serves
    from its own daemon thread and event loop, so it works under any test's loop, or none.
    Behaviours are picked per request by the body's ``"model"``: that model's script, then the
    ``None`` script, then the model's default, then the ``None`` default. All methods are
    thread-safe.

    ``require_api_key`` answers 401 unless the request carries that key (OpenAI-compatible:
    ``Authorization: Bearer``; Azure: ``api-key``; Anthropic: ``x-api-key``). Chat is served on
    each preset's path (``/v1``, ``/api/v1``, ``/v1beta/openai``, ``/openai/v1``,
    ``/inference/v1``, none); Azure's ``/openai/deployments/{name}/chat/completions`` needs an
    ``api-version`` query and picks behaviours by the deployment ``name``. ``record=False``
    keeps counters but not :attr:`requests`, so long benchmark runs do not grow without bound.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        require_api_key: str | None = None,
        record: bool = True,
    ) -> None:
        self._host = host
        self._wanted_port = port
        self._require_api_key = require_api_key
        self._record = record
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        # Serving state: set while serve() runs.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        # Scripted state and records, all guarded by _lock.
        self._scripts: dict[str | None, deque[Behaviour]] = {}
        self._defaults: dict[str | None, tuple[Behaviour, Behaviour | None]] = {}
        self._requests: list[RecordedRequest] = []
        self._calls: Counter[str | None] = Counter()
        self._calls_total = 0
        self._in_flight: Counter[str | None] = Counter()
        self._in_flight_total = 0
        self._disconnects = 0
        self._held: set[str] = set()
        self._hold_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._async_waiters: list[_AsyncWaiter] = []
        self._reset_locked()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on a daemon thread; returns once the port is bound."""
        if self._thread is not None or self._loop is not None:
            raise RuntimeError("FakeUpstream is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._thread_main,
            args=(ready, failure),
            name="gate-mw-fake-upstream",
            daemon=True,
        )
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def _thread_main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self.serve(on_ready=lambda _url: ready.set()))
        except BaseException as exc:
            if ready.is_set():
                logger.exception("fake upstream stopped with an error")
            else:
                failure.append(exc)
        finally:
            ready.set()

    async def serve(self, *, on_ready: Callable[[str], object] | None = None) -> None:
        """Serve in the running event loop until :meth:`stop`; ``on_ready(url)`` once bound."""
        if self._loop is not None:
            raise RuntimeError("FakeUpstream is already running")
        loop = asyncio.get_running_loop()
        server = HTTPServer(self._handle)
        await server.start(self._host, self._wanted_port)
        stopping = loop.create_future()
        with self._lock:
            self._loop, self._stopping, self._port = loop, stopping, server.port
        try:
            if on_ready is not None:
                on_ready(self.url)
            await stopping
        finally:
            with self._lock:
                self._loop = self._stopping = self._port = None
            await server.close()

    def stop(self) -> None:
        """Stop serving: close the listener and every connection. Safe to call twice."""
        with self._lock:
            loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            _wake(loop, stopping)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port; raises if not running."""
        port = self._port
        if port is None:
            raise RuntimeError("FakeUpstream is not running")
        return port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def openai_base(self) -> str:
        """Base URL for OpenAI clients: they POST ``{openai_base}/chat/completions``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base(self) -> str:
        """Base URL for Anthropic clients: they POST ``{anthropic_base}/v1/messages``."""
        return self.url

    # -- scripting --------------------------------------------------------------------------

    def script(self, model: str | None, *behaviours: Behaviour) -> None:
        """Queue behaviours for ``model``'s next requests, one each; ``None`` for any model."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def set_default(
        self, model: str | None, behaviour: Behaviour, *, stream: Behaviour | None = None
    ) -> None:
        """Behaviour for ``model`` (``None``: any model) once its script is used up.

        ``stream``, if given, is used instead for ``"stream": true`` requests.
        """
        with self._lock:
            self._defaults[model] = (behaviour, stream)

    def hold(self, model: str) -> None:
        """Make ``model``'s responses wait (after their latency) until :meth:`release`.

        A held :class:`Stream` has sent its headers and waited its ``ttft``; other behaviours
        have sent nothing.
        """
        with self._lock:
            self._held.add(model)

    def release(self, model: str) -> None:
        """Let held and future responses for ``model`` proceed."""
        with self._lock:
            self._held.discard(model)
            waiters = self._hold_waiters.pop(model, [])
        for future in waiters:
            _wake(future.get_loop(), future)

    def reset(self) -> None:
        """Clear scripts, defaults, records and counters, and release every hold."""
        with self._lock:
            waiters = [f for futures in self._hold_waiters.values() for f in futures]
            self._reset_locked()
        for future in waiters:
            _wake(future.get_loop(), future)

    def _reset_locked(self) -> None:
        self._scripts.clear()
        self._defaults.clear()
        self._defaults[None] = (Reply(), None)
        self._requests.clear()
        self._calls.clear()
        self._calls_total = 0
        self._disconnects = 0
        self._held.clear()
        self._hold_waiters.clear()

    # -- observation ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def calls(self, model: str | None = None) -> int:
        """Requests seen for ``model``; all requests when ``model`` is ``None``."""
        with self._lock:
            return self._calls_total if model is None else self._calls[model]

    def in_flight(self, model: str | None = None) -> int:
        """Requests received whose response is not finished; all models when ``None``."""
        with self._lock:
            return self._in_flight_total if model is None else self._in_flight[model]

    @property
    def disconnects(self) -> int:
        """Responses aborted because the client closed the connection first."""
        with self._lock:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 5.0, *, count: int = 1) -> bool:
        """Block until :attr:`disconnects` reaches ``count``; False on timeout."""
        return self._wait(lambda: self._disconnects >= count, timeout)

    # The timeout parameter mirrors the blocking twin, hence the noqa.
    async def wait_for_disconnect_async(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        count: int = 1,
    ) -> bool:
        """Like :meth:`wait_for_disconnect`, without blocking the calling event loop."""
        return await self._wait_async(lambda: self._disconnects >= count, timeout)

    def wait_for_in_flight(self, model: str | None, n: int, timeout: float = 5.0) -> bool:
        """Block until ``in_flight(model) >= n``; False on timeout."""
        return self._wait(lambda: self._in_flight_count(model) >= n, timeout)

    async def wait_for_in_flight_async(
        self,
        model: str | None,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> bool:
        """Like :meth:`wait_for_in_flight`, without blocking the calling event loop."""
        return await self._wait_async(lambda: self._in_flight_count(model) >= n, timeout)

    def _in_flight_count(self, model: str | None) -> int:
        return self._in_flight_total if model is None else self._in_flight[model]

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    async def _wait_async(self, predicate: Callable[[], bool], seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        waiter = _AsyncWaiter(predicate, loop, loop.create_future())
        with self._lock:
            if predicate():
                return True
            self._async_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter.future, seconds)
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)
        return True

    def _notify_locked(self) -> None:
        self._changed.notify_all()
        for waiter in [w for w in self._async_waiters if w.predicate()]:
            self._async_waiters.remove(waiter)
            _wake(waiter.loop, waiter.future)

    # -- serving ----------------------------------------------------------------------------

    def _arrive(self, record: RecordedRequest, valid: bool) -> Behaviour | None:
        """Record a request and, if it is to be served, pick its behaviour in arrival order."""
        model = record.model
        with self._lock:
            if self._record:
                self._requests.append(record)
            self._calls[model] += 1
            self._calls_total += 1
            self._in_flight[model] += 1
            self._in_flight_total += 1
            self._notify_locked()
            if not valid:
                return None
            for key in (model, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
            plain, stream = self._defaults.get(model) or self._defaults[None]
            return stream if record.stream and stream is not None else plain

    def _depart(self, model: str | None, disconnected: bool) -> None:
        with self._lock:
            self._in_flight[model] -= 1
            self._in_flight_total -= 1
            if disconnected:
                self._disconnects += 1
            self._notify_locked()

    async def _handle(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        path, _, query = request.target.partition("?")
        api = _ROUTES.get(path)
        azure = _AZURE.fullmatch(path)
        if azure is not None and "api-version=" in query:
            api = "openai"  # without an api-version Azure answers 404 Resource not found
        if api is None:
            body = error_body("openai", 404, f"Unknown path: {path}", code="not_found")
            conn.respond(404, _JSON_HEADERS, body)
            return
        if request.method != "POST":
            body = error_body(api, 405, f"Method {request.method} not allowed on {path}")
            conn.respond(405, (*_JSON_HEADERS, ("allow", "POST")), body)
            return
        parsed = True
        try:
            payload = json.loads(request.body)
        except ValueError:
            payload, parsed = None, False
        data: dict[str, Any] | None = payload if isinstance(payload, dict) else None
        model = data.get("model") if data is not None else None
        if azure is not None:
            model = azure[1]  # Azure serves the deployment in the path, whatever the body says
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=query,
            headers=request.headers,
            body=request.body,
            json=payload,
            api=api,
            model=model if isinstance(model, str) else None,
            stream=data is not None and data.get("stream") is True,
            received_at=time.monotonic(),
        )
        key = self._require_api_key
        authorized = key is None or _authorized(api, request.headers, key, azure is not None)
        behaviour = self._arrive(record, valid=data is not None and authorized)
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self._depart(record.model, conn.client_disconnected)

        # Count the response as finished before its last byte leaves: a client that has the
        # whole response must never still see it in flight.
        conn.on_finish = finish
        try:
            if data is None:
                message = (
                    "The request body is not valid JSON."
                    if not parsed
                    else "The request body must be a JSON object."
                )
                conn.respond(400, _JSON_HEADERS, error_body(api, 400, message))
            elif behaviour is None:
                message = "Incorrect API key provided." if api == "openai" else "invalid x-api-key"
                code = "invalid_api_key" if api == "openai" else None
                conn.respond(401, _JSON_HEADERS, error_body(api, 401, message, code=code))
            else:
                await self._perform(behaviour, api, data, record, conn)
        finally:
            finish()

    async def _pause(self, delay: float, model: str | None) -> None:
        """Sleep for a behaviour's latency, then wait out any hold on its model."""
        if delay > 0:
            await asyncio.sleep(delay)
        if model is None:
            return
        with self._lock:
            if model not in self._held:
                return
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hold_waiters.setdefault(model, []).append(future)
        await future

    def _completion(
        self,
        api: Api,
        data: Mapping[str, Any],
        text: str,
        behaviour: Reply | Stream,
        usage: bool,
    ) -> Completion:
        input_tokens = behaviour.input_tokens
        if input_tokens is None:
            input_tokens = estimate_tokens(prompt_messages(api, data))
        output_tokens = behaviour.output_tokens
        if output_tokens is None:
            output_tokens = max(1, len(text) // 4)
        model = behaviour.model if isinstance(behaviour, Reply) else None
        if model is None:
            requested = data.get("model")
            model = requested if isinstance(requested, str) else "unknown"
        number = next(self._ids)
        calls: list[tuple[str, str, str]] = []
        finish = behaviour.finish_reason
        if isinstance(behaviour, Reply):
            calls = [
                (call.id or f"call_fake{number:08d}_{index}", call.name, _encode(dict(call.arguments)))
                for index, call in enumerate(behaviour.tool_calls)
            ]
            if behaviour.json is not None and (forced := _forced_tool(api, data)) is not None:
                calls.append((f"call_fake{number:08d}_json", forced, _encode(behaviour.json)))
                text = ""
            finish = finish or ("tool_calls" if calls else "stop")
        return Completion(
            id=f"chatcmpl-fake{number:08d}" if api == "openai" else f"msg_fake{number:08d}",
            model=model,
            created=int(time.time()),
            text=text,
            finish_reason=finish or "stop",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=behaviour.cached_tokens,
            reasoning_tokens=behaviour.reasoning_tokens,
            usage=usage,
            cache_write_tokens=behaviour.cache_write_tokens,
            cost=behaviour.cost,
            tool_calls=tuple(calls),
            choices=n if isinstance(n := data.get("n"), int) and 1 <= n <= 128 else 1,
            system_fingerprint=behaviour.system_fingerprint if isinstance(behaviour, Reply) else None,
        )

    async def _perform(
        self,
        behaviour: Behaviour,
        api: Api,
        data: Mapping[str, Any],
        record: RecordedRequest,
        conn: HTTPConnection,
    ) -> None:
        model = record.model
        if isinstance(behaviour, Drop):
            await self._pause(behaviour.latency, model)
            conn.close()
        elif isinstance(behaviour, Raw):
            await self._pause(behaviour.latency, model)
            conn.send_raw(behaviour.data)
        elif isinstance(behaviour, Fault):
            await self._pause(behaviour.latency, model)
            headers: tuple[tuple[str, str], ...] = (*_JSON_HEADERS, *behaviour.headers.items())
            if behaviour.retry_after is not None:
                headers = (*headers, ("retry-after", _seconds(behaviour.retry_after)))
            tokens = estimate_tokens(prompt_messages(api, data))
            conn.respond(behaviour.status, headers, fault_body(api, behaviour, tokens))
        elif isinstance(behaviour, Reply):
            text = behaviour.text if behaviour.json is None else _encode(behaviour.json)
            if text is None and behaviour.tool_calls:
                text = ""
            elif text is None:
                text = simulated_text(prompt_messages(api, data))
            usage = behaviour.usage and (not record.stream or api == "anthropic" or _wants_usage(data))
            completion = self._completion(api, data, text, behaviour, usage)
            await self._pause(behaviour.latency, model)
            extra = tuple(behaviour.headers.items())
            if record.stream:
                sse = sse_format(api, completion)
                events = [sse.preamble(), *map(sse.content, _words(completion.text)), sse.finish()]
                conn.start_chunked(200, (*_SSE_HEADERS, *extra))
                conn.end_chunked(b"".join(events))
            else:
                conn.respond(200, (*_JSON_HEADERS, *extra), completion_body(api, completion))
        else:
            await self._stream(behaviour, api, data, record, conn)

    async def _stream(
        self,
        behaviour: Stream,
        api: Api,
        data: Mapping[str, Any],
        record: RecordedRequest,
        conn: HTTPConnection,
    ) -> None:
        if behaviour.chunks is not None:
            chunks = list(behaviour.chunks)
            text = "".join(chunks)
        else:
            text = (
                behaviour.text if behaviour.text is not None else simulated_text(prompt_messages(api, data))
            )
            chunks = _words(text)
        wanted = behaviour.include_usage
        if not record.stream:
            completion = self._completion(api, data, text, behaviour, wanted is not False)
            await self._pause(behaviour.ttft, record.model)
            conn.respond(200, _JSON_HEADERS, completion_body(api, completion))
            return
        usage = wanted if wanted is not None else api == "anthropic" or _wants_usage(data)
        completion = self._completion(api, data, text, behaviour, usage)
        sse = sse_format(api, completion)
        # Headers go out at once, like a provider that accepted the call and then stalls.
        conn.start_chunked(200, _SSE_HEADERS)
        await self._pause(behaviour.ttft, record.model)
        # Events are batched between waits: one write per burst rather than one per event.
        pending = [sse.preamble()]
        for index in range(len(chunks) + 1):
            if index == behaviour.cut_after:
                conn.send_chunk(b"".join(pending))
                conn.close()
                return
            if index == behaviour.error_after:
                message = _STREAM_ERROR[api]
                pending.append(
                    openrouter_stream_error(completion, message)
                    if behaviour.error_style == "openrouter" and api == "openai"
                    else sse.error(message)
                )
                conn.end_chunked(b"".join(pending))
                return
            if index == behaviour.stall_after:
                conn.send_chunk(b"".join(pending))
                # Never resolved: only the client hanging up (or stop()) ends this wait.
                await asyncio.get_running_loop().create_future()
            if index == behaviour.malformed_after:
                pending.append(sse.malformed())
            if index == len(chunks):
                break
            if index and behaviour.chunk_delay > 0:
                conn.send_chunk(b"".join(pending))
                pending.clear()
                await conn.drain()
                await asyncio.sleep(behaviour.chunk_delay)
            pending.append(sse.content(chunks[index]))
        pending.append(sse.finish())
        conn.end_chunked(b"".join(pending))
