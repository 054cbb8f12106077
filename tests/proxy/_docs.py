"""Run the samples of a docs page: its fenced code blocks, in order, against a server."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOCS", "Block", "blocks", "gate_mw_serve", "run_curl"]

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SCRIPT = Path(sys.executable).with_name("gate-mw")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of `docs/{page}`."""
    return [Block(m.group(1), m.group(2)) for m in _FENCE.finditer((DOCS / page).read_text())]


def exports(text: str) -> dict[str, str]:
    """The variables an `export A=1 B=2` line of a shell sample sets."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("export "):
            for word in shlex.split(line)[1:]:
                name, _, value = word.partition("=")
                found[name] = value
    return found


@contextlib.contextmanager
def gate_mw_serve(command: str, cwd: Path, env: Mapping[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Run a `gate-mw serve ...` line of a sample on a free port; yields its address and
    what it printed up to then (warnings first, then where it listens and its models)."""
    argv = shlex.split(command, comments=True)
    assert argv[0] == "gate-mw", command
    argv = [str(SCRIPT), *argv[1:]]
    argv[argv.index("--port") + 1] = "0"
    process = subprocess.Popen(
        [*argv, "--log-level", "warning"],
        cwd=cwd,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while lines[-1] and not lines[-1].startswith("  keys:"):
            lines.append(process.stdout.readline())
        serving = next((line for line in lines if line.startswith("gate-mw: serving on ")), None)
        assert serving is not None, "".join(lines)
        yield (
            serving.split()[3].removeprefix("http://").removesuffix("/v1"),
            [line.rstrip("\n") for line in lines],
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def run_curl(text: str, address: str, env: Mapping[str, str]) -> str:
    """A curl sample against `address` (for `localhost:4000`); its output."""
    script = text.replace("localhost:4000", address)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout
