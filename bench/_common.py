"""Shared helpers for the scripts in bench/: the fake upstream, percentiles, tables.

A script run as ``python bench/NAME.py`` puts the repository root and ``src`` first on
``sys.path`` and then imports ``from bench._common import ...``. The API is deliberately small:

- `fake_upstream(latency, fail_models=())`: a context manager running gate_mw's fake upstream
  (``python -m gate_mw.testing``) in its own process (so its CPU is not counted as the client's),
  yielding an `Upstream`: its base `url`, and `cpu_seconds()` it has used (to tell when it,
  not the client, is the bottleneck). Requests for a model in `fail_models` get a 500.
- `percentile(values, q)`: the q-th percentile (0..100) of `values`, interpolated.
- `print_table(header, rows, text_columns=1)`: a plain-text table, figures right-aligned.
- `Clock`: wall time, this process's CPU time and the cycle collector's time around a block.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SRC", "Clock", "Upstream", "cpu_seconds", "fake_upstream", "percentile", "print_table",
    "serving_process",
]

#: The package source directory, put on the fake upstream's PYTHONPATH.
SRC = Path(__file__).resolve().parent.parent / "src"


@dataclass(frozen=True, slots=True)
class Upstream:
    """A fake upstream running in its own process."""

    url: str  # http://127.0.0.1:PORT
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU the upstream process has used so far."""
        return cpu_seconds(self.pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving_process(command: Sequence[str], env: dict[str, str], ready: str) -> Iterator[tuple[str, int]]:
    """Run `command` for the block: yields its first line of output, which must start with
    `ready` (printed once it listens), and its pid; terminates it after."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the ready line, or "" if it died
        if not line.startswith(ready):
            raise RuntimeError(f"{command[2]} did not start: {line!r}")
        yield line, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def fake_upstream(latency: float = 0.0, fail_models: Sequence[str] = ()) -> Iterator[Upstream]:
    """Run the fake upstream (`latency` seconds per reply; a 500 for `fail_models`) in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "gate_mw.testing", "--latency", str(latency)]
    for model in fail_models:
        command += ["--fail-model", model]
    with serving_process(command, env, "READY ") as (line, pid):
        yield Upstream(line.split()[1], pid)


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) of `values`, linearly interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, text_columns: int = 1) -> None:
    """Print `rows` under `header`: the first `text_columns` columns left-aligned, the
    others (figures) right-aligned."""
    cells = [[str(cell) for cell in header], *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * width for width in widths))
    for row in cells[1:]:
        print(line(row))


_gc_seconds = [0.0, 0.0]  # total so far, start of the collection under way


def _time_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_seconds[1] = time.perf_counter()
    else:
        _gc_seconds[0] += time.perf_counter() - _gc_seconds[1]


class Clock:
    """Wall and process CPU seconds spent inside ``with clock:`` (CPU of all threads), and
    the seconds of it the cycle collector ran (`gc`)."""

    __slots__ = ("_cpu", "_gc", "_wall", "cpu", "gc", "wall")

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.gc = 0.0
        self._wall = 0.0
        self._cpu = 0.0
        self._gc = 0.0

    def __enter__(self) -> Clock:
        if _time_gc not in gc.callbacks:
            gc.callbacks.append(_time_gc)
        self._gc = _gc_seconds[0]
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall
        self.gc = _gc_seconds[0] - self._gc
