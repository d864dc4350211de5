"""The worker's serving loop: feeds tasks from a file or a queue to the fork server, reports
outcomes and settles queue messages (SPEC §7, §10)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from cloud_tasks import bootstrap
from cloud_tasks.domain.events import (
    AttemptEnded,
    Event,
    FatalException,
    KeepAlive,
    NonFatalException,
    ShutdownRequested,
    TaskCompleted,
    TaskDeadLettered,
    TaskException,
    TaskExited,
    TaskReleased,
    TaskStarted,
    TaskTimedOut,
)
from cloud_tasks.domain.prefetch import tasks_to_prefetch, updated_mean
from cloud_tasks.domain.retry import (
    Complete,
    DeadLetter,
    Decision,
    Fail,
    OutcomeKind,
    Release,
    Requeue,
    admit_delivery,
    decide_outcome,
)
from cloud_tasks.domain.tasks import Task
from cloud_tasks.entrypoints.worker import events as ev
from cloud_tasks.entrypoints.worker.data import LiveFlags
from cloud_tasks.entrypoints.worker.forkserver import (
    KIND_EXCEPTION,
    KIND_MEMORY,
    KIND_RETRY_REQUESTED,
    KIND_SUCCESS,
    ChildReport,
    ForkServer,
)
from cloud_tasks.entrypoints.worker.options import WorkerOptions
from cloud_tasks.entrypoints.worker.spot import SpotNotices
from cloud_tasks.entrypoints.worker.summary import RunSummary
from cloud_tasks.exceptions import CloudTasksError, ConfigError, QueueBusyError
from cloud_tasks.ports import (
    MAX_EVENT_BYTES,
    Clock,
    EventQueue,
    InstanceMetadata,
    Lease,
    ReceivedTask,
    TaskQueue,
)

logger = logging.getLogger("cloud_tasks.worker")

TaskSource = str | os.PathLike[str] | Callable[[], Iterable[Mapping[str, Any]]]

_GIB = 1024**3
_KINDS = {
    KIND_SUCCESS: OutcomeKind.SUCCESS,
    KIND_RETRY_REQUESTED: OutcomeKind.RETRY_REQUESTED,
    KIND_EXCEPTION: OutcomeKind.EXCEPTION,
    KIND_MEMORY: OutcomeKind.MEMORY,
}
# Characters of an oversized traceback kept in the error outcome that replaces it.
_KEPT_TRACEBACK_CHARS = 4096


def _short(task_id: str) -> str:
    return (
        repr(task_id) if len(task_id) <= 80 else repr(task_id[:60]) + f"... ({len(task_id)} chars)"
    )


# Deliveries of a speculative copy that a worker already running its task hands back before it
# runs the copy itself.
_MAX_BOUNCES = 4
# Batches of queue calls running at once in worker threads (see _OffLoopCalls).
_MAX_BATCHES = 4
# The kill reason, and the ``task_released`` reason, of a run whose message was deleted while
# it ran: another delivery of the task settled it first (see _renew_leases).
SUPERSEDED = "superseded"


@attrs.frozen
class Attempt:
    """How one run of a task went, as seen by the worker."""

    kind: OutcomeKind
    elapsed_s: float
    result: Any = None
    exception: str | None = None
    exit_code: int | None = None
    release_reason: str | None = None
    started: bool = True

    @property
    def error(self) -> str:
        """One-line description of a failure, for dead-letter records."""
        if self.kind is OutcomeKind.EXCEPTION or self.kind is OutcomeKind.MEMORY:
            lines = (self.exception or "").strip().splitlines()
            return lines[-1] if lines else self.kind.value
        if self.kind is OutcomeKind.EXIT:
            return f"process exited with code {self.exit_code}"
        if self.kind is OutcomeKind.TIMEOUT:
            return "timed out"
        if self.kind is OutcomeKind.RETRY_REQUESTED:
            return "process_task asked for a retry"
        kind: str = self.kind.value
        return kind


class _OffLoopCalls:
    """Runs blocking queue calls (ack, release, requeue, extend) in worker threads, the calls
    made while one batch runs going together in the next: under load, one thread hop settles
    many messages instead of one each.

    Up to ``_MAX_BATCHES`` batches run at once, so a slow call does not hold up the others for
    long; within a batch the calls run in order.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Callable[..., None], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._batches = 0
        self._scheduled = False

    def call(self, func: Callable[..., None], *args: Any) -> asyncio.Future[BaseException | None]:
        """Run ``func(*args)`` off the loop; the future gives what it raised, or None."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BaseException | None] = loop.create_future()
        self._pending.append((func, args, future))
        if not self._scheduled and self._batches < _MAX_BATCHES:
            # After the current step: the calls made in it go in one batch.
            self._scheduled = True
            loop.call_soon(self._start)
        return future

    def _start(self) -> None:
        self._scheduled = False
        if not self._pending or self._batches >= _MAX_BATCHES:
            return
        batch, self._pending = self._pending, []
        self._batches += 1
        loop = asyncio.get_running_loop()
        calls = [(func, args) for func, args, _ in batch]
        running = loop.run_in_executor(None, _run_calls, calls)
        running.add_done_callback(functools.partial(self._finished, batch))

    def _finished(
        self,
        batch: list[tuple[Callable[..., None], tuple[Any, ...], asyncio.Future[Any]]],
        running: asyncio.Future[list[BaseException | None]],
    ) -> None:
        self._batches -= 1
        if running.cancelled():
            outcomes: list[BaseException | None] = [asyncio.CancelledError()] * len(batch)
        elif running.exception() is not None:
            outcomes = [running.exception()] * len(batch)
        else:
            outcomes = running.result()
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
        if self._pending and not self._scheduled:
            self._start()


def _run_calls(
    calls: list[tuple[Callable[..., None], tuple[Any, ...]]],
) -> list[BaseException | None]:
    """Run each call in order; what each raised, or None."""
    outcomes: list[BaseException | None] = []
    for func, args in calls:
        try:
            func(*args)
        except Exception as exc:  # handed to the caller, which re-raises what is not ours
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


@attrs.define
class _Running:
    task_id: str
    kill_reason: str | None = None
    #: The delivery it runs for (queue mode).
    receipt: str | None = None


class WorkerService:
    """The serving loop of a ``Worker``: runs tasks on its fork server, reports, settles.

    Built by ``Worker.serve`` once the options are parsed, the task file checked and the fork
    server forked; see ``Worker`` for the arguments.
    """

    def __init__(
        self,
        *,
        options: WorkerOptions,
        server: ForkServer,
        tasks: Iterable[Task] | None,
        hostname: str,
        flags: LiveFlags,
        environ: Mapping[str, str],
        task_queue: TaskQueue | None,
        event_queue: EventQueue | None,
        metadata: InstanceMetadata | None,
        clock: Clock | None,
        metadata_poll_interval_s: float,
        receive_wait_s: float,
        handle_signals: bool,
    ) -> None:
        self.options = options
        self._retry_policy = options.retry_policy
        self._server = server
        self._file_tasks = tasks
        self._hostname = hostname
        self._flags = flags
        self._environ = environ
        self._task_queue = task_queue
        self._event_queue = event_queue
        self._metadata = metadata
        self._clock: Clock = clock if clock is not None else bootstrap.system_clock()
        self._metadata_poll_interval_s = metadata_poll_interval_s
        self._receive_wait_s = receive_wait_s
        self._handle_signals = handle_signals
        self._instance_id: str | None = None
        self._events: ev.EventLog | None = None
        self._running: dict[int, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        # Queue mode: deliveries whose task has not finished running yet (the others are
        # being reported and settled, which no longer holds a task slot).
        self._executing = 0
        # Running mean of task times (queue mode), which sets how many deliveries are held in
        # reserve (domain.prefetch).
        self._mean_task_s: float | None = None
        self._settler = _OffLoopCalls()
        # Queue mode: the task queue's view whose calls never wait (ports.TaskQueue), made on
        # the loop's thread: no trip to a worker thread for most receives and settlements.
        self._quick: TaskQueue | None = None
        # Receipts of the deliveries held (queue mode), whose leases are renewed together.
        self._leases: dict[str, None] = {}
        self._changed: asyncio.Event | None = None
        self._stop_taking = False
        self._signals = 0
        self._exit_code = 0
        self._background: list[asyncio.Task[None]] = []
        self._task_failure: BaseException | None = None
        self._summary: RunSummary | None = None
        self._spot = SpotNotices(
            provider=options.provider,
            clock=self._clock,
            flags=flags,
            stop_taking=self._stop_taking_tasks,
            kill_all=self._kill_all,
            running_tasks=lambda: len(self._running),
            emit=self._emit,
        )

    async def serve(self) -> int:
        """Run until done and return the exit status; raises ``CloudTasksError`` on bad input.

        0: every task was handled (or the queue stayed idle, or a spot termination ended the
        run); 128 + signal number after SIGINT/SIGTERM.
        """
        tasks = self._file_tasks
        loop = asyncio.get_running_loop()
        self._server.attach(loop)
        self._changed = asyncio.Event()
        installed: list[int] = []
        try:
            adapters = bootstrap.build_worker_adapters(
                self.options,
                self._environ,
                queue_mode=tasks is None,
                task_queue=self._task_queue,
                event_queue=self._event_queue,
                metadata=self._metadata,
            )
            task_queue = adapters.task_queue
            if task_queue is not None and not await asyncio.to_thread(task_queue.exists):
                raise ConfigError(
                    f"queue {task_queue.name!r} does not exist: load it first "
                    "(cloud_tasks load_queue) or check --job-id/--queue-name"
                )
            event_queue = adapters.event_queue
            metadata = adapters.metadata
            if metadata is not None:
                self._instance_id = await self._lookup_instance_id(metadata)
            path = self.options.event_log_file if self.options.event_log_to_file else None
            self._events = ev.EventLog(
                hostname=self._hostname,
                clock=self._clock,
                instance_id=lambda: self._instance_id,
                path=path,
                event_queue=event_queue,
            )
            self._events.start()
            installed = self._install_signal_handlers(loop)
            self._start_background(metadata, queue_mode=task_queue is not None)
            try:
                if tasks is not None:
                    await self._run_file(tasks)
                elif task_queue is not None:
                    await self._run_queue(task_queue)
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError | CloudTasksError):
                    self._emit(FatalException(exception=traceback.format_exc()))
                self._kill_all("the worker stopped on an error")
                await self._drain()
                raise
            if self._task_failure is not None:
                raise self._task_failure
            return self._exit_code
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            for background in self._background:
                background.cancel()
            for background in self._background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await background
            self._background.clear()
            await self._spot.stop()
            if self._events is not None:
                await self._events.close()
            self._server.close()

    # ------------------------------------------------------------------ ports

    async def _lookup_instance_id(self, metadata: InstanceMetadata) -> str | None:
        try:
            return await asyncio.to_thread(metadata.instance_id)
        except CloudTasksError as exc:
            logger.info("instance id unknown: %s", exc)
            return None

    # ------------------------------------------------------------------ signals and notices

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        installed: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
            installed.append(signum)
        return installed

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            self._exit_code = 128 + signum
            self._flags.set_shutdown_request()
            self._stop_taking_tasks()
            grace = self.options.shutdown_grace_period
            self._emit(
                ShutdownRequested(
                    signal=signal.Signals(signum).name,
                    running_tasks=len(self._running),
                    grace_period=grace,
                )
            )
            logger.warning(
                "%s: finishing %d running tasks (up to %gs); send it again to stop at once",
                signal.Signals(signum).name,
                len(self._running),
                grace,
            )
            asyncio.get_running_loop().call_later(grace, self._kill_all, "shutdown")
        else:
            self._kill_all("shutdown")
            if self._events is not None:
                # Stop at once: a message whose outcome cannot be stored now goes back to the
                # queue instead of waiting for the event queue.
                self._events.abandon()

    def notice_termination(self, delay_s: float | None = None) -> None:
        """Act on a spot termination notice as if it arrived now (see ``spot.SpotNotices``)."""
        self._spot.notice(delay_s)

    def _stop_taking_tasks(self) -> None:
        if not self._stop_taking and self._server is not None:
            self._server.drop_backlog()
        self._stop_taking = True
        if self._changed is not None:
            self._changed.set()

    def _kill_all(self, reason: str) -> None:
        if self._server is None:
            return
        for token, running in list(self._running.items()):
            if running.kill_reason is None:
                running.kill_reason = reason
            self._server.kill(token)

    def _start_background(self, metadata: InstanceMetadata | None, *, queue_mode: bool) -> None:
        loop = asyncio.get_running_loop()
        self._spot.start(
            metadata,
            is_spot=self.options.is_spot,
            metadata_supplied=self._metadata is not None,
            poll_interval_s=self._metadata_poll_interval_s,
            simulate_after_s=self.options.simulate_spot_termination_after,
            simulate_delay_s=self.options.simulate_spot_termination_delay,
        )
        if queue_mode and self.options.keepalive_interval > 0:
            self._background.append(loop.create_task(self._keepalive()))

    async def _keepalive(self) -> None:
        while True:
            await self._clock.sleep(self.options.keepalive_interval)
            # The oldest running tasks first (the dashboard lists the slowest).
            oldest = [running.task_id for running in itertools.islice(self._running.values(), 10)]
            self._emit(KeepAlive(running_tasks=len(self._running), running_task_ids=oldest))

    # ------------------------------------------------------------------ dispatch

    def _emit(self, event: Event) -> None:
        if self._events is not None:
            self._events.emit(event)

    def _spawn(self, coro: Any) -> None:
        self._active += 1
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._active -= 1
        self._tasks.discard(task)
        if self._changed is not None:
            self._changed.set()
        if not task.cancelled() and task.exception() is not None and self._task_failure is None:
            self._task_failure = task.exception()
            self._stop_taking_tasks()

    async def _wait_for_slot(self, limit: int) -> None:
        changed = self._changed
        if changed is None:
            return
        while self._active >= limit and not self._stop_taking:
            changed.clear()
            await changed.wait()

    async def _wait_for_task_slot(self, limit: int) -> None:
        """Wait until fewer deliveries than ``_deliveries_held`` have unfinished tasks and
        fewer than that plus ``limit`` are in hand (running, or being reported and settled)."""
        changed = self._changed
        if changed is None:
            return
        while not self._stop_taking:
            held = self._deliveries_held(limit)
            if self._executing < held and self._active < held + limit:
                return
            changed.clear()
            await changed.wait()

    def _finished_executing(self) -> None:
        self._executing -= 1
        if self._changed is not None:
            self._changed.set()

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        changed = self._changed
        while self._active > 0 and changed is not None:  # file-mode tasks (no asyncio Task)
            changed.clear()
            await changed.wait()

    async def _execute(
        self, task_id: str, data: Any, attempt: int, receipt: str | None = None
    ) -> Attempt:
        """Run one task in a fresh process and classify how it ended."""
        if self._server is None:
            raise RuntimeError("the fork server is not running")
        token, future = self._server.submit(task_id, data, attempt, self._instance_id)
        running = _Running(task_id, receipt=receipt)
        self._running[token] = running
        try:
            report: ChildReport = await future
        finally:
            del self._running[token]
        return self._classify(report, running)

    @staticmethod
    def _classify(report: ChildReport, running: _Running) -> Attempt:
        elapsed_s = report.elapsed_s
        if not report.started:
            return Attempt(
                OutcomeKind.PREEMPTED,
                0.0,
                release_reason=running.kill_reason or "not started",
                started=False,
            )
        record = report.outcome()
        if record is not None and record.get("kind") in _KINDS:
            return Attempt(
                _KINDS[record["kind"]],
                elapsed_s,
                result=record.get("result"),
                exception=record.get("exception"),
            )
        if report.timed_out:
            return Attempt(OutcomeKind.TIMEOUT, elapsed_s, exit_code=report.exit_code)
        if running.kill_reason is not None:
            return Attempt(
                OutcomeKind.PREEMPTED,
                elapsed_s,
                exit_code=report.exit_code,
                release_reason=running.kill_reason,
            )
        return Attempt(OutcomeKind.EXIT, elapsed_s, exit_code=report.exit_code)

    def _attempt_event(
        self, task_id: str, attempt_no: int, attempt: Attempt, decision: Decision
    ) -> AttemptEnded:
        """The event that reports one attempt."""
        kind = attempt.kind
        elapsed_time = round(attempt.elapsed_s, 6)
        retry = isinstance(decision, Requeue)
        outcome = kind.value
        if kind is OutcomeKind.SUCCESS or kind is OutcomeKind.RETRY_REQUESTED:
            return TaskCompleted(
                task_id=task_id,
                attempt=attempt_no,
                elapsed_time=elapsed_time,
                retry=retry,
                outcome=outcome,
                success=kind is OutcomeKind.SUCCESS,
                result=attempt.result,
            )
        if kind is OutcomeKind.EXCEPTION or kind is OutcomeKind.MEMORY:
            return TaskException(
                task_id=task_id,
                attempt=attempt_no,
                elapsed_time=elapsed_time,
                retry=retry,
                outcome=outcome,
                exception=attempt.exception or "",
            )
        if kind is OutcomeKind.EXIT:
            return TaskExited(
                task_id=task_id,
                attempt=attempt_no,
                elapsed_time=elapsed_time,
                retry=retry,
                outcome=outcome,
                exit_code=attempt.exit_code,
            )
        if kind is OutcomeKind.TIMEOUT:
            return TaskTimedOut(
                task_id=task_id,
                attempt=attempt_no,
                elapsed_time=elapsed_time,
                retry=retry,
                outcome=outcome,
                max_runtime=self.options.max_runtime,
            )
        return TaskReleased(
            task_id=task_id,
            attempt=attempt_no,
            elapsed_time=elapsed_time,
            retry=retry,
            outcome=outcome,
            reason=attempt.release_reason or "preempted",
        )

    def _fit_event(self, task_id: str, attempt_no: int, attempt: Attempt) -> Attempt:
        """The attempt, or an exception outcome when its event would not fit the event queue.

        SPEC §7: a result too large to report is an error outcome of that task (never a stall
        of the worker); the limit is the same on every provider (``MAX_EVENT_BYTES``).
        """
        if self._events is None or not attempt.started:
            return attempt
        size = self._events.encoded_size(
            self._attempt_event(task_id, attempt_no, attempt, Fail("sizing"))
        )
        if size <= MAX_EVENT_BYTES:
            return attempt
        kind = attempt.kind
        what = "exception text" if kind in (OutcomeKind.EXCEPTION, OutcomeKind.MEMORY) else "result"
        note = (
            f"the {what} of task {_short(task_id)} makes its event {size} bytes, over the "
            f"{MAX_EVENT_BYTES}-byte limit of the event queue; the {what} was dropped: keep "
            "large outputs in a file or a bucket and return where they are"
        )
        if what == "exception text":
            # Keep the end of the traceback, where the error is.
            tail = (attempt.exception or "")[-_KEPT_TRACEBACK_CHARS:]
            note = f"{note}\n... {tail}"
            return attrs.evolve(attempt, exception=note)
        return Attempt(
            OutcomeKind.EXCEPTION, attempt.elapsed_s, exception=f"ResultTooLargeError: {note}"
        )

    async def _deliver(self, events: Sequence[Event]) -> bool:
        """Store ``events`` (file and event queue) before the message they report is settled."""
        if self._events is None:
            return True
        return await self._events.deliver(events)

    # ------------------------------------------------------------------ file mode

    async def _run_file(self, tasks: Iterable[Task]) -> None:
        """Submit the tasks in order; each outcome is reported from the report's callback.

        No asyncio task per task: the per-task work on this side stays a submit and a callback.
        Up to N more tasks wait in the fork server, so a finished task is replaced at once.
        """
        server = self._server
        if server is None:
            raise RuntimeError("the fork server is not running")
        limit = 2 * (self.options.num_simultaneous_tasks or 1)
        events_path = self.options.event_log_file if self.options.event_log_to_file else None
        self._summary = RunSummary(sys.stderr, events_path)
        self._summary.show_progress_later(asyncio.get_running_loop())
        for task in tasks:
            if self._active >= limit:
                await self._wait_for_slot(limit)
            if self._stop_taking:
                break
            token, future = server.submit(task.task_id, task.data, 1, self._instance_id)
            running = _Running(task.task_id)
            self._running[token] = running
            self._active += 1
            future.add_done_callback(functools.partial(self._file_task_done, token, running))
        await self._drain()
        self._summary.finish()

    def _file_task_done(
        self, token: int, running: _Running, future: asyncio.Future[ChildReport]
    ) -> None:
        del self._running[token]
        self._active -= 1
        if self._changed is not None:
            self._changed.set()
        try:
            attempt = self._classify(future.result(), running)
            if not attempt.started:
                return
            attempt = self._fit_event(running.task_id, 1, attempt)
            decision = decide_outcome(attempt.kind, self._retry_policy, failures=0)
            self._emit(self._attempt_event(running.task_id, 1, attempt, decision))
            if self._summary is not None:
                error = None if attempt.kind is OutcomeKind.SUCCESS else attempt.exception
                self._summary.record(running.task_id, attempt.kind.value, error or attempt.error)
            if self.options.checkpoint_location is not None:
                self._spawn(self._forget_checkpoint(running.task_id))
        except BaseException as exc:
            if self._task_failure is None:
                self._task_failure = exc
                self._stop_taking_tasks()

    # ------------------------------------------------------------------ queue mode

    async def _run_queue(self, queue: TaskQueue) -> None:
        loop = asyncio.get_running_loop()
        self._quick = queue.without_waiting()
        renewer = loop.create_task(self._renew_leases(queue))
        try:
            await self._serve_queue(queue)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _serve_queue(self, queue: TaskQueue) -> None:
        loop = asyncio.get_running_loop()
        limit = self.options.num_simultaneous_tasks or 1
        started = 0
        idle_since: float | None = None
        failures = 0
        while not self._stop_taking:
            # A task slot frees as soon as its task process ends: the next delivery is
            # received while the last one's outcome is still being stored and settled.
            await self._wait_for_task_slot(limit)
            if self._stop_taking:
                break
            held = self._deliveries_held(limit)
            free = min(held - self._executing, held + limit - self._active)
            if self.options.max_num_tasks is not None:
                free = min(free, self.options.max_num_tasks - started)
                if free <= 0:
                    break
            try:
                messages = self._receive_now(free)
                if not messages:
                    messages = await asyncio.to_thread(
                        queue.receive, free, self.options.visibility_timeout, self._receive_wait_s
                    )
                failures = 0
            except CloudTasksError as exc:
                self._emit(NonFatalException(exception=f"receive: {exc}"))
                await self._clock.sleep(ev.queue_retry_delay_s(failures))
                failures += 1
                continue
            if self._stop_taking:
                for message in messages:
                    await self._release(queue, message.receipt)
                break
            if not messages:
                if self._active == 0 and self.options.exit_when_idle is not None:
                    now = loop.time()
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.options.exit_when_idle:
                        break
                continue
            idle_since = None
            bounced = False
            for message in messages:
                if (
                    self.options.report_task_starts
                    and message.delivery_count < _MAX_BOUNCES
                    and self._runs_task(message.task_id)
                ):
                    # A speculative copy of a task running here: leave it to another worker
                    # (a few times only: each delivery counts against --max-preemptions).
                    await self._release(queue, message.receipt)
                    bounced = True
                    continue
                started += 1
                self._executing += 1
                self._spawn(self._run_queue_task(queue, message))
            if bounced:
                await asyncio.sleep(self._receive_wait_s)
        await self._drain()

    def _deliveries_held(self, limit: int) -> int:
        """Deliveries whose task has not finished that the worker may hold: one per task slot,
        plus a reserve that waits in the fork server and starts the moment a slot frees."""
        if self.options.report_task_starts:
            # A reserved task would be reported as started while it waits.
            return limit
        return limit + tasks_to_prefetch(limit, self._mean_task_s)

    def _runs_task(self, task_id: str) -> bool:
        return any(running.task_id == task_id for running in self._running.values())

    async def _ack(self, queue: TaskQueue, receipt: str) -> bool:
        quick = self._quick
        return await self._queue_call(
            queue.ack, receipt, on_loop=None if quick is None else quick.ack
        )

    async def _release(self, queue: TaskQueue, receipt: str) -> bool:
        quick = self._quick
        return await self._queue_call(
            queue.release, receipt, on_loop=None if quick is None else quick.release
        )

    async def _requeue(self, queue: TaskQueue, message: ReceivedTask) -> bool:
        quick = self._quick
        return await self._queue_call(
            queue.requeue, message, on_loop=None if quick is None else quick.requeue
        )

    def _receive_now(self, count: int) -> list[ReceivedTask]:
        """Deliveries received on the loop's thread through the queue's view that never
        waits; none when there is no view or it would have to wait."""
        if self._quick is None:
            return []
        try:
            return self._quick.receive(count, self.options.visibility_timeout, self._receive_wait_s)
        except QueueBusyError:
            return []

    async def _queue_call(
        self, func: Callable[..., None], *args: Any, on_loop: Callable[..., None] | None = None
    ) -> bool:
        """Call ``func(*args)``: ``on_loop`` (the same call through the queue's view that never
        waits) on the loop's thread if given, else, or when it would wait, ``func`` off the
        loop. False when the call failed on a provider error, reported as a non-fatal
        exception."""
        if on_loop is not None:
            try:
                on_loop(*args)
            except QueueBusyError:
                pass
            except CloudTasksError as exc:
                self._emit(NonFatalException(exception=f"{func.__name__}: {exc}"))
                return False
            else:
                return True
        failure = await self._settler.call(func, *args)
        if failure is None:
            return True
        if isinstance(failure, CloudTasksError):
            self._emit(NonFatalException(exception=f"{getattr(func, '__name__', func)}: {failure}"))
            return False
        raise failure

    async def _renew_leases(self, queue: TaskQueue) -> None:
        """Every third of the visibility timeout, extend the lease of every message held.

        A message found gone was settled through another delivery of the same task (its
        lease had lapsed and a second receiver finished first): the run here is stopped and
        reports no outcome (see ``_stop_superseded``). A renewal that fails on an error leaves
        the run alone.
        """
        visibility = self.options.visibility_timeout
        gone: list[str] = []

        def extend(receipt: str) -> None:
            if queue.extend(receipt, visibility) is Lease.GONE:
                gone.append(receipt)

        while True:
            await self._clock.sleep(visibility / 3)
            receipts = list(self._leases)
            await asyncio.gather(*(self._queue_call(extend, receipt) for receipt in receipts))
            for receipt in gone:
                self._stop_superseded(receipt)
            gone.clear()

    def _stop_superseded(self, receipt: str) -> None:
        """Kill the run of the delivery ``receipt``, whose message another delivery settled."""
        if self._server is None:
            return
        for token, running in list(self._running.items()):
            if running.receipt == receipt and running.kill_reason is None:
                running.kill_reason = SUPERSEDED
                logger.info(
                    "task %s: stopped; another delivery of it finished first", running.task_id
                )
                self._server.kill(token)

    async def _run_queue_task(self, queue: TaskQueue, message: ReceivedTask) -> None:
        """Run one delivery; its outcome event is stored before its message is settled.

        The order (event, then ack/requeue/release) means a crash at any point loses nothing:
        at worst the task runs again or its outcome is reported twice, and the task database
        tolerates duplicate events.
        """
        # The lease is held until the message is settled: a slow event queue must not let
        # the message reappear while its outcome is being reported.
        self._leases[message.receipt] = None
        try:
            await self._settle_queue_task(queue, message)
        finally:
            del self._leases[message.receipt]

    async def _settle_queue_task(self, queue: TaskQueue, message: ReceivedTask) -> None:
        policy = self._retry_policy
        rejected = admit_delivery(message.delivery_count, policy)
        if rejected is not None:
            self._finished_executing()
            dead = self._dead_letter_event(message, rejected, "preempted")
            if await self._deliver([dead]):
                await self._forget_checkpoint(message.task_id)
                await self._ack(queue, message.receipt)
            return
        if self.options.report_task_starts:
            self._emit(
                TaskStarted(
                    task_id=message.task_id, attempt=message.attempt, receipt=message.receipt
                )
            )
        try:
            attempt = await self._execute(
                message.task_id, dict(message.data), message.attempt, message.receipt
            )
        finally:
            self._finished_executing()
        if attempt.kind is OutcomeKind.PREEMPTED and attempt.release_reason == SUPERSEDED:
            # The task's outcome was recorded by the delivery that settled the message: this
            # run reports no outcome and settles nothing (the message is gone). The release
            # note keeps the manager's count of runs in progress right.
            await self._deliver(
                [
                    TaskReleased(
                        task_id=message.task_id,
                        attempt=message.attempt,
                        elapsed_time=round(attempt.elapsed_s, 6),
                        retry=False,
                        outcome=attempt.kind.value,
                        reason=SUPERSEDED,
                    )
                ]
            )
            return
        if attempt.started:
            self._mean_task_s = updated_mean(self._mean_task_s, attempt.elapsed_s)
        attempt = self._fit_event(message.task_id, message.attempt, attempt)
        decision = decide_outcome(
            attempt.kind,
            policy,
            failures=message.envelope.failures,
            delivery_count=message.delivery_count,
        )
        if attempt.started:
            events: list[Event] = [
                self._attempt_event(message.task_id, message.attempt, attempt, decision)
            ]
            if isinstance(decision, DeadLetter):
                events.append(self._dead_letter_event(message, decision, attempt.error))
            if not await self._deliver(events):
                # The events could not be stored (the worker is stopping at once): run the
                # task again rather than settle it unreported.
                await self._release(queue, message.receipt)
                return
        if isinstance(decision, Complete | Fail | DeadLetter):
            await self._forget_checkpoint(message.task_id)
            await self._ack(queue, message.receipt)
        elif isinstance(decision, Requeue):
            await self._requeue(queue, message)
        elif isinstance(decision, Release):
            await self._release(queue, message.receipt)

    async def _forget_checkpoint(self, task_id: str) -> None:
        """Delete the task's checkpoint once its outcome is final (no-op without a location)."""
        location = self.options.checkpoint_location
        if location is None:
            return
        from cloud_tasks.entrypoints.worker.checkpoint import Checkpoint

        try:
            await asyncio.to_thread(Checkpoint(location, task_id).delete)
        except CloudTasksError as exc:
            self._emit(NonFatalException(exception=f"checkpoint: {exc}"))

    @staticmethod
    def _dead_letter_event(
        message: ReceivedTask, decision: DeadLetter, error: str
    ) -> TaskDeadLettered:
        return TaskDeadLettered(
            task_id=message.task_id,
            attempt=message.attempt,
            retry=False,
            reason=decision.reason,
            error=error,
        )


__all__ = ["Attempt", "WorkerService"]
