"""Every command and sample of docs/observability.md, run as written: the Python samples in
processes of their own, the shell blocks against the example app they start (with the
collector's address and the port swapped for the test's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _otlp import Receiver, running_receiver
from _process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "observability.md"
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", DOC.read_text(), re.DOTALL)
PYTHON = [code for kind, code in BLOCKS if kind == "python"]
SHELL = [code for kind, code in BLOCKS if kind == "bash"]
# The one command needing a container runtime, which the test machines lack.
NOT_RUN = "docker run --rm -p 16686:16686 -p 4317:4317 -p 4318:4318 jaegertracing/jaeger:latest"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


def _env(receiver: Receiver) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENROUTER_", "GATE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")]))
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # uvicorn
    return env


def test_the_page_has_the_blocks_this_test_expects() -> None:
    assert len(PYTHON) == 3
    assert [code.split()[0] for code in SHELL] == ["export", "curl", "docker", "curl"]
    assert SHELL[2].strip() == NOT_RUN


@pytest.mark.parametrize("code", PYTHON, ids=["configure", "report", "mount"])
def test_python_samples_run(code: str, receiver: Receiver) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(receiver), capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr


def test_shell_commands_run_against_the_example(receiver: Receiver) -> None:
    start, traced, _, inspect = SHELL
    start = start.replace("http://localhost:4318", receiver.url).replace(
        "uvicorn examples.fastapi_app.app:app", "exec uvicorn examples.fastapi_app.app:app --port 0"
    )
    server = ServerProcess(["bash", "-euc", start], _env(receiver))
    try:
        assert server.ready.wait(60), "".join(server.output)
        assert server.port, "".join(server.output)

        def run(block: str) -> list[str]:
            done = subprocess.run(
                ["bash", "-euc", block.replace("localhost:8000", f"127.0.0.1:{server.port}")],
                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
            )
            assert done.returncode == 0, done.stderr
            return [line for line in re.split(r"(?<=[}\]])(?=[{\[])", done.stdout) if line]

        [answer] = run(traced)
        report, cooldowns, experiments = run(inspect)
        code = server.stop()
    finally:
        server.close()

    assert json.loads(answer)["attempts"] == 3  # the fallback the page describes
    assert {row["group"]["route"] for row in json.loads(report)["rows"]} == {"/summarise"}
    assert {c["deployment"] for c in json.loads(cooldowns)} >= {"claude-sonnet", "gpt-4o"}
    assert [e["name"] for e in json.loads(experiments)] == ["draft-model"]
    # The trace tree the page shows arrived, in the traceparent's trace, flushed at the stop.
    spans = [span for _, span in receiver.spans()]
    gate = sorted(s.name for s in spans if s.name.startswith(("gate.route", "chat ")))
    assert gate == ["chat claude-sonnet-4", "chat claude-sonnet-4", "chat gpt-4o", "gate.route /summarise"]
    traced = [s for s in spans if s.name.startswith(("gate.route", "chat ", "POST /summarise"))]
    assert {s.trace_id.hex() for s in traced} == {"0af7651916cd43dd8448eb211c80319c"}
    assert {resource["service.name"] for resource, _ in receiver.spans()} == {"my-app"}
    assert code in (0, -15)
