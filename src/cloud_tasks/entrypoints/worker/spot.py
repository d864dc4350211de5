"""How a spot termination notice releases a worker's tasks (SPEC §10).

A notice arrives from the instance metadata (polled), from ``--simulate-spot-termination-after``
or from a program (``Worker.notice_termination``). Either way the worker stops taking tasks,
emits ``spot_termination``, raises ``received_termination_notice`` in every task process, and
at the release deadline (``domain.spot.release_deadline_s``) kills the tasks still running;
their messages go back to the queue as released (they never count against ``max_attempts``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from cloud_tasks.domain.events import Event, NonFatalException, SpotTermination
from cloud_tasks.domain.spot import SPOT_RELEASE_REASON, release_deadline_s, watches_for_notices
from cloud_tasks.entrypoints.worker.data import LiveFlags
from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.ports import Clock, InstanceMetadata


class SpotNotices:
    """Watches for a spot notice and carries it out; one per serving worker.

    The worker supplies what a notice acts on: ``stop_taking`` (take no more tasks),
    ``kill_all(reason)`` (kill every running task, which is then released), ``running_tasks``
    (how many run now, for the event) and ``emit`` (record an event).
    """

    def __init__(
        self,
        *,
        provider: str | None,
        clock: Clock,
        flags: LiveFlags,
        stop_taking: Callable[[], None],
        kill_all: Callable[[str], None],
        running_tasks: Callable[[], int],
        emit: Callable[[Event], None],
    ) -> None:
        self._provider = provider
        self._clock = clock
        self._flags = flags
        self._stop_taking = stop_taking
        self._kill_all = kill_all
        self._running_tasks = running_tasks
        self._emit = emit
        self._tasks: list[asyncio.Task[None]] = []
        self.noticed = False

    def start(
        self,
        metadata: InstanceMetadata | None,
        *,
        is_spot: bool,
        metadata_supplied: bool,
        poll_interval_s: float,
        simulate_after_s: float | None,
        simulate_delay_s: float | None,
    ) -> None:
        """Start the simulated notice and the metadata watch, as the options ask."""
        loop = asyncio.get_running_loop()
        if simulate_after_s is not None:
            self._tasks.append(loop.create_task(self._simulate(simulate_after_s, simulate_delay_s)))
        if metadata is not None and watches_for_notices(
            is_spot=is_spot, metadata_supplied=metadata_supplied
        ):
            watch = self._watch(metadata, poll_interval_s, simulate_delay_s)
            self._tasks.append(loop.create_task(watch))

    def notice(self, delay_s: float | None = None) -> None:
        """Act on a notice as if it arrived now (once; later notices change nothing).

        Stops taking tasks, sets ``received_termination_notice`` in running tasks, and kills and
        releases the tasks still running ``delay_s`` later (default: by provider).
        """
        if self.noticed:
            return
        self.noticed = True
        deadline_s = release_deadline_s(self._provider, delay_s)
        self._flags.set_termination_notice()
        self._stop_taking()
        self._emit(SpotTermination(running_tasks=self._running_tasks(), deadline_s=deadline_s))
        self._tasks.append(asyncio.get_running_loop().create_task(self._deadline(deadline_s)))

    async def stop(self) -> None:
        """Cancel the watch and a pending deadline (the worker is done)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _deadline(self, deadline_s: float) -> None:
        await self._clock.sleep(deadline_s)
        self._kill_all(SPOT_RELEASE_REASON)

    async def _simulate(self, after_s: float, delay_s: float | None) -> None:
        await self._clock.sleep(after_s)
        self.notice(delay_s)

    async def _watch(
        self, metadata: InstanceMetadata, poll_interval_s: float, delay_s: float | None
    ) -> None:
        reported = False
        while not self.noticed:
            try:
                notice = await asyncio.to_thread(metadata.termination_notice)
            except CloudTasksError as exc:
                notice = False
                if not reported:  # once: the metadata service may stay away for long
                    reported = True
                    self._emit(NonFatalException(exception=f"metadata: {exc}"))
            if notice:
                self.notice(delay_s)
                return
            await self._clock.sleep(poll_interval_s)


__all__ = ["SpotNotices"]
