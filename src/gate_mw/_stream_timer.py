"""The idle and total time limits of a committed stream, kept by one timer.

Nothing is scheduled per chunk: a read only notes when it began, and the timer, armed once,
re-arms itself when it fires early and cancels the reading task when the read is late."""

from __future__ import annotations

import asyncio
from typing import Any

from .errors import ErrorKind, UpstreamError

__all__ = ["StreamTimer"]


class StreamTimer:
    """Cancels a read of the stream that outlasts `idle` seconds or passes `deadline`
    (loop time); `expired(task)` then says which, for the read's `CancelledError`."""

    __slots__ = ("_cancelling", "_deadline", "_deadline_s", "_expired", "_idle", "_loop", "_reader",
                 "_reading", "_timer")

    def __init__(self, idle: float | None, deadline: float | None, deadline_s: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle, self._deadline = idle, deadline
        self._deadline_s = deadline_s  # the policy's, for the message
        self._reading: float | None = None  # loop time the current read began
        self._reader: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired: UpstreamError | None = None
        self._cancelling = 0

    def reading(self) -> None:
        """A read of the stream begins in the current task."""
        self._reader = asyncio.current_task()
        self._reading = now = self._loop.time()
        if self._timer is None:
            self._arm(now)

    def read(self) -> asyncio.Task[Any] | None:
        """The read ended; the task that made it."""
        self._reading = None
        return self._reader

    def expired(self, task: asyncio.Task[Any] | None) -> UpstreamError | None:
        """Why `task`'s read was cancelled, if this timer cancelled it (and no one else)."""
        expired, self._expired = self._expired, None
        if expired is not None and task is not None and task.uncancel() <= self._cancelling:
            return expired
        return None

    def stop(self) -> None:
        self._reading = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, since: float) -> None:
        self._timer = self._loop.call_at(self._expiry(since), self._watch)

    def _expiry(self, since: float) -> float:
        idle, deadline = self._idle, self._deadline
        if idle is None:
            assert deadline is not None
            return deadline
        return since + idle if deadline is None else min(since + idle, deadline)

    def _watch(self) -> None:
        """Timer callback: re-arm for the read in progress, or cancel it if it is late."""
        self._timer = None
        since, task = self._reading, self._reader
        if since is None or task is None:
            return  # not reading: the next read arms the timer again
        expiry = self._expiry(since)
        if self._loop.time() < expiry:
            self._arm(since)
            return
        if expiry == self._deadline:
            message = f"the deadline of {self._deadline_s}s ran out mid-stream"
            self._expired = UpstreamError(ErrorKind.DEADLINE, message)
        else:
            self._expired = UpstreamError(ErrorKind.TIMEOUT, f"no chunk for {self._idle}s")
        self._cancelling = task.cancelling()
        task.cancel()
