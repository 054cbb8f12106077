"""Upstream misbehaviour, injected over real HTTP in every framework, plain and streamed:
each is a typed failure that falls back (or, past the first streamed token, a typed error
event), never a bare 500, and no body says a secret, an upstream address or raw HTML."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest
from _parity_apps import BACKUP, FRAMEWORKS, PRIMARY, build

from _apps import ANTHROPIC_SECRET, SECRET, anthropic_entry, make_gateway, openai_entry, serve_thread
from gate_mw import Breaker
from gate_mw.testing import FakeUpstream, Raw

pytestmark = pytest.mark.anyio

Outcome = Literal["fallback", "ok", "interrupted"]
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def completion(content: Any = "Hello world", usage: Any = USAGE) -> bytes:
    return json.dumps({
        "id": "chatcmpl-raw", "object": "chat.completion", "model": PRIMARY,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }).encode()


def events(deltas: list[Any], usage: Any = USAGE, newline: bytes = b"\n") -> bytes:
    chunks = [{"id": "chatcmpl-raw", "model": PRIMARY, "choices": [{"index": 0, "delta": {"content": d}}]}
              for d in deltas]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": usage})
    lines = [b"data: " + json.dumps(chunk).encode() for chunk in chunks] + [b"data: [DONE]"]
    return b"".join(line + newline + newline for line in lines)


@dataclass(frozen=True)
class Case:
    """One misbehaviour: the raw reply for a plain and a streamed call, and what follows."""

    plain: Raw
    streamed: Raw
    plain_outcome: Outcome = "fallback"
    streamed_outcome: Outcome = "fallback"


RATE_LIMITED = json.dumps({"error": {"message": "slow down", "type": "rate_limit_error"}}).encode()
CASES: dict[str, Case] = {
    "unparseable Retry-After": Case(
        Raw.response(429, RATE_LIMITED, headers=[("retry-after", "soon, maybe; 99:99")]),
        Raw.response(429, RATE_LIMITED, headers=[("retry-after", "Mon, 99 Foo 20x")]),
    ),
    "not HTTP": Case(Raw(b"SSH-2.0-OpenSSH_9.6\r\n"), Raw(b"\x00\x01garbage\r\n\r\n")),
    "broken chunked encoding": Case(
        Raw(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            b"zz\r\n{\"id\"\r\n"),
        Raw(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            b"q1\r\ndata: {}\r\n"),
    ),
    "negative usage": Case(
        Raw.response(200, completion(usage={"prompt_tokens": -5, "completion_tokens": 2})),
        Raw.sse(events(["Hello", " world"], usage={"prompt_tokens": -5, "completion_tokens": 2})),
        streamed_outcome="interrupted",
    ),
    "absurd usage": Case(
        Raw.response(200, completion(usage={"prompt_tokens": 1e30, "completion_tokens": 2})),
        Raw.sse(events(["Hello"], usage={"prompt_tokens": 5, "completion_tokens": "many"})),
        streamed_outcome="interrupted",
    ),
    "content not a string": Case(
        Raw.response(200, completion(content=42)), Raw.sse(events([{"oops": 1}, "tail"])),
    ),
    "text parts in a list": Case(
        Raw.response(200, completion(content=[{"type": "text", "text": "Hello"}, {"text": " world"}])),
        Raw.sse(events([[{"type": "text", "text": "Hello"}], [{"type": "text", "text": " world"}]])),
        plain_outcome="ok", streamed_outcome="ok",
    ),
    "bare CR line endings": Case(
        Raw.response(200, completion().replace(b", ", b",\r ")),
        Raw.sse(events(["Hello", " world"], newline=b"\r")),
        plain_outcome="ok", streamed_outcome="ok",
    ),
    "HTML error page": Case(
        Raw.response(502, b"<html><body>Bad gateway at 10.1.2.3:8443 " + SECRET.encode() + b"</body></html>",
                     content_type="text/html"),
        Raw.response(503, b"<html><h1>503</h1>upstream 10.1.2.3:8443</html>", content_type="text/html"),
    ),
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module", params=FRAMEWORKS)
def base_url(request: pytest.FixtureRequest, upstream: FakeUpstream) -> Iterator[str]:
    """The parity app in one framework, served once for the module. Its breakers never
    open, so one test's failures cannot change the next one's chain."""
    prices = {"input_cost_per_mtok": 2.0, "output_cost_per_mtok": 8.0}
    gateway = make_gateway(
        [
            openai_entry(upstream, "primary", PRIMARY, **prices),
            anthropic_entry(upstream, "backup", BACKUP, **prices),
        ],
        breaker=Breaker(failures=10**6, min_calls=10**6),
    )
    with serve_thread(build(request.param, gateway)) as url:
        yield url


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    return upstream


def assert_clean(text: str) -> None:
    for leak in (SECRET, ANTHROPIC_SECRET, "10.1.2.3", "<html", "Traceback"):
        assert leak not in text


def sse_text(body: str) -> tuple[str, list[dict[str, Any]]]:
    payloads = [line[6:] for line in body.splitlines() if line.startswith("data: ") and line[6:] != "[DONE]"]
    parsed = [json.loads(p) for p in payloads]
    text = "".join(c["delta"].get("content", "") for e in parsed for c in e.get("choices", ()))
    return text, parsed


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("name", list(CASES))
async def test_upstream_misbehaviour_is_a_typed_failure(
    base_url: str, fake: FakeUpstream, name: str, streamed: bool
) -> None:
    case = CASES[name]
    fake.script(PRIMARY, case.streamed if streamed else case.plain)
    outcome = case.streamed_outcome if streamed else case.plain_outcome
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post("/stream" if streamed else "/chat", json={})
    assert_clean(response.text)
    assert response.status_code == 200, response.text
    model = response.headers["x-gate-model"]
    if outcome == "fallback":
        assert model == "backup"
        assert fake.calls(PRIMARY) == 1
    elif outcome == "ok":
        assert model == "primary"
        text = sse_text(response.text)[0] if streamed else response.json()["text"]
        assert text == "Hello world"
    else:
        [error] = [e["error"] for e in sse_text(response.text)[1] if "error" in e]
        assert (error["type"], error["code"]) == ("stream_interrupted", "protocol")


@pytest.mark.parametrize("route", ["/item/1", "/stream"])
async def test_error_bodies_name_no_upstream_address_nor_html(
    base_url: str, fake: FakeUpstream, route: str
) -> None:
    html = Raw.response(502, b"<html>proxy 10.1.2.3:8443 says no</html>", content_type="text/html")
    fake.set_default(None, html)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(route.replace("/item/", "/items/"), json={})
    assert response.status_code == 502
    body = response.json()["error"]
    assert body["type"] == "all_attempts_failed"
    assert all(a["error"] == "HTTP 502 (not a JSON error body)" for a in body["attempts"])
    assert_clean(response.text)


