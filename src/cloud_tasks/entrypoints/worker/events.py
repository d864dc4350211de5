"""Worker events (SPEC §10): JSON lines in a file and/or JSON messages on the event queue.

The worker builds the typed events of ``domain.events``; ``EventLog`` writes them with the one
codec, ``domain.events.encode``, and fills in their header (time, host, instance).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import errno
import functools
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from cloud_tasks.domain.events import Event, encode
from cloud_tasks.exceptions import CloudTasksError, ConfigError
from cloud_tasks.ports import MAX_EVENT_BYTES, Clock, EventQueue

logger = logging.getLogger("cloud_tasks.worker")

# Events per send call; the adapters split it into the batches their service takes.
_QUEUE_BATCH = 100
# The longest timestamp utc_timestamp writes (with microseconds), for sizing an event early.
_LONGEST_TIMESTAMP = "2000-01-01T00:00:00.000000+00:00"


#: Kernel file systems: their files accept an open for writing, then fail or mean something else.
_VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"))


def open_event_log(path: str) -> IO[str]:
    """Open the event log for appending; a bad path is one ``ConfigError`` line.

    The folder must exist: it is never created (a typo must not make folders anywhere), and a
    named pipe with no reader is refused rather than waited on.
    """
    where = f"--event-log-file {path!r}"
    target = Path(path)
    if not path:
        raise ConfigError(f"{where}: give a file name")
    resolved = target.resolve()
    if any(resolved.is_relative_to(root) for root in _VIRTUAL_ROOTS):
        raise ConfigError(f"{where}: is on a kernel file system, not a place for a log")
    try:
        fd = os.open(
            target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644
        )
    except (FileNotFoundError, NotADirectoryError):
        folder = target.parent
        if folder.is_dir():
            raise ConfigError(f"{where}: cannot create a file in {folder}") from None
        if folder.exists():
            raise ConfigError(f"{where}: {str(folder)!r} is not a folder") from None
        raise ConfigError(
            f"{where}: folder {str(folder)!r} does not exist; create it first or choose "
            "another path (it is not created for you)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory; give the path of a file") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENXIO:
            problem = "is a named pipe that nothing reads"
        else:
            problem = f"cannot write the event log: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError(f"{where}: {problem}; choose a writable file") from None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


def queue_retry_delay_s(failures: int) -> float:
    """The wait after ``failures`` failed receives or event sends in a row (0 for the first):
    the shared backoff rule from 0.5 s doubling to 30 s, full jitter; the worker retries for as
    long as it runs. The rule is imported on the first failure only (it loads ``http.client``
    and ``email``, which a worker that never fails does not need)."""
    from cloud_tasks.adapters.retrying import Backoff

    return Backoff(initial_s=0.5, maximum_s=30.0).delay_s(failures, random.random())


def utc_timestamp(seconds: float) -> str:
    """UTC ISO-8601 with microseconds and an explicit offset."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def _too_large(line: str) -> bool:
    """Whether an event line (ASCII JSON) is over the limit once written compactly."""
    return len(json.dumps(json.loads(line), separators=(",", ":"))) > MAX_EVENT_BYTES


