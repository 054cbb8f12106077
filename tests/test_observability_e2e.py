"""The example app under uvicorn, configured only by `configure()` and environment variables,
exports every span, the GenAI metrics and log events over OTLP, all in the incoming trace,
and flushes them when SIGTERM stops it; no API key appears in anything it sends or logs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _otlp import Receiver, attributes, running_receiver
from _process import ServerProcess
from gate_mw.testing import FakeUpstream, Fault, Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-fake-e2e-SECRET-7f3a9c51"
INSPECT_KEY = "inspect-e2e-key"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
DURATION_BUCKETS = [0.01 * 2**n for n in range(14)]
TOKEN_BUCKETS = [4.0**n for n in range(14)]
MODELS = {  # alias -> upstream model id, as examples/fastapi_app/app.py routes them
    "claude-sonnet": "claude-sonnet-4", "gpt-4o": "gpt-4o", "gemini-pro": "gemini-2.5-pro",
    "gpt-4o-mini": "gpt-4o-mini",
}


def _config(up: FakeUpstream, path: Path) -> Path:
    lines = ["default_policy:", "  models: [gpt-4o, gemini-pro]", "  retries: 0", "models:"]
    for alias, model in MODELS.items():
        lines += [
            f"  - name: {alias}", "    provider: openai", f"    model: {model}",
            f"    api_base: {up.openai_base}", "    api_key_env: E2E_OPENAI_KEY",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
def server(receiver: Receiver, fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENROUTER_", "GATE_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")])),
        "GATE_CONFIG": str(_config(fake_upstream, tmp_path / "gateway.yaml")),
        "GATE_INSPECT_KEY": INSPECT_KEY,
        "E2E_OPENAI_KEY": KEY,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "gate-mw-e2e",
        # Nothing is exported on a timer during the test: what arrives was flushed at shutdown.
        "OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_BLRP_SCHEDULE_DELAY": "600000",
    })
    server = ServerProcess(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app.app:app", "--host", "127.0.0.1",
         "--port", "0"], env,
    )
    try:
        assert server.ready.wait(60), "".join(server.output)
        assert server.port, "".join(server.output)
        yield server
    finally:
        server.close()


def _traceparent(n: int) -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{n:016x}-01", "x-gate-caller": "team-a"}


def test_example_app_exports_everything_in_the_incoming_trace_and_flushes_on_sigterm(
    server: ServerProcess, receiver: Receiver, fake_upstream: FakeUpstream
) -> None:
    up = fake_upstream
    up.set_default("gpt-4o-mini", Reply("complaint", input_tokens=30, output_tokens=2))
    up.script("claude-sonnet-4", Fault(503), Fault(503))  # the call and its retry: falls back
    up.set_default("gpt-4o", Reply("A short answer in several words.", input_tokens=40, output_tokens=7))
    bodies: list[bytes] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
        def post(path: str, n: int, **body: Any) -> httpx.Response:
            response = client.post(path, json=body, headers=_traceparent(n))
            bodies.append(response.content)
            return response

        plain = post("/classify", 1, text="Broken parcel.", labels=["complaint", "praise"])
        fallback = post("/summarise", 2, text="A long article.")
        streamed = post("/stream", 3, question="Stream this.")
        # All failed: gpt-4o answers 500; gemini rejects the key and echoes it, as some do.
        up.script("gpt-4o", Fault(500))
        up.script("gemini-2.5-pro", Fault(401, message=f"Incorrect API key provided: {KEY}"))
        failed = post("/ask", 4, question="Nobody answers.")
        inspected = [
            client.get(path, headers={"x-gate-key": INSPECT_KEY, **_traceparent(5)})
            for path in ("/gate/report.json", "/gate/experiments.json", "/gate/cooldowns.json", "/gate/")
        ]
    assert (plain.status_code, fallback.status_code, streamed.status_code) == (200, 200, 200)
    assert fallback.json()["attempts"] == 3
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert failed.status_code == 502
    assert failed.json()["error"]["type"] == "all_attempts_failed"
    assert [r.status_code for r in inspected] == [200] * 4
    report = inspected[0].json()
    assert {row["group"]["route"] for row in report["rows"]} >= {"/classify", "/summarise", "/ask"}
    assert receiver.spans() == []  # nothing exported before the stop

    server.stop()

    # -- every span, in the one incoming trace -----------------------------------------
    everything = [span for _, span in receiver.spans()]
    # FastAPI's own spans (recent versions trace themselves) are in the same trace.
    assert {span.trace_id.hex() for span in everything} == {TRACE_ID}
    spans = [span for span in everything if span.name.startswith(("gate.route", "chat "))]
    names = sorted(span.name for span in spans)
    assert names == sorted([
        "gate.route /classify", "chat gpt-4o-mini",
        "gate.route /summarise", "chat claude-sonnet-4", "chat claude-sonnet-4", "chat gpt-4o",
        "gate.route /stream", "chat gpt-4o",
        "gate.route /ask", "chat gpt-4o", "chat gemini-2.5-pro",
    ])
    routes = {span.name: span for span in spans if span.name.startswith("gate.route")}
    by_id = {span.span_id: span for span in everything}
    root = routes["gate.route /classify"]
    while root.parent_span_id in by_id:
        root = by_id[root.parent_span_id]
    assert root.parent_span_id.hex() == f"{1:016x}"  # the incoming traceparent's parent
    failed_route = attributes(routes["gate.route /ask"].attributes)
    assert failed_route["error.type"] == "all_attempts_failed"
    # Each attempt's own span id reached the upstream as the traceparent's parent.
    attempt_ids = {span.span_id.hex() for span in spans if span.name.startswith("chat ")}
    sent = {r.headers["traceparent"].split("-")[2] for r in up.requests}
    assert sent == attempt_ids

    # -- the three GenAI metrics, with the conventions' units and buckets ---------------
    metrics = {metric.name: metric for metric in receiver.metrics()}
    expected = {
        "gen_ai.client.operation.duration": ("s", DURATION_BUCKETS),
        "gen_ai.client.token.usage": ("{token}", TOKEN_BUCKETS),
        "gen_ai.client.operation.time_to_first_chunk": ("s", DURATION_BUCKETS),
    }
    for name, (unit, buckets) in expected.items():
        metric = metrics[name]
        assert metric.unit == unit
        points = metric.histogram.data_points
        assert points
        assert all(list(p.explicit_bounds) == buckets for p in points)
    assert metrics["gate.cost"].unit == "{USD}"
    events = [r for r in receiver.logs() if r.event_name == "gen_ai.client.operation.exception"]
    assert len(events) == 4  # two 503s, the 500 and the 401

    # -- no key anywhere: exported bytes, log lines, response bodies -----------------------
    secret = KEY.encode()
    assert not any(secret in raw for raw in receiver.raw)
    assert not any(secret in body for body in bodies)
    assert not any(secret in r.content for r in inspected)
    assert KEY not in "".join(server.output)
    assert "gemini-pro" in "".join(server.output)  # the 401 was logged, without the key
