"""The clients the gateway benchmark compares, each making one chat call of the same JSON.

`clients(url)` opens them all against the upstream at `url` and yields them by name:

- `RAW`: a raw aiohttp `ClientSession` POSTing the JSON and parsing the JSON reply: the floor.
- `HTTPX`: httpx over aiohttp's pool (`gate_mw.providers.transport._httpx.default_http_client`,
  what the gateway makes around a user's httpx transport) doing the same.
- `GATE`: `gateway.client(policy).chat(...)`, one priced model, an `ordered` policy, no retries,
  and no OpenTelemetry SDK (the API's no-op spans and instruments).
- `GATE_SDK`: the same with the SDK on: a `TracerProvider` with a `BatchSpanProcessor` into an
  exporter that discards, and a `MeterProvider` with a reader (default exemplar filter).
- `FALLBACK`: `GATE_SDK` whose first model always answers 500, so every call falls back once.
- `LITELLM`: LiteLLM's `Router.acompletion` with callbacks off, when `litellm` is installed.
- `SDK_FLOOR`: the raw call, then the least SDK work the gate's telemetry could be (two spans
  without attributes, three histogram records): what the SDK costs before any gateway work.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from bench._load import Call
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from gate_mw import Breaker, Gateway, ModelEntry, RoutePolicy, TelemetryConfig
from gate_mw.providers.transport._httpx import default_http_client

__all__ = [
    "FAILING_MODEL", "FALLBACK", "GATE", "GATE_SDK", "HTTPX", "LITELLM", "RAW", "SDK_FLOOR",
    "Client", "clients", "litellm_status",
]

RAW = "raw aiohttp"
HTTPX = "httpx floor (gate_mw's client)"
GATE = "gate.chat, no SDK"
GATE_SDK = "gate.chat, SDK on"
FALLBACK = "one fallback, SDK on"
LITELLM = "LiteLLM Router"
SDK_FLOOR = "raw + SDK floor (info)"

UPSTREAM_MODEL = "gpt-4o-mini"
#: The upstream answers this model with a 500 (``python -m gate_mw.testing --fail-model``).
FAILING_MODEL = "gpt-4o-mini-broken"
LITELLM_VERSION = "1.106.2"
# 1.107.0 was a compromised release: never import it, even if it is what is installed.
LITELLM_COMPROMISED = frozenset({"1.107.0"})

_KEY = "sk-bench"
_MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
_MAX_TOKENS = 16
_PAYLOAD = {"model": UPSTREAM_MODEL, "messages": _MESSAGES, "max_tokens": _MAX_TOKENS}
_HEADERS = {"authorization": f"Bearer {_KEY}"}
_MAX_CONNECTIONS = 1024  # the gateway's default pool size, for every client
# The fewest attributes the GenAI metrics require, for the SDK floor's measurements.
_FLOOR_ATTRIBUTES = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}


@dataclass(frozen=True, slots=True)
class Client:
    """One way to make the call. `flush` finishes its background work (exporting spans) and
    is run inside each measured run; `share` is the fraction of a phase's calls it makes
    (LiteLLM is an order of magnitude slower, so it makes fewer to keep rounds short)."""

    call: Call
    flush: Callable[[], object] | None = None
    share: float = 1.0


def litellm_status() -> tuple[str | None, str]:
    """(version to benchmark or None, a note for the table): whether the LiteLLM row can run."""
    try:
        version = importlib.metadata.version("litellm")
    except importlib.metadata.PackageNotFoundError:
        return None, "not installed (the [bench] extra)"
    if version in LITELLM_COMPROMISED:
        return None, f"{version} is a compromised release: not imported"
    return version, "" if version == LITELLM_VERSION else f"{version}, not the pinned {LITELLM_VERSION}"


class _DiscardExporter(SpanExporter):
    """Takes every batch and drops it: the cost of tracing without an exporter's I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextlib.contextmanager
def _sdk() -> Iterator[tuple[TracerProvider, MeterProvider]]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_DiscardExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        yield tracer_provider, meter_provider
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _entry(url: str, name: str, model: str) -> ModelEntry:
    return ModelEntry(
        name=name, provider="openai", model=model, api_base=url + "/v1", api_key_env="BENCH_KEY",
        input_cost_per_mtok=0.15, output_cost_per_mtok=0.60,
    )


@contextlib.asynccontextmanager
async def _raw(url: str) -> AsyncIterator[Client]:
    endpoint = url + "/v1/chat/completions"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS)) as session:

        async def call() -> object:
            async with session.post(endpoint, json=_PAYLOAD, headers=_HEADERS) as response:
                if response.status >= 400:
                    raise RuntimeError(f"upstream answered {response.status}")
                return await response.json()

        yield Client(call)


