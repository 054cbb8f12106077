"""The Python samples of the docs pages, each page run in order as one script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
PAGES = ["tools.md", "structured-output.md", "performance.md"]


@pytest.mark.parametrize("page", PAGES)
def test_page_samples_run(page: str) -> None:
    blocks = _BLOCK.findall((DOCS / page).read_text())
    assert blocks, f"{page} has no python samples"
    namespace: dict[str, object] = {"__name__": f"docs_{page.removesuffix('.md')}"}
    exec(compile("\n".join(blocks), str(DOCS / page), "exec"), namespace)
