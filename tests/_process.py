"""A server in a process of its own, stopped with SIGTERM as Docker and Kubernetes do."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

__all__ = ["ServerProcess"]

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """A uvicorn server process (`argv`) on a free port: its output is collected, and
    `ready` is set once it says where it listens (or it ended)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.output: list[str] = []
        self.port: int | None = None
        self.ready = threading.Event()
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.output.append(line)
            if match := re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line):
                self.port = int(match.group(1))
                self.ready.set()
        self.ready.set()  # the process ended: stop waiting

    def stop(self) -> int:
        """SIGTERM, then wait for the exit and the last of the output; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.close()
        return code

    def close(self) -> None:
        """Make sure the process is gone and its pipes closed (also after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for reader in self.readers:
            reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