class EventLog:
    """Builds events and delivers them to the log file and the event queue.

    File lines are written (and flushed) as events happen. Queue sends run off the event loop in
    batches: every event waiting when a send starts goes in it, so tasks that finish together
    share one send. A failed send is retried, so events are delayed, never dropped, while the
    worker runs. Where the event queue has a view that never waits (``without_waiting``) sends
    are made through it on the loop's thread, and off the loop only when it would wait.

    ``emit`` records an event and returns at once; ``deliver`` returns only once its events are
    stored (the queue's ``send`` returned), which is what a task's outcome needs before its
    message may be acknowledged.
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
        self._path = path
        if path is not None:
            self._file = open_event_log(path)
        self._queue = event_queue
        self._quick = event_queue.without_waiting() if event_queue is not None else None
        self._pending: list[dict[str, Any]] = []
        # Events handed to the queue sender so far, and how many of them are stored.
        self._queued = 0
        self._stored = 0
        # (sequence number that must be stored, future) in sequence order.
        self._waiters: collections.deque[tuple[int, asyncio.Future[bool]]] = collections.deque()
        self._abandoned = False
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        # The loop, once started, and whether a send through the view is scheduled on it.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_scheduled = False
        self._sender_busy = False
        self._in_flight: asyncio.Future[None] | None = None
        self.emitted: int = 0

    def start(self) -> None:
        """Start the background queue sender (needs a running event loop)."""
        if self._queue is not None and self._sender is None:
            self._loop = asyncio.get_running_loop()
            self._sender = self._loop.create_task(self._send_forever())
            self._sender.add_done_callback(self._sender_stopped)

    def _wire(self, event: Event, timestamp: str) -> dict[str, Any]:
        """The JSON object of ``event`` as sent from here: the header says when, from which
        host and instance (the worker builds events without it)."""
        wire = encode(event)
        wire["timestamp"] = timestamp
        wire["hostname"] = self._hostname
        wire["instance_id"] = self._instance_id()
        return wire

    def encoded_size(self, event: Event) -> int:
        """Bytes the event would take on the event queue (at most a few more than it will)."""
        wire = self._wire(event, _LONGEST_TIMESTAMP)
        return len(json.dumps(wire, separators=(",", ":"), default=str))

    def emit(self, event: Event) -> dict[str, Any]:
        """Record one event and return it as written; a queue send follows in the background."""
        wire = self._wire(event, utc_timestamp(self._clock.now()))
        line = json.dumps(wire, default=str)
        if self._file is not None:
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as exc:  # a full disk, a vanished mount
                self._drop_file()
                raise CloudTasksError(
                    f"--event-log-file {self._path!r}: cannot write the event log "
                    f"({exc.strerror or exc}); the worker stopped: free space or choose another "
                    "file"
                ) from None
        if self._queue is not None and len(line) > MAX_EVENT_BYTES and _too_large(line):
            # The worker makes a task's oversized outcome an error outcome before it gets here;
            # anything still too large is kept out of the queue rather than retried forever.
            logger.error(
                "event %s of %d bytes is over the event queue's %d-byte limit; not sent",
                event.event_type,
                len(line),
                MAX_EVENT_BYTES,
            )
        elif self._queue is not None:
            self._pending.append(json.loads(line))
            self._queued += 1
            if self._quick is not None and self._loop is not None:
                # Sent after the current step, with the events it emits after this one.
                if not self._send_scheduled:
                    self._send_scheduled = True
                    self._loop.call_soon(self._send_scheduled_events)
            else:
                self._wakeup.set()
        self.emitted += 1
        logger.debug("event %s", line)
        return wire

    async def deliver(self, events: Sequence[Event]) -> bool:
        """Record ``events`` and wait until they are stored in the file and the event queue.

        Returns False when the log gave up (``abandon``) before they reached the queue.
        """
        for event in events:
            self.emit(event)
        if self._queue is None or self._stored >= self._queued:
            return True
        if self._abandoned:
            return False
        if self._send_now() and self._stored >= self._queued:
            return True
        self._wakeup.set()
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._queued, waiter))
        return await waiter

    def abandon(self) -> None:
        """Stop waiting for the queue: pending and later ``deliver`` calls return False."""
        self._abandoned = True
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(False)

    def _sender_stopped(self, sender: asyncio.Task[None]) -> None:
        if not sender.cancelled() and sender.exception() is not None:
            logger.error("the event sender failed: %s", sender.exception())
            self.abandon()

    def _mark_stored(self, count: int) -> None:
        del self._pending[:count]
        self._stored += count
        while self._waiters and self._waiters[0][0] <= self._stored:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)

    def _send_now(self) -> bool:
        """Send what is pending through the view that never waits, unless a send is running
        off the loop (events go in order); False when nothing could be sent that way. A
        provider error leaves the events to the background sender, which retries."""
        quick = self._quick
        if quick is None or self._in_flight is not None or self._sender_busy:
            return False
        while self._pending:
            batch = self._pending[:_QUEUE_BATCH]
            try:
                quick.send(batch)
            except CloudTasksError:  # QueueBusyError included: sent off the loop instead
                # Until the sender has stored them (the view would likely fail again).
                self._sender_busy = True
                return False
            self._mark_stored(len(batch))
        return True

    def _send_scheduled_events(self) -> None:
        self._send_scheduled = False
        if not self._send_now() and self._pending:
            self._wakeup.set()

    async def _send_once(self) -> None:
        queue = self._queue
        if queue is None:
            return
        # Off the loop only: the sender runs when a send through the view could not be made.
        while self._pending or self._in_flight is not None:
            if self._in_flight is None:
                batch = self._pending[:_QUEUE_BATCH]
                self._in_flight = asyncio.ensure_future(asyncio.to_thread(queue.send, batch))
                self._in_flight.add_done_callback(functools.partial(self._sent, len(batch)))
            # Shielded: cancelling the sender (close) must not abandon a batch that the thread
            # is still sending, or close() would send it a second time.
            sending = self._in_flight
            try:
                await asyncio.shield(sending)
            finally:
                if sending.done():
                    self._in_flight = None

    def _sent(self, count: int, sending: asyncio.Future[None]) -> None:
        if not sending.cancelled() and sending.exception() is None:
            self._mark_stored(count)
            self._sender_busy = False

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._send_once()
                failures = 0
            except CloudTasksError as exc:
                logger.warning("could not send events (will retry): %s", exc)
                await self._clock.sleep(queue_retry_delay_s(failures))
                failures += 1
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
        self.abandon()
        self._drop_file()

    def _drop_file(self) -> None:
        if self._file is not None:
            # Closing flushes: after a write failed, the flush fails the same way.
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


__all__ = [
    "EventLog",
    "open_event_log",
    "queue_retry_delay_s",
    "utc_timestamp",
]
