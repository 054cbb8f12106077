"""`gate-mw serve`, the installed console script, run as a subprocess and called with the
`openai` SDK; and its settings and errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from _apps import serve_http
from gate_mw._heap import THRESHOLDS
from gate_mw.proxy.cli import CONFIG_ENV, app_from_env, main

SCRIPT = Path(sys.executable).with_name("gate-mw")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """`gate-mw serve --port 0` with no config: its base URL and the lines it printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]  # the address, printed once listening
        assert lines[0].startswith("gate-mw: serving on http://127.0.0.1:"), lines
        while "keys:" not in lines[-1]:
            lines.append(process.stdout.readline())
        yield lines[0].split()[3].removesuffix("/v1"), lines
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_serve_answers_a_chat_completion(served: tuple[str, list[str]]) -> None:
    url, lines = served
    assert any("sim-small" in line for line in lines)
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="sim-medium",
            messages=[{"role": "user", "content": "hello"}],
        )
        assert completion.choices[0].message.content
        assert completion.model == "sim-medium"
        # LiteLLM's clients call the root path too.
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0) as root:
            assert [m.id for m in root.models.list().data] == ["sim-small", "sim-medium", "sim-large"]


def test_a_bad_config_exits_with_its_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models:\n  - name: m\n    provider: nope\n")
    assert main(["serve", str(path), "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert str(path) in error
    assert "models[0]" in error


@pytest.mark.anyio
async def test_workers_build_the_app_from_the_file_the_cli_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # With --workers or --reload each worker process calls app_from_env(): the same file,
    # its warnings already printed once by the parent, so not repeated.
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_key: none, api_base: x}\n"
        "litellm_settings: {set_verbose: true}\n"
    )
    monkeypatch.setenv(CONFIG_ENV, str(path))
    with caplog.at_level(logging.WARNING, "gate_mw.config"):
        app = app_from_env()
    assert not [r for r in caplog.records if r.name == "gate_mw.config"]
    async with serve_http(app) as url, httpx.AsyncClient() as client:
        models = (await client.get(f"{url}/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["m"]


def test_a_worker_settles_its_heap_before_serving() -> None:
    # In a fresh interpreter: freezing and the thresholds are process-wide.
    code = (
        "import gc, json; from gate_mw.proxy import cli\n"
        "before = gc.get_freeze_count()\n"
        "cli.worker_app()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    before, frozen, thresholds = json.loads(out.splitlines()[-1])
    assert before == 0
    assert frozen > 10_000  # modules and the gateway: never scanned for cycles again
    assert tuple(thresholds) == THRESHOLDS
