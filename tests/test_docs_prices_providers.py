"""The samples of docs/providers.md and docs/cost.md run as written: each YAML block is a
gateway file that starts, and each Python block executes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gate_mw import Gateway, PriceTable

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).resolve().parent.parent / "docs"
ENV = dict.fromkeys(
    (
        "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY", "AZURE_OPENAI_API_KEY",
        "GEMINI_API_KEY", "MISTRAL_API_KEY", "GROQ_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY",
        "TOGETHER_API_KEY", "FIREWORKS_API_KEY", "PORTKEY_API_KEY", "HELICONE_AUTH",
        "PORTKEY_VIRTUAL_KEY",
    ),
    "sk-doc-test",
)


def _blocks(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)


@pytest.mark.parametrize(
    ("page", "index"),
    [(page, index) for page in ("providers.md", "cost.md") for index in range(len(_blocks(page, "yaml")))],
)
async def test_yaml_samples_start_a_gateway(page: str, index: int, tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(_blocks(page, "yaml")[index])
    async with Gateway.from_file(path, env=ENV) as gateway:
        assert gateway.registry.deployments


def test_the_price_table_sample_runs_and_says_what_it_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = [block for block in _blocks("cost.md", "python") if "PriceTable" in block]
    table_sample, override_sample = samples
    names: dict[str, object] = {}
    exec(table_sample, names)
    table = PriceTable.bundled()
    assert table.price("o3-pro", "openai") != table.price("o3", "openai")
    assert table.price("gpt-4o-2024-08-06", "openai") == table.price("gpt-4o", "openai")
    assert table.context_window("claude-sonnet-4-5", "anthropic") == 200_000
    assert table.price("my-finetune") is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gateway.yaml").write_text("models:\n  - name: my-finetune\n")
    exec(override_sample, names)
    gateway = names["gateway"]
    assert isinstance(gateway, Gateway)
    price = gateway.registry.deployments[0].price
    assert price is not None
    assert price.input == 3.0
