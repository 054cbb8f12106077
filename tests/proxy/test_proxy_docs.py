"""Every sample of docs/proxy.md, run as written against `gate-mw serve` of its own
gateway file (ports aside)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest
import yaml
from _docs import blocks, exports, gate_mw_serve, run_curl

from gate_mw import Gateway

PAGE = blocks("proxy.md")


def test_every_sample_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (config,) = [b for b in PAGE if b.lang == "yaml"]
    (tmp_path / "gateway.yaml").write_text(config.text)
    (serve,) = [b for b in PAGE if b.lang == "bash" and "gate-mw serve" in b.text]
    env = exports(serve.text)
    command = next(line for line in serve.text.splitlines() if line.startswith("gate-mw serve"))
    curls = [b for b in PAGE if b.lang == "bash" and b.text.startswith("curl")]
    clients = [b for b in PAGE if b.lang == "python" and "localhost:4000" in b.text]
    mounts = [b for b in PAGE if b.lang == "python" and "gateway.yaml" in b.text]
    assert (len(curls), len(clients), len(mounts)) == (4, 2, 3)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with gate_mw_serve(command, tmp_path, env) as (address, _):
        chat, stream, models, keys = (run_curl(b.text, address, env) for b in curls)
        assert json.loads(chat)["model"] == "fast"
        assert stream.rstrip().endswith("data: [DONE]")
        assert '"usage"' in stream
        assert [m["id"] for m in json.loads(models)["data"]] == ["fast", "sim-small"]
        made = json.loads(keys)
        assert made["key"].startswith("sk-gate-")
        assert (made["limits"][0]["rpm"], made["budget"]["limit_usd"]) == (60, 20)
        for sample in clients:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(sample.text.replace("localhost:4000", address), {})
            assert printed.getvalue().strip()

    monkeypatch.chdir(tmp_path)
    for sample in mounts:
        namespace: dict[str, object] = {}
        exec(sample.text, namespace)
        assert isinstance(namespace["gateway"], Gateway)
        assert namespace["app"] is not None
    assert os.environ["TEAM_A_KEY"] == env["TEAM_A_KEY"]
    assert yaml.safe_load(config.text)["proxy"]["master_key_env"] == "GATE_MASTER_KEY"
