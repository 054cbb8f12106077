"""FakeUpstream: scripted OpenAI/Anthropic endpoints on a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from ._answers import JSON_HEADERS, perform
from ._behaviours import Behaviour, Reply
from ._formats import error_body
from ._http import HTTPConnection, HTTPRequest, HTTPServer
from ._requests import RecordedRequest, arrival, authorized, route
from ._waiting import Waiters, wake

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FakeUpstream", "RecordedRequest"]

logger = logging.getLogger("gate_mw.testing")

_STOP_TIMEOUT = 10.0


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
        self._waiters = Waiters(self._lock)
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
            wake(loop, stopping)
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
            wake(future.get_loop(), future)

    def reset(self) -> None:
        """Clear scripts, defaults, records and counters, and release every hold."""
        with self._lock:
            waiters = [f for futures in self._hold_waiters.values() for f in futures]
            self._reset_locked()
        for future in waiters:
            wake(future.get_loop(), future)

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
        return self._waiters.wait(lambda: self._disconnects >= count, timeout)

    # The timeout parameter mirrors the blocking twin, hence the noqa.
    async def wait_for_disconnect_async(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        count: int = 1,
    ) -> bool:
        """Like :meth:`wait_for_disconnect`, without blocking the calling event loop."""
        return await self._waiters.wait_async(lambda: self._disconnects >= count, timeout)

    def wait_for_in_flight(self, model: str | None, n: int, timeout: float = 5.0) -> bool:
        """Block until ``in_flight(model) >= n``; False on timeout."""
        return self._waiters.wait(lambda: self._in_flight_count(model) >= n, timeout)

    async def wait_for_in_flight_async(
        self,
        model: str | None,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> bool:
        """Like :meth:`wait_for_in_flight`, without blocking the calling event loop."""
        return await self._waiters.wait_async(lambda: self._in_flight_count(model) >= n, timeout)

    def _in_flight_count(self, model: str | None) -> int:
        return self._in_flight_total if model is None else self._in_flight[model]

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
            self._waiters.notify_locked()
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
            self._waiters.notify_locked()

    async def _handle(self, request: HTTPRequest, conn: HTTPConnection) -> None:
        path, _, query = request.target.partition("?")
        api, deployment = route(path, query)
        if api is None:
            body = error_body("openai", 404, f"Unknown path: {path}", code="not_found")
            conn.respond(404, JSON_HEADERS, body)
            return
        if request.method != "POST":
            body = error_body(api, 405, f"Method {request.method} not allowed on {path}")
            conn.respond(405, (*JSON_HEADERS, ("allow", "POST")), body)
            return
        came = arrival(request, path, query, api, deployment)
        record, data = came.record, came.data
        key = self._require_api_key
        allowed = key is None or authorized(api, request.headers, key, deployment is not None)
        behaviour = self._arrive(record, valid=data is not None and allowed)
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
                    if not came.parsed
                    else "The request body must be a JSON object."
                )
                conn.respond(400, JSON_HEADERS, error_body(api, 400, message))
            elif behaviour is None:
                message = "Incorrect API key provided." if api == "openai" else "invalid x-api-key"
                code = "invalid_api_key" if api == "openai" else None
                conn.respond(401, JSON_HEADERS, error_body(api, 401, message, code=code))
            else:
                await perform(behaviour, api, data, record, conn, pause=self._pause, ids=self._ids)
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
