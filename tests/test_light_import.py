"""`import gate_mw`, and what an app imports from it, load no framework, no OTel SDK, no yaml
and no aiohttp until used; `import gate_mw` alone loads none of the gateway."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import gate_mw

# What `import gate_mw` must leave out of sys.modules (issue 14): each is loaded where used.
LAZY = ("aiohttp", "httpx_aiohttp", "yaml", "opentelemetry.sdk", "starlette", "fastapi", "litestar", "redis")

_PROBE = "import json, sys; {}; print(json.dumps(sorted(sys.modules)))"
APP_IMPORT = "from gate_mw import Gateway, GatewayMiddleware, RoutePolicy, route_policy"


def _loaded(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("statement", ["import gate_mw", APP_IMPORT])
def test_import_gate_mw_is_light(statement: str) -> None:
    loaded = _loaded(_PROBE.format(statement))
    assert [name for name in LAZY if name in loaded] == []


def test_import_gate_mw_alone_loads_no_part_of_the_gateway() -> None:
    """Its names load on first use (PEP 562): `gate_mw.testing` or `gate_mw.errors` alone
    does not pay for the gateway."""
    loaded = _loaded(_PROBE.format("import gate_mw"))
    assert sorted(name for name in loaded if name.startswith("gate_mw")) == ["gate_mw", "gate_mw._version"]


def test_every_public_name_loads_and_types_agree() -> None:
    """`__all__` and the lazy table name the same things, each resolves from a fresh
    interpreter, and a submodule is still an attribute after a bare `import gate_mw`."""
    code = (
        "import json, gate_mw\n"
        "names = [name for name in gate_mw.__all__ if getattr(gate_mw, name) is None]\n"
        "star = {}\n"
        "exec('from gate_mw import *', star)\n"
        "print(json.dumps([names, sorted(set(gate_mw.__all__) - set(star)), gate_mw.config.__name__]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out.splitlines()[-1]) == [[], [], "gate_mw.config"]
    assert set(gate_mw.__all__) - {"__version__"} == set(gate_mw._HOMES)


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
