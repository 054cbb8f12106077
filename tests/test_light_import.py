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
    assert sorted(name for name in loaded if name.startswith("gate_mw")) == [
        "gate_mw", "gate_mw._lazy", "gate_mw._version",
    ]


# What an app's module pays nothing for until it makes a gateway and serves a request: the
# gateway's insides (bound by `gateway._load`), OpenTelemetry (the middleware binds its
# propagation at the first request), asyncio, and httpx (only a user's httpx client needs it).
APP_LEAVES = (
    "httpx", "asyncio", "opentelemetry", "gate_mw.client", "gate_mw.config", "gate_mw._registry",
    "gate_mw.providers", "gate_mw.telemetry", "gate_mw.routing._router", "gate_mw.limits._guard",
)


def _modules(setup: str, step: str) -> tuple[set[str], set[str]]:
    """The modules a fresh interpreter has loaded after `setup`, and after `step` too."""
    code = (
        f"import json, sys\n{setup}\nbefore = sorted(sys.modules)\n{step}\n"
        "print(json.dumps([before, sorted(sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    before, after = (set(modules) for modules in json.loads(out.splitlines()[-1]))
    return before, after


def test_the_app_import_loads_no_gateway_insides_until_a_gateway_is_made() -> None:
    before, after = _modules(APP_IMPORT, "gateway = Gateway(env={})")
    assert [name for name in APP_LEAVES if name in before] == []
    # The lazy parts were not lost: a gateway brings them in (all but httpx and the
    # propagation the middleware binds at its first request).
    assert [name for name in APP_LEAVES[1:] if name not in after] == []
    assert "httpx" not in after


def test_the_middleware_binds_trace_propagation_at_its_first_use() -> None:
    """The stand-in replaces itself with the real function: later requests call it directly."""
    code = (
        "import json\n"
        "from gate_mw import middleware\n"
        "from gate_mw.telemetry import _propagation\n"
        "before = middleware.continue_trace is _propagation.continue_trace\n"
        "token = middleware.continue_trace({'headers': [(b'traceparent', "
        "b'00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')]})\n"
        "middleware.end_continued(token)\n"
        "print(json.dumps([before, token is not None,"
        " middleware.continue_trace is _propagation.continue_trace,"
        " middleware.end_continued is _propagation.end_continued]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out.splitlines()[-1]) == [False, True, True, True]


# Parts of the gateway that a policy, or a gateway in memory that reads no report, never uses.
POLICY_LEAVES = (
    "gate_mw.limits._guard", "gate_mw.routing._router", "gate_mw.state._redis", "gate_mw.chat._model",
)
GATEWAY_LEAVES = (
    "gate_mw.state._redis", "gate_mw.state._lua", "gate_mw.insights._report", "gate_mw.insights._experiments",
)


def test_a_policy_loads_no_guard_router_store_or_message_model() -> None:
    """Packages load their names on first use: a policy's `Budget`, `Limit`, `Cache`,
    `Experiment` and strategy come without the machinery that enforces them."""
    code = (
        "from gate_mw import Budget, Cache, Experiment, Limit, RoutePolicy\n"
        "RoutePolicy(budget=Budget(1.0), limits=[Limit(rpm=5)], cache=Cache(),"
        " experiment=Experiment('e', {'a': 'x', 'b': 'y'}))"
    )
    loaded = _loaded(_PROBE.format(code))
    assert [name for name in POLICY_LEAVES if name in loaded] == []


def test_a_gateway_in_memory_loads_no_redis_store_or_reports_until_used() -> None:
    before, after = _modules(
        "import asyncio\nfrom gate_mw import Gateway\ngateway = Gateway(env={})",
        "asyncio.run(gateway.report())\nfrom gate_mw.state import open_store\n"
        "open_store('redis://127.0.0.1:6379/0')",
    )
    assert [name for name in GATEWAY_LEAVES if name in before] == []
    assert {"gate_mw.insights._report", "gate_mw.state._redis", "gate_mw.state._lua"} <= after


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
