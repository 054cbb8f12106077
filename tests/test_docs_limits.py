"""The samples of the limits, caching, budgets and scaling pages: valid as they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gate_mw import GatewayConfig, RedisStore
from gate_mw.state import open_store

DOCS = Path(__file__).resolve().parent.parent / "docs"


def yaml_blocks(page: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("page", ["scaling.md"])
def test_yaml_samples_are_valid_gateway_files(page: str) -> None:
    blocks = yaml_blocks(page)
    assert blocks
    for block in blocks:
        config = GatewayConfig.model_validate(yaml.safe_load(block))
        assert config.state is not None
        store = open_store(config.state, **config.state_options.model_dump())
        assert isinstance(store, RedisStore)


@pytest.mark.parametrize("page", ["limits.md", "caching.md", "budgets.md"])
def test_route_policy_samples_are_valid_policies(page: str) -> None:
    import gate_mw

    text = (DOCS / page).read_text()
    found = re.findall(r"@route_policy\((.*?)\)\nasync def", text, flags=re.DOTALL)
    assert found
    for arguments in found:
        namespace = {name: getattr(gate_mw, name) for name in gate_mw.__all__}
        policy = eval(f"RoutePolicy({arguments})", namespace)  # the page's own text
        assert policy.budgets or policy.limits or policy.cache
