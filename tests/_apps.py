"""Shared test helpers: a FastAPI app whose gateway talks real HTTP to a FakeUpstream."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import BaseModel, Field

from gate_mw import ChatResult, Gate, Gateway, GatewayMiddleware, ModelEntry, route_policy
from gate_mw.fastapi import GateClient
from gate_mw.testing import FakeUpstream

__all__ = [
    "ANTHROPIC_SECRET",
    "ENV",
    "MESSAGES",
    "SECRET",
    "anthropic_entry",
    "answer",
    "build_app",
    "make_gateway",
    "openai_entry",
    "serve",
    "serve_http",
    "serve_loopback",
    "serve_thread",
]

# Distinctive keys, so a leak into a body, header, span or log line is easy to spot.
SECRET = "sk-test-SECRET-123456"
ANTHROPIC_SECRET = "sk-ant-test-SECRET-654321"
ENV = {"FAKE_KEY": SECRET, "FAKE_ANTHROPIC_KEY": ANTHROPIC_SECRET}
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]


class ChatIn(BaseModel):
    messages: list[dict[str, Any]] = Field(default_factory=lambda: [dict(m) for m in MESSAGES])
    model: str | list[str] | None = None
    max_tokens: int | None = None


def openai_entry(up: FakeUpstream, name: str, model: str | None = None, **fields: Any) -> ModelEntry:
    """An OpenAI-compatible entry pointed at the fake upstream (upstream id defaults to `name`)."""
    fields.setdefault("provider", "openai")
    fields.setdefault("api_key_env", "FAKE_KEY")
    fields.setdefault("api_base", up.openai_base)
    return ModelEntry(name=name, model=model or name, **fields)


def anthropic_entry(up: FakeUpstream, name: str, model: str | None = None, **fields: Any) -> ModelEntry:
    """An Anthropic entry pointed at the fake upstream."""
    fields.setdefault("api_key_env", "FAKE_ANTHROPIC_KEY")
    return ModelEntry(
        name=name, provider="anthropic", model=model or name, api_base=up.anthropic_base, **fields
    )


async def answer(gate: Gate, messages: list[dict[str, Any]], *, streamed: bool) -> ChatResult:
    """The result of `gate.chat`, or of `gate.stream` read to its end (its text checked
    against the deltas)."""
    if not streamed:
        return await gate.chat(messages)
    stream = gate.stream(messages)
    text = "".join([delta async for delta in stream])
    assert stream.result is not None
    assert stream.result.text == text
    return stream.result


def make_gateway(models: list[ModelEntry], **options: Any) -> Gateway:
    """A seeded gateway reading its keys from `ENV`."""
    options.setdefault("env", ENV)
    options.setdefault("seed", 1234)
    return Gateway(models, **options)


def result_json(result: ChatResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "model": result.model,
        "deployment": result.deployment,
        "provider": result.provider,
        "provider_model": result.provider_model,
        "finish_reason": result.finish_reason,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
            "cached_tokens": result.usage.cached_tokens,
            "estimated": result.usage.estimated,
        },
        "cost_usd": result.cost_usd,
        "attempts": [attempt.to_dict() for attempt in result.attempts],
        "request_id": result.request_id,
    }


def build_app(gateway: Gateway, policy: Mapping[str, Any] | None = None) -> FastAPI:
    """`POST /chat` (under `policy`, if given), `POST /default` (no policy), `GET /plain` (no call)."""
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, gateway=gateway)

    async def chat(body: ChatIn, gate: GateClient) -> dict[str, Any]:
        result = await gate.chat(body.messages, model=body.model, max_tokens=body.max_tokens)
        return result_json(result)

    async def default(body: ChatIn, gate: GateClient) -> dict[str, Any]:
        return result_json(await gate.chat(body.messages, max_tokens=body.max_tokens))

    async def plain() -> dict[str, str]:
        return {"status": "ok"}

    if policy is not None:
        chat = route_policy(**policy)(chat)
    app.post("/chat")(chat)
    app.post("/default")(default)
    app.get("/plain")(plain)
    return app


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and yield a client talking to it in process."""
    async with LifespanManager(app):
        # The app itself, not manager.app: asgi-lifespan shares one state dict across requests.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            yield client


async def startup_error(app: Any) -> BaseException:
    """The exception `app`'s startup fails with (unwrapped from task-group groups)."""
    try:
        async with serve(app):
            pass
    except BaseException as error:
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        return error
    raise AssertionError("the app started")


@contextlib.contextmanager
def serve_thread(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn, lifespan on, on a free 127.0.0.1 port in a thread of its
    own (its own event loop), and yield its base URL: one server for many tests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.asynccontextmanager
async def serve_http(app: Any, *, http: Any = "h11", **options: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn (its `http` protocol, and other `uvicorn.Config` options)
    on a free 127.0.0.1 port and yield its base URL; on exit, wait for the server to
    finish its requests and shut down."""
    # Listening before uvicorn starts: a client may connect at once and wait in the backlog
    # until the lifespan has started, so nothing polls for readiness.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(
        app, lifespan="on", ws="none", http=http, log_config=None, log_level="warning",
        timeout_graceful_shutdown=5,  # a request that never ends fails the test, not hangs it
        **options,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@contextlib.asynccontextmanager
async def serve_loopback(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """`serve_http`, yielding a client for the server."""
    async with serve_http(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client
