"""Every sample of docs/from-litellm.md: its LiteLLM file served by `gate-mw serve` as
written (its local upstream is the fake one), the report it prints, and the curl call."""

from __future__ import annotations

import json
from pathlib import Path

from _docs import blocks, exports, gate_mw_serve, run_curl

from gate_mw.testing import FakeUpstream, Reply

PAGE = blocks("from-litellm.md")


def test_every_sample_runs(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    (config,) = [b for b in PAGE if b.lang == "yaml"]
    (tmp_path / "config.yaml").write_text(
        config.text.replace("http://localhost:8000/v1", fake_upstream.openai_base)
    )
    (serve,) = [b for b in PAGE if b.lang == "bash" and "gate-mw serve" in b.text]
    env = exports(serve.text)
    command = next(line for line in serve.text.splitlines() if line.startswith("gate-mw serve"))
    (report,) = [b for b in PAGE if b.lang == "text"]
    (curl,) = [b for b in PAGE if b.lang == "bash" and b.text.startswith("curl")]
    fake_upstream.set_default("gpt-4o", Reply("Hello from gpt-4o."))

    with gate_mw_serve(command, tmp_path, env) as (address, printed):
        assert [line for line in printed if line.startswith("WARNING")] == report.text.splitlines()
        answer = json.loads(run_curl(curl.text, address, env))

    assert answer["model"] == "gpt-4o"
    assert answer["choices"][0]["message"]["content"] == "Hello from gpt-4o."
    assert fake_upstream.requests[-1].headers["authorization"] == f"Bearer {env['OPENAI_API_KEY']}"
