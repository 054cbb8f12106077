"""The dashboard page in a real browser: headless Chromium loads it from the running example
app, renders its charts and tables with no console message, and takes the screenshot that
docs/observability.md shows (copied to docs/ when GATE_UPDATE_DOCS=1)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
from pathlib import Path

import httpx
import pytest
from examples._config import SEED, SIMULATED_CONFIG
from examples.fastapi_app.app import create_app

from _apps import serve_http
from gate_mw import Breaker, Gateway

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
KEY = "dashboard-test-key"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def _chromium(*args: str) -> tuple[bytes, str]:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode(errors="replace")
    return out, err.decode(errors="replace")


async def _traffic(base: str) -> None:
    """Calls on every route, from several callers, so each part of the page has content."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        article = {"text": "The council extended the night bus network after a trial."}
        for n in range(4):
            headers = {"x-gate-caller": f"team-{n % 2}"}
            await client.post("/summarise", json=article, headers=headers)
            await client.post("/classify", json={"text": "Broken.", "labels": ["complaint", "praise"]},
                              headers=headers)
        for n in range(12):  # both experiment arms, by caller
            await client.post("/draft", json={"question": "Draft a reply."},
                              headers={"x-gate-caller": f"user-{n}"})
        await client.post("/stream", json={"question": "Stream it."})


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
async def test_the_dashboard_renders_in_chromium(tmp_path: Path) -> None:
    # Two failures open a breaker: claude-sonnet fails its first two calls, so the page shows a cooldown.
    gateway = Gateway.from_file(SIMULATED_CONFIG, seed=SEED, breaker=Breaker(failures=2, cooldown=600))
    async with serve_http(create_app(gateway, inspect_key=KEY)) as base:
        await _traffic(base)
        url = f"{base}/gate/?key={KEY}"
        (dom, log), (_, shot_log) = await asyncio.gather(
            _chromium("--dump-dom", url),
            _chromium(f"--screenshot={tmp_path / 'dashboard.png'}", "--window-size=1100,1900", url),
        )

    page = dom.decode()
    assert "<h1>gate_mw" in page  # the key was traded for a cookie and the page loaded
    assert len(re.findall(r'<svg class="chart"', page)) == 2
    assert len(re.findall(r'<rect class="bar"', page)) >= 4
    for table in ("report", "experiment", "cooldowns"):
        assert f'<table class="{table}">' in page
    assert re.search(r"<td[^>]*>open</td>", page)  # claude-sonnet, with its reason and until-time
    assert "mini (control)" in page
    assert "4o" in page
    assert ":CONSOLE" not in log + shot_log, log + shot_log
    png = (tmp_path / "dashboard.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1100, 1900)
    if os.environ.get("GATE_UPDATE_DOCS") == "1":
        shutil.copyfile(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")