@contextlib.asynccontextmanager
async def _httpx(url: str) -> AsyncIterator[Client]:
    endpoint = url + "/v1/chat/completions"
    async with default_http_client(_MAX_CONNECTIONS) as http:

        async def call() -> object:
            response = await http.post(endpoint, json=_PAYLOAD, headers=_HEADERS)
            if response.status_code >= 400:
                raise RuntimeError(f"upstream answered {response.status_code}")
            return response.json()

        yield Client(call)


@contextlib.asynccontextmanager
async def _gate(url: str, *, sdk: bool, fallback: bool = False) -> AsyncIterator[Client]:
    entries = [_entry(url, "bench", UPSTREAM_MODEL)]
    if fallback:
        entries.insert(0, _entry(url, "broken", FAILING_MODEL))
    policy = RoutePolicy(models=tuple(entry.name for entry in entries), retries=0)
    with contextlib.ExitStack() as stack:
        telemetry, flush = None, None
        if sdk:
            tracer_provider, meter_provider = stack.enter_context(_sdk())
            telemetry = TelemetryConfig(tracer_provider=tracer_provider, meter_provider=meter_provider)
            flush = tracer_provider.force_flush
        # A breaker that never opens: every call of the fallback client tries the broken model.
        never = Breaker(failures=2**31, min_calls=2**31)
        async with Gateway(entries, env={"BENCH_KEY": _KEY}, telemetry=telemetry, breaker=never) as gateway:

            async def call() -> object:
                return await gateway.client(policy, route="bench").chat(_MESSAGES, max_tokens=_MAX_TOKENS)

            yield Client(call, flush)


@contextlib.asynccontextmanager
async def _sdk_floor(raw: Client) -> AsyncIterator[Client]:
    with _sdk() as (tracer_provider, meter_provider):
        tracer = tracer_provider.get_tracer("bench.floor")
        meter = meter_provider.get_meter("bench.floor")
        tokens = meter.create_histogram("bench.floor.tokens")
        duration = meter.create_histogram("bench.floor.duration")

        async def call() -> object:
            reply = await raw.call()
            with tracer.start_as_current_span("gate.route floor"):
                tracer.start_span("chat floor", kind=SpanKind.CLIENT).end()
                tokens.record(12, _FLOOR_ATTRIBUTES)
                tokens.record(8, _FLOOR_ATTRIBUTES)
                duration.record(0.001, _FLOOR_ATTRIBUTES)
            return reply

        yield Client(call, tracer_provider.force_flush)


@contextlib.asynccontextmanager
async def _litellm(url: str) -> AsyncIterator[Client]:
    # The bundled price map, not a download at import; typed as Any: litellm is optional.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm: Any = importlib.import_module("litellm")
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    for callbacks in ("callbacks", "success_callback", "failure_callback", "input_callback",
                      "_async_success_callback", "_async_failure_callback"):
        setattr(litellm, callbacks, [])
    router = litellm.Router(
        model_list=[{
            "model_name": "bench",
            "litellm_params": {"model": f"openai/{UPSTREAM_MODEL}", "api_base": url + "/v1", "api_key": _KEY},
        }],
        num_retries=0,
    )

    async def call() -> object:
        return await router.acompletion(model="bench", messages=_MESSAGES, max_tokens=_MAX_TOKENS)

    yield Client(call, share=0.2)


@contextlib.asynccontextmanager
async def clients(url: str, names: Sequence[str]) -> AsyncIterator[dict[str, Client]]:
    """The clients among `names` (LiteLLM only if it can run), in that order, against `url`."""
    async with contextlib.AsyncExitStack() as stack:
        opened: dict[str, Client] = {}
        raw = await stack.enter_async_context(_raw(url))
        for name in names:
            if name == RAW:
                opened[name] = raw
            elif name == HTTPX:
                opened[name] = await stack.enter_async_context(_httpx(url))
            elif name in (GATE, GATE_SDK, FALLBACK):
                gate = _gate(url, sdk=name != GATE, fallback=name == FALLBACK)
                opened[name] = await stack.enter_async_context(gate)
            elif name == SDK_FLOOR:
                opened[name] = await stack.enter_async_context(_sdk_floor(raw))
            elif name == LITELLM and litellm_status()[0] is not None:
                opened[name] = await stack.enter_async_context(_litellm(url))
        yield opened
