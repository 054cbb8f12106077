"""Waiting for the fake upstream's counters, from threads and from event loops alike."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Waiters", "wake"]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """Resolve `future` in `loop`, from any thread."""
    # A closed loop raises RuntimeError; nobody can be waiting on its future any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future)


@dataclass(frozen=True, slots=True)
class _AsyncWaiter:
    predicate: Callable[[], bool]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class Waiters:
    """Whoever waits for a predicate over state guarded by `lock`; `notify_locked` (with the
    lock held) after each change wakes those whose predicate now holds."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._changed = threading.Condition(lock)
        self._threads = 0  # threads in wait(): only they need the condition notified
        self._loops: list[_AsyncWaiter] = []

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()`; False on timeout."""
        with self._changed:
            self._threads += 1
            try:
                return self._changed.wait_for(predicate, timeout)
            finally:
                self._threads -= 1

    async def wait_async(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Like `wait`, without blocking the calling event loop."""
        loop = asyncio.get_running_loop()
        waiter = _AsyncWaiter(predicate, loop, loop.create_future())
        with self._lock:
            if predicate():
                return True
            self._loops.append(waiter)
        try:
            await asyncio.wait_for(waiter.future, seconds)
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if waiter in self._loops:
                    self._loops.remove(waiter)
        return True

    def notify_locked(self) -> None:
        """Wake the waiters whose predicate holds now; the caller holds the lock."""
        # Called twice a request: with nobody waiting (a benchmark), it costs nothing.
        if self._threads:
            self._changed.notify_all()
        for waiter in [w for w in self._loops if w.predicate()]:
            self._loops.remove(waiter)
            wake(waiter.loop, waiter.future)
