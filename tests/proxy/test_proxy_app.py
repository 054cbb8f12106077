"""`gate-mw serve`'s own ASGI app (`ProxyApp`), served by uvicorn on loopback: its paths
with and without `/v1`, a 404 in OpenAI's shape, a continued trace, the lifespan; and the
uvicorn protocol it runs under, which joins a response's writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import uvicorn
from _proxy_apps import Recorder

from _apps import ENV, MESSAGES, make_gateway, openai_entry, serve_http
from conftest import Telemetry
from gate_mw import ModelEntry, current_context
from gate_mw.proxy._uvicorn import (
    HTTP_PROTOCOL,
    SUPPORTED,
    UVICORN_RELEASES,
    CoalescingHttpToolsProtocol,
    CoalescingTransport,
    _release,
)
from gate_mw.proxy.cli import build_app
from gate_mw.testing import FakeUpstream, Reply, Stream

pytestmark = pytest.mark.anyio
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
BODY = {"model": "m", "messages": MESSAGES}


def gateway_over(up: FakeUpstream, **options: Any) -> Any:
    return make_gateway([openai_entry(up, "m", model="gpt-4o")], **options)


async def test_the_endpoints_answer_at_v1_and_at_the_root(fake_upstream: FakeUpstream) -> None:
    fake_upstream.set_default("gpt-4o", Reply(text="hi"))
    async with serve_http(build_app(gateway_over(fake_upstream))) as url, httpx.AsyncClient() as client:
        for base in (f"{url}/v1", url):
            chat = await client.post(f"{base}/chat/completions", json=BODY)
            assert chat.status_code == 200
            assert chat.json()["choices"][0]["message"]["content"] == "hi"
            assert chat.headers["x-gate-model"] == "m"
            model = await client.get(f"{base}/models/m")  # a path parameter
            assert model.json()["id"] == "m"
            assert (await client.get(f"{base}/healthz")).json() == {"status": "ok"}
        wrong = await client.get(f"{url}/v1/chat/completions")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/v2/chat/completions", "/v1/models/m/extra", "/v1/models/", "/"])
async def test_an_unknown_path_is_a_404_in_openais_shape(fake_upstream: FakeUpstream, path: str) -> None:
    async with serve_http(build_app(gateway_over(fake_upstream))) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}{path}", json=BODY)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["message"] == f"Invalid URL (POST {path})"
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "unknown_url", None)
    assert response.headers["x-request-id"]
    assert fake_upstream.calls() == 0


async def test_an_incoming_trace_is_continued_and_the_context_is_current(
    fake_upstream: FakeUpstream, telemetry: Telemetry
) -> None:
    seen: list[object] = []
    app = build_app(gateway_over(fake_upstream, telemetry=telemetry.config))

    async def probe(scope: Any, receive: Any, send: Any) -> None:  # where a handler would run
        seen.append(current_context())
        await original(scope, receive, send)

    original = app._paths["/v1/chat/completions"]
    app._paths["/v1/chat/completions"] = probe  # type: ignore[assignment]
    headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    async with serve_http(app) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
    assert response.status_code == 200
    assert len(seen) == 1
    assert seen[0] is not None
    spans = telemetry.spans("chat")
    assert spans
    assert {f"{span.context.trace_id:032x}" for span in spans} == {TRACE_ID}


async def test_the_lifespan_starts_and_stops_the_gateway() -> None:
    app = build_app(make_gateway([openai_entry_without_key()], env={}))
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(Exception, match="NO_SUCH_KEY"):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "NO_SUCH_KEY" in sent[0]["message"]


async def test_a_started_lifespan_completes_startup_and_shutdown(fake_upstream: FakeUpstream) -> None:
    gateway = gateway_over(fake_upstream)
    app = build_app(gateway)
    sent: list[str] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def openai_entry_without_key() -> ModelEntry:
    assert "NO_SUCH_KEY" not in ENV
    return ModelEntry(
        name="m", provider="openai", model="gpt-4o", api_base="http://127.0.0.1:9/v1",
        api_key_env="NO_SUCH_KEY",
    )


@pytest.mark.parametrize(
    ("version", "ours"),
    [("0.54.0", True), ("0.45.0", True), ("0.50.2", True), ("0.44.0", False), ("0.55.0", False),
     ("1.0.0", False), ("0.30.0", False), ("nightly", False)],
)
def test_the_coalescing_protocol_serves_only_under_the_uvicorn_releases_it_was_checked_with(
    version: str, ours: bool
) -> None:
    release = _release(version)
    low, high = UVICORN_RELEASES
    assert (release is not None and low <= release < high) is ours


def test_this_uvicorn_gets_the_protocol_its_release_calls_for() -> None:
    release = _release(uvicorn.__version__)
    assert SUPPORTED is (release is not None and UVICORN_RELEASES[0] <= release < UVICORN_RELEASES[1])
    assert (CoalescingHttpToolsProtocol if SUPPORTED else "httptools") == HTTP_PROTOCOL


@pytest.mark.skipif(not SUPPORTED, reason="gate-mw serve runs uvicorn's own protocol here")
async def test_answers_and_streams_go_out_whole_through_the_coalescing_protocol(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.set_default("gpt-4o", Reply(text="hello there"), stream=Stream(chunks=("a", "b", "c")))
    async with (
        serve_http(build_app(gateway_over(fake_upstream)), http=HTTP_PROTOCOL) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        for _ in range(3):  # on one kept-alive connection
            answer = await client.post("/v1/chat/completions", json=BODY)
            assert answer.json()["choices"][0]["message"]["content"] == "hello there"
            assert answer.headers["x-gate-model"] == "m"
        async with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as stream:
            lines = [line async for line in stream.aiter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        text = "".join(
            choice["delta"].get("content") or ""
            for line in lines[:-1]
            for choice in json.loads(line.removeprefix("data: "))["choices"]
        )
        assert text == "abc"


async def test_writes_in_one_turn_of_the_loop_go_out_as_one() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"head ")
    transport.write(b"body")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"head body"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes == [b"head body", b"next"]
    assert transport.get_extra_info("peername") == "extra peername"  # the rest is the transport's


async def test_closing_writes_what_is_pending_first_and_nothing_goes_to_a_closed_transport() -> None:
    inner = Recorder()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"]
    assert inner.closed
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last words"]
