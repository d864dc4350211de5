"""A virtual ``Clock`` for tests and simulations (the real one is ``adapters.clock``)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading


class VirtualClock:
    """Time that moves only when ``advance`` (or ``set``) is called.

    ``sleep`` returns once virtual time has reached its deadline. ``now`` and ``advance`` may be
    called from any thread; sleepers are woken on their own event loop.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        # No lock: reading one attribute is atomic, and a simulation asks millions of times.
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            deadline = self._now + max(0.0, seconds)
            if deadline <= self._now:
                future.set_result(None)
            else:
                heapq.heappush(self._sleepers, (deadline, next(self._counter), future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper whose deadline passed."""
        with self._lock:
            self._set_locked(self._now + max(0.0, seconds))

    def set(self, now: float) -> None:
        """Move time forward to ``now`` (never backwards)."""
        with self._lock:
            if now <= self._now:
                return
            sleepers = self._sleepers
            if sleepers and sleepers[0][0] <= now:
                self._set_locked(now)
            else:
                self._now = now

    def _set_locked(self, now: float) -> None:
        self._now = now
        if not self._sleepers or self._sleepers[0][0] > now:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        while self._sleepers and self._sleepers[0][0] <= now:
            _, _, future = heapq.heappop(self._sleepers)
            loop = future.get_loop()
            if loop is running:
                # Same thread: no need to wake the loop through its self-pipe.
                loop.call_soon(_wake, future)
            else:
                loop.call_soon_threadsafe(_wake, future)

    @property
    def next_deadline(self) -> float | None:
        """When the earliest waiting ``sleep`` returns (``None`` when nothing waits): an
        event-driven simulation jumps straight there."""
        with self._lock:
            return self._sleepers[0][0] if self._sleepers else None

    @property
    def pending_sleepers(self) -> int:
        """How many ``sleep`` calls are waiting (lets a driver know when to advance)."""
        with self._lock:
            return len(self._sleepers)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["VirtualClock"]
