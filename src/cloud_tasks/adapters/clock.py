"""The real ``Clock``: wall-clock time and real sleeps (``VirtualClock`` is in ``memory``)."""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    """Wall-clock time and real sleeps."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


__all__ = ["SystemClock"]
