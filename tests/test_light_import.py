"""`import gate_mw` loads no framework, no OTel SDK, no yaml and no aiohttp until used."""

from __future__ import annotations

import json
import subprocess
import sys

# What `import gate_mw` must leave out of sys.modules (issue 14): each is loaded where used.
LAZY = ("aiohttp", "httpx_aiohttp", "yaml", "opentelemetry.sdk", "starlette", "fastapi", "litestar", "redis")

_PROBE = "import json, sys, gate_mw; print(json.dumps(sorted(sys.modules)))"


def _loaded(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_gate_mw_is_light() -> None:
    loaded = _loaded(_PROBE)
    assert [name for name in LAZY if name in loaded] == []


def test_the_lazy_parts_load_when_used() -> None:
    """The check above could pass by the modules being gone: a gateway's own pool and a
    config file still bring in aiohttp and yaml."""
    code = (
        "import asyncio, json, sys, tempfile, gate_mw\n"
        "from gate_mw.config import load_config\n"
        "with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:\n"
        "    f.write('models: []\\n')\n"
        "load_config(f.name)\n"
        "async def pool():\n"
        "    gate_mw.Gateway(env={})._client()\n"
        "asyncio.run(pool())\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = _loaded(code)
    assert {"aiohttp", "yaml"} <= loaded
