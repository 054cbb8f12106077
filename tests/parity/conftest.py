"""Parity fixtures: every test here runs once per framework, on apps built from one spec."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from _parity_apps import FRAMEWORKS, Framework, Telemetry, build, parity_gateway, serve

from gate_mw import Gateway
from gate_mw.testing import FakeUpstream


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> Framework:
    name: Framework = request.param
    return name


@pytest.fixture
def gateway(fake_upstream: FakeUpstream, telemetry: Telemetry) -> Gateway:
    return parity_gateway(fake_upstream, telemetry.config)


@pytest.fixture
async def client(framework: Framework, gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the spec's app in `framework`, its lifespan running."""
    async with serve(build(framework, gateway)) as client:
        yield client
