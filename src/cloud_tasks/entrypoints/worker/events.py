"""Worker events (SPEC §10): JSON lines in a file and/or JSON messages on the event queue."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cloud_tasks.exceptions import CloudTasksError
from cloud_tasks.ports import Clock, EventQueue

logger = logging.getLogger("cloud_tasks.worker")

TASK_COMPLETED = "task_completed"
TASK_EXCEPTION = "task_exception"
TASK_EXITED = "task_exited"
TASK_TIMED_OUT = "task_timed_out"
TASK_DEAD_LETTERED = "task_dead_lettered"
TASK_RELEASED = "task_released"
SPOT_TERMINATION = "spot_termination"
SHUTDOWN_REQUESTED = "shutdown_requested"
KEEP_ALIVE = "keep_alive"
NON_FATAL_EXCEPTION = "non_fatal_exception"
FATAL_EXCEPTION = "fatal_exception"

# SQS accepts at most 10 messages per batch; other queues take more but 10 keeps latency low.
_QUEUE_BATCH = 10


def utc_timestamp(seconds: float) -> str:
    """UTC ISO-8601 with microseconds and an explicit offset."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


class EventLog:
    """Builds events and delivers them to the log file and the event queue.

    File lines are written (and flushed) as events happen. Queue sends run off the event loop in
    batches; a failed send is retried, so events are delayed, never dropped, while the worker runs.
    """

    def __init__(
        self,
        *,
        hostname: str,
        clock: Clock,
        instance_id: Callable[[], str | None],
        path: str | None,
        event_queue: EventQueue | None,
    ) -> None:
        self._hostname = hostname
        self._clock = clock
        self._instance_id = instance_id
        self._file: IO[str] | None = None
        if path is not None:
            target = Path(path)
            if target.parent != Path():
                target.parent.mkdir(parents=True, exist_ok=True)
            self._file = target.open("a", encoding="utf-8")
        self._queue = event_queue
        self._pending: list[dict[str, Any]] = []
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[None] | None = None
        self.emitted: int = 0

    def start(self) -> None:
        """Start the background queue sender (needs a running event loop)."""
        if self._queue is not None and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Record one event and return it."""
        event: dict[str, Any] = {
            "timestamp": utc_timestamp(self._clock.now()),
            "hostname": self._hostname,
            "instance_id": self._instance_id(),
            "event_type": event_type,
            **fields,
        }
        line = json.dumps(event, default=str)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        if self._queue is not None:
            self._pending.append(json.loads(line))
            self._wakeup.set()
        self.emitted += 1
        logger.debug("event %s", line)
        return event

    async def _send_once(self) -> None:
        queue = self._queue
        if queue is None:
            return
        while self._pending or self._in_flight is not None:
            if self._in_flight is None:
                batch = self._pending[:_QUEUE_BATCH]
                self._in_flight = asyncio.ensure_future(
                    asyncio.to_thread(self._send_batch, queue, batch)
                )
            # Shielded: cancelling the sender (close) must not abandon a batch that the thread
            # is still sending, or close() would send it a second time.
            sending = self._in_flight
            try:
                await asyncio.shield(sending)
            finally:
                if sending.done():
                    self._in_flight = None

    def _send_batch(self, queue: EventQueue, batch: list[dict[str, Any]]) -> None:
        queue.send(batch)
        del self._pending[: len(batch)]

    async def _send_forever(self) -> None:
        delay_s = 0.5
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._send_once()
                delay_s = 0.5
            except CloudTasksError as exc:
                logger.warning("could not send events (will retry): %s", exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
                self._wakeup.set()

    async def close(self) -> None:
        """Send what is pending (one last try) and close the file."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        try:
            await self._send_once()
        except CloudTasksError as exc:
            logger.error("lost %d events that could not be sent: %s", len(self._pending), exc)
        if self._file is not None:
            self._file.close()
            self._file = None


__all__ = [
    "FATAL_EXCEPTION",
    "KEEP_ALIVE",
    "NON_FATAL_EXCEPTION",
    "SHUTDOWN_REQUESTED",
    "SPOT_TERMINATION",
    "TASK_COMPLETED",
    "TASK_DEAD_LETTERED",
    "TASK_EXCEPTION",
    "TASK_EXITED",
    "TASK_RELEASED",
    "TASK_TIMED_OUT",
    "EventLog",
    "utc_timestamp",
]
