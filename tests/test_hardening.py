"""Hardening (issue 9): caller faults are not model faults, cut streams count, routing
state survives traffic, bounded reads, redaction, clear startup errors. Over real HTTP:
the fake upstream and, where streaming or disconnects matter, a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket
from litestar import Litestar, websocket
from litestar import WebSocket as LitestarWebSocket

from _apps import ENV, anthropic_entry, make_gateway, openai_entry, serve_http
from conftest import Telemetry
from gate_mw import (
    Breaker,
    Budget,
    ConfigError,
    ErrorKind,
    Experiment,
    GateStream,
    Gateway,
    GatewayMiddleware,
    ModelEntry,
    PolicyError,
    RequestRejected,
    RoutePolicy,
    StreamInterrupted,
    UpstreamError,
    route_policy,
)
from gate_mw.config import UpstreamLimits, load_config
from gate_mw.fastapi import GateClient
from gate_mw.litestar import GateClient as LitestarGate
from gate_mw.litestar import GatePlugin
from gate_mw.providers import ChatRequest, Provider, ProviderReply
from gate_mw.providers._base import StreamEvent
from gate_mw.providers._sse import SSEDecoder
from gate_mw.providers.transport import read_capped
from gate_mw.responses import sse_response
from gate_mw.routing import MemoryStore
from gate_mw.testing import FakeUpstream, Fault, Raw, Stream

pytestmark = pytest.mark.anyio

PRIMARY, BACKUP = "up-primary", "up-backup"
HELLO = [{"role": "user", "content": "Say hello."}]


def gateway_for(up: FakeUpstream, **options: Any) -> Gateway:
    options.setdefault("default_policy", {"models": ["primary", "backup"], "retries": 0})
    return make_gateway(
        [openai_entry(up, "primary", PRIMARY), anthropic_entry(up, "backup", BACKUP)], **options
    )


def raw_app(gateway: Gateway) -> FastAPI:
    """Routes that hand the request body to the gate as it is: messages and parameters."""
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    @app.post("/raw")
    async def raw(request: Request, gate: GateClient) -> dict[str, Any]:
        body = json.loads(await request.body())  # NaN and lone surrogates come through
        result = await gate.chat(body["messages"], **body.get("params", {}))
        return {"text": result.text, "model": result.model}

    @app.post("/raw-stream")
    async def raw_stream(request: Request, gate: GateClient) -> Any:
        body = json.loads(await request.body())
        return sse_response(gate.stream(body["messages"], **body.get("params", {})))

    @app.get("/ask")
    async def ask(gate: GateClient) -> dict[str, Any]:
        result = await gate.chat(HELLO)
        return {"text": result.text}

    return app


@pytest.fixture
async def served(fake_upstream: FakeUpstream) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    gateway = gateway_for(fake_upstream)
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield gateway, client


def post_raw(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    # json.dumps, not httpx's encoder: it writes NaN and escapes lone surrogates.
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


async def breakers(gateway: Gateway) -> dict[str, tuple[str, int]]:
    return {s.deployment: (s.state, s.consecutive_failures) for s in await gateway.cooldowns()}


# -- 1. caller faults are not model faults ------------------------------------------------

CALLER_FAULTS: dict[str, Any] = {
    "lone surrogate": {"messages": [{"role": "user", "content": "hi \ud800"}]},
    "NaN temperature": {"messages": HELLO, "params": {"temperature": math.nan}},
    "infinity in a parameter": {"messages": HELLO, "params": {"metadata": {"x": [math.inf]}}},
    "empty messages": {"messages": []},
    "a string where a message belongs": {"messages": ["hello"]},
    "messages not a list": {"messages": "hello"},
    "role not a string": {"messages": [{"role": 3, "content": "hi"}]},
    "content a number": {"messages": [{"role": "user", "content": 7}]},
    "content part not a mapping": {"messages": [{"role": "user", "content": ["hi"]}]},
    "surrogate in a key": {"messages": HELLO, "params": {"metadata": {"\udc80": 1}}},
    "max_tokens not an integer": {"messages": HELLO, "params": {"max_tokens": "ten"}},
    "stream in extra_body": {"messages": HELLO, "params": {"extra_body": {"stream": True}}},
    "n not an integer": {"messages": HELLO, "params": {"n": 1.5}},
}


@pytest.mark.parametrize("path", ["/raw", "/raw-stream"])
@pytest.mark.parametrize("name", list(CALLER_FAULTS))
async def test_a_caller_fault_is_a_typed_4xx_that_never_reaches_a_model(
    served: tuple[Gateway, httpx.AsyncClient], fake_upstream: FakeUpstream, name: str, path: str
) -> None:
    gateway, client = served
    for _ in range(3):  # three were enough to open a breaker before
        response = await post_raw(client, path, CALLER_FAULTS[name])
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "request_rejected"
        assert error["message"].startswith("invalid request: ")
    assert fake_upstream.calls() == 0
    assert await breakers(gateway) == {"primary": ("closed", 0), "backup": ("closed", 0)}
    # The model is still there for everyone else.
    assert (await post_raw(client, path, {"messages": HELLO})).status_code == 200


async def test_a_payload_that_cannot_be_encoded_is_the_callers_fault_even_past_the_gate(
    fake_upstream: FakeUpstream,
) -> None:
    """Defence in depth: a request built without the gate's checks still never counts
    against a model, streamed or not."""
    async with gateway_for(fake_upstream) as gateway:
        gate = gateway.client()
        for stream in (False, True):
            for _ in range(6):
                bad = ChatRequest(messages=HELLO, temperature=math.nan, extra={"x": "\ud800"})
                call = gate._call(bad, None, None, stream=stream)
                attempt = GateStream(call).open() if stream else call.run()
                with pytest.raises(RequestRejected, match="cannot be encoded"):
                    await attempt
        assert await breakers(gateway) == {"primary": ("closed", 0), "backup": ("closed", 0)}
    assert fake_upstream.calls() == 0


# -- 2. a stream cut after its first token is an upstream failure --------------------------

LATENCY_ONLY = {"models": ["primary"], "retries": 0, "strategy": "latency"}


async def test_streams_cut_after_the_first_token_open_the_breaker(fake_upstream: FakeUpstream) -> None:
    gateway = gateway_for(fake_upstream, default_policy=LATENCY_ONLY)
    fake_upstream.set_default(PRIMARY, Stream(text="one two three four", cut_after=2))
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(5):  # Breaker().failures
            response = await post_raw(client, "/raw-stream", {"messages": HELLO})
            assert response.status_code == 200
            assert '"stream_interrupted"' in response.text
        states = await breakers(gateway)
        assert states["primary"][0] == "open"
        # A cut stream is no latency sample either.
        [deployment] = gateway.registry.deployments[:1]
        assert await gateway.router.state.latency([deployment], stream=True) == [None]
        response = await post_raw(client, "/raw-stream", {"messages": HELLO})
        assert response.status_code == 503  # no candidates: the breaker holds


async def test_a_whole_stream_counts_as_a_success_when_it_ends(fake_upstream: FakeUpstream) -> None:
    gateway = gateway_for(fake_upstream, default_policy=LATENCY_ONLY)
    fake_upstream.set_default(PRIMARY, Stream(text="one two"))
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        assert (await post_raw(client, "/raw-stream", {"messages": HELLO})).status_code == 200
        [deployment] = gateway.registry.deployments[:1]
        [stats] = await gateway.router.state.latency([deployment], stream=True)
        assert stats is not None
        assert stats.samples == 1


# -- 4. secrets redacted before truncation, short typed messages -------------------------

ODD_KEY = "zz9.plural-Z-alpha~key"  # not shaped like sk-...


async def test_any_configured_secret_is_redacted_before_messages_are_cut(
    fake_upstream: FakeUpstream, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(
        [openai_entry(fake_upstream, "primary", PRIMARY, api_key_env="ODD")],
        env={**ENV, "ODD": ODD_KEY}, default_policy={"models": ["primary"], "retries": 0},
        telemetry=telemetry.config,
    )
    # The key straddles where a message is cut (300 characters).
    page = ("x" * 290 + ODD_KEY + " at 10.9.8.7:4443").encode()
    fake_upstream.set_default(PRIMARY, Raw.response(500, page, content_type="text/plain"))
    caplog.set_level(logging.INFO, logger="gate_mw")
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/ask")
    assert response.status_code == 502
    [attempt] = response.json()["error"]["attempts"]
    assert attempt["error"] == "HTTP 500 (not a JSON error body)"
    exposed = [response.text, caplog.text] + [
        str(span.status.description) + repr(span.attributes) + repr(span.events) for span in telemetry.spans()
    ]
    for text in exposed:
        assert ODD_KEY[:6] not in text
    # The detail is kept for operators: in the attempt span and the log.
    assert any("xxxxxxxx" in str(span.status.description) for span in telemetry.spans("chat "))
    assert "xxxxxxxx" in caplog.text


async def test_a_refused_connection_names_no_address_to_the_client(fake_upstream: FakeUpstream) -> None:
    gateway = make_gateway(
        [openai_entry(fake_upstream, "primary", PRIMARY, api_base="http://127.0.0.1:9/v1")],
        default_policy={"models": ["primary"], "retries": 0},
    )
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/ask")
    assert response.status_code == 502
    [attempt] = response.json()["error"]["attempts"]
    assert attempt["outcome"] == "connection"
    assert "127.0.0.1" not in response.text
    assert ":9" not in attempt["error"]


# -- 5. routing state cannot be evicted by traffic ---------------------------------------


async def test_an_open_breaker_survives_many_callers_and_long_caller_keys_are_hashed(
    fake_upstream: FakeUpstream,
) -> None:
    store = MemoryStore(max_keys=64, max_caller_keys=20)
    policy = {"models": ["primary", "backup"], "retries": 0, "budget": {"limit_usd": 100.0}}
    gateway = make_gateway(
        [openai_entry(fake_upstream, "primary", PRIMARY, input_cost_per_mtok=1, output_cost_per_mtok=1),
         anthropic_entry(fake_upstream, "backup", BACKUP, input_cost_per_mtok=1, output_cost_per_mtok=1)],
        default_policy=policy, state=store,
    )
    fake_upstream.set_default(PRIMARY, Fault(500))
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(5):
            assert (await client.get("/ask")).status_code == 200  # primary fails, backup answers
        assert (await breakers(gateway))["primary"][0] == "open"
        for n in range(150):
            caller = f"caller-{n}-" + "k" * 8192
            assert (await client.get("/ask", headers={"x-gate-caller": caller})).status_code == 200
    assert (await breakers(gateway))["primary"][0] == "open"
    assert fake_upstream.calls(PRIMARY) == 5  # never tried again while open
    assert store.counts[1] == 20
    assert max(map(len, store._callers.data)) < 100


# -- 6. bounded work on hostile upstreams -----------------------------------------------


async def test_an_overlong_sse_line_and_overlong_bodies_fall_back(fake_upstream: FakeUpstream) -> None:
    limits = UpstreamLimits(
        max_sse_line_bytes=64 * 1024, max_body_bytes=256 * 1024, max_error_body_bytes=1024
    )
    gateway = gateway_for(fake_upstream, upstream_limits=limits)
    huge_line = Raw.sse(b"data: {\"x\": \"" + b"y" * 4_000_000)
    big_body = Raw.response(200, b"{\"pad\": \"" + b"z" * 1_000_000 + b"\"}")
    big_error = Raw.response(500, b"e" * 2_000_000, content_type="text/plain")
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        fake_upstream.script(PRIMARY, huge_line)
        response = await post_raw(client, "/raw-stream", {"messages": HELLO})
        assert response.headers["x-gate-model"] == "backup"
        for behaviour in (big_body, big_error):
            fake_upstream.script(PRIMARY, behaviour)
            response = await post_raw(client, "/raw", {"messages": HELLO})
            assert response.json()["model"] == "backup"


async def _chunks(parts: list[bytes], read: list[int]) -> AsyncIterator[bytes]:
    for part in parts:
        read.append(len(part))
        yield part


async def test_a_long_line_is_refused_once_the_cap_is_read_not_at_its_end() -> None:
    read: list[int] = []
    decoder = SSEDecoder(_chunks([b"data: " + b"x" * 65_536] * 100, read), max_line=1 << 20)
    with pytest.raises(UpstreamError, match="line is over"):
        await anext(decoder)
    assert len(read) <= 17  # 1 MiB and a bit: the other 5 MB were never read


@pytest.mark.parametrize("newline", [b"\r", b"\n", b"\r\n"])
async def test_sse_lines_may_end_in_cr_lf_or_both_split_anywhere(newline: bytes) -> None:
    stream = b"".join(b"data: " + str(n).encode() + newline + newline for n in range(50))
    for size in (1, 2, 7):
        parts = [stream[i : i + size] for i in range(0, len(stream), size)]
        events = [event async for event in SSEDecoder(_chunks(parts, []))]
        assert events == [str(n).encode() for n in range(50)]


async def test_error_bodies_are_read_up_to_their_cap() -> None:
    read: list[int] = []
    response = httpx.Response(500, stream=_AsyncBody(_chunks([b"e" * 4096] * 1000, read)))
    body = await read_capped(response.aiter_bytes(), 10_000, cut=True)
    assert len(body) == 10_000
    assert len(read) == 3
    response = httpx.Response(200, stream=_AsyncBody(_chunks([b"e" * 4096] * 1000, [])))
    with pytest.raises(UpstreamError, match="limit"):
        await read_capped(response.aiter_bytes(), 10_000)


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            yield chunk


# -- 7. a client leaving before the first token -----------------------------------------


async def test_a_client_leaving_before_the_first_token_cancels_at_once_without_fallback(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    gateway = gateway_for(fake_upstream, telemetry=telemetry.config)
    fake_upstream.hold(PRIMARY)
    async with serve_http(raw_app(gateway)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client, anyio.create_task_group() as group:
            group.start_soon(post_raw, client, "/raw-stream", {"messages": HELLO})
            assert await fake_upstream.wait_for_in_flight_async(PRIMARY, 1)
            group.cancel_scope.cancel()  # the client hangs up
        assert await fake_upstream.wait_for_disconnect_async(timeout=5)
    # The server has finished every request: nothing fell back to the backup.
    assert fake_upstream.calls(BACKUP) == 0
    [attempt] = telemetry.spans("chat ")
    assert (attempt.attributes or {})["error.type"] == "client_disconnect"
    fake_upstream.release(PRIMARY)


# -- 8. config errors are ConfigError / PolicyError, found at load time ------------------


def test_unreadable_and_deeply_nested_files_are_config_errors(tmp_path: Path) -> None:
    latin = tmp_path / "gateway.yaml"
    latin.write_bytes(b"models:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"in .*gateway.yaml: not UTF-8"):
        load_config(latin)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(ConfigError, match=r"deep\.json"):
        load_config(deep)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "模型"}, "name"),
        ({"name": "m", "headers": {"bad header": "v"}}, "headers"),
        ({"name": "m", "headers": {"x-ok": "line\nbreak"}}, "headers"),
        ({"name": "m", "secret_headers": {"x y": "VAR"}}, "secret_headers"),
    ],
)
def test_values_that_cannot_go_into_a_header_fail_at_load(
    tmp_path: Path, entry: dict[str, Any], field: str
) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"models": [entry]}))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.source, caught.value.entry, caught.value.field) == (
        str(path), f"models[0] ({entry['name']})", field
    )


def test_gateway_settings_and_breakers_fail_as_config_errors() -> None:
    with pytest.raises(ConfigError, match="caller_header"):
        Gateway(caller_header="x caller")
    with pytest.raises(ConfigError, match="field window"):
        Breaker(window=1e-300)
    with pytest.raises(PolicyError, match="default policy"):
        Gateway(default_policy=["not", "a", "mapping"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"budget": {"limit_usd": 1.0, "window": 1e-300}}, "budget"),
        ({"budget": Budget(limit_usd=1.0, window=0.001)}, "budget"),
        ({"experiment": Experiment("e", {"臂": "primary"})}, "experiment"),
        ({"experiment": {"name": "e", "arms": ["primary"]}}, "experiment"),
        ({"experiment": {"name": "e", "arms": {"a": "primary"}, "weights": ["x"]}}, "experiment"),
        ({"experiment": {"name": "e", "arms": {"a": "primary"}, "override_header": "x arm"}}, "experiment"),
        ({"task_header": "x task"}, "task_header"),
        ({"models": 5}, "models"),
    ],
)
def test_policies_that_would_fail_at_call_time_fail_when_declared(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        route_policy(**fields)(lambda: None)
    assert caught.value.field == field


@pytest.mark.parametrize("key", ["sk-abc def", " sk-abc", "sk-ключ", "sk-abc\n"])
async def test_an_api_key_with_whitespace_or_non_ascii_is_refused_at_startup(
    fake_upstream: FakeUpstream, key: str
) -> None:
    gateway = gateway_for(fake_upstream, env={**ENV, "FAKE_KEY": key})
    with pytest.raises(ConfigError, match="FAKE_KEY") as caught:
        await gateway.start()
    assert caught.value.field == "api_key_env"
    assert key.strip() not in str(caught.value)


# -- 9. HEAD, lifespan, websockets -------------------------------------------------------


async def test_a_head_request_never_calls_a_model(
    served: tuple[Gateway, httpx.AsyncClient], fake_upstream: FakeUpstream
) -> None:
    _, client = served
    response = await client.head("/ask")
    assert response.status_code == 405
    assert fake_upstream.calls() == 0
    assert (await client.get("/ask")).status_code == 200


def test_a_gateway_without_its_lifespan_fails_at_once_on_a_second_loop(fake_upstream: FakeUpstream) -> None:
    gateway = gateway_for(fake_upstream)
    first_done, second_done = threading.Event(), threading.Event()

    async def first_loop() -> None:
        await gateway.client().chat(HELLO)
        first_done.set()
        await asyncio.to_thread(second_done.wait, 10)
        await gateway.aclose()

    thread = threading.Thread(target=asyncio.run, args=(first_loop(),))
    thread.start()
    try:
        assert first_done.wait(10)
        with pytest.raises(ConfigError, match="lifespan"):
            asyncio.run(gateway.client().chat(HELLO))
    finally:
        second_done.set()
        thread.join(10)
    assert fake_upstream.calls() == 1


async def websocket_failure(app: Any) -> str:
    """What an ASGI app says when a websocket connects to /ws: the exception it raises or
    the reason it closes with. (No websocket client library here: the app is driven by hand.)"""
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "path": "/ws", "raw_path": b"/ws",
        "root_path": "", "scheme": "ws", "query_string": b"", "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "subprotocols": [],
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop()
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        with anyio.fail_after(5):
            await app(scope, receive, send)
    except Exception as exc:
        return str(exc)
    return repr(sent)


async def test_get_gate_in_a_websocket_handler_says_what_is_wrong(fake_upstream: FakeUpstream) -> None:
    app = FastAPI()
    app.add_middleware(GatewayMiddleware, gateway=gateway_for(fake_upstream))

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, gate: GateClient) -> None:
        await websocket.accept()

    assert "not to websocket connections" in await websocket_failure(app)


async def test_litestar_gate_in_a_websocket_handler_says_what_is_wrong(fake_upstream: FakeUpstream) -> None:
    @websocket("/ws")
    async def ws(socket: LitestarWebSocket[Any, Any, Any], gate: LitestarGate) -> None:
        await socket.accept()

    app = Litestar([ws], plugins=[GatePlugin(gateway_for(fake_upstream))])
    assert "not to websocket connections" in await websocket_failure(app)


def test_the_errors_page_samples_run() -> None:
    page = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    blocks = [block.split("```", 1)[0] for block in page.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/errors.md", "exec"), {})


def test_models_and_policies_made_in_python_fail_as_config_and_policy_errors() -> None:
    with pytest.raises(ConfigError, match=r"entry ModelEntry\(m\), field quality"):
        ModelEntry(name="m", quality=9)
    with pytest.raises(ConfigError, match="field name"):
        ModelEntry(name="模型")
    with pytest.raises(PolicyError, match="field timeout"):
        RoutePolicy(timeout=-1)


class _Broken(Provider):
    """A provider that breaks its contract after its first token."""

    async def chat(self, model: str, request: ChatRequest) -> ProviderReply:
        raise AssertionError("not called")

    async def stream(self, model: str, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        yield "first"
        yield 42  # type: ignore[misc]


async def test_a_provider_yielding_neither_text_nor_an_end_interrupts_the_stream() -> None:
    async with Gateway([ModelEntry(name="sim")]) as gateway:
        gateway.registry.deployments[0].provider = _Broken()
        stream = gateway.client().stream(HELLO)
        with pytest.raises(StreamInterrupted, match="sent a int") as caught:
            async for _ in stream:
                pass
        assert caught.value.kind is ErrorKind.PROTOCOL
        assert (await breakers(gateway))["sim"][1] == 1


async def test_an_upstream_message_naming_addresses_reaches_the_client_without_them(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    gateway = gateway_for(fake_upstream, default_policy={"models": ["primary"], "retries": 0},
                          telemetry=telemetry.config)
    message = "backend http://10.0.0.5:8000/v1 refused; retry via 192.168.1.9:443"
    fake_upstream.set_default(PRIMARY, Fault(503, message=message))
    async with serve_http(raw_app(gateway)) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/ask")
    [attempt] = response.json()["error"]["attempts"]
    assert attempt["error"] == "backend [address] refused; retry via [address]"
    [span] = telemetry.spans("chat ")
    assert span.status.description == message  # operators still see where
