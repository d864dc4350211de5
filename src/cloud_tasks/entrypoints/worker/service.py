"""The worker runtime: feeds tasks from a file or a queue to ``process_task``, one process each."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

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
from cloud_tasks.entrypoints.worker.data import LiveFlags, WorkerData
from cloud_tasks.entrypoints.worker.forkserver import (
    KIND_EXCEPTION,
    KIND_MEMORY,
    KIND_RETRY_REQUESTED,
    KIND_SUCCESS,
    ChildReport,
    ForkServer,
    ProcessTask,
)
from cloud_tasks.entrypoints.worker.options import WorkerOptions, parse_worker_options
from cloud_tasks.exceptions import CloudTasksError, ConfigError, TaskFileError
from cloud_tasks.ports import Clock, EventQueue, InstanceMetadata, ReceivedTask, TaskQueue

logger = logging.getLogger("cloud_tasks.worker")

TaskSource = str | os.PathLike[str] | Callable[[], Iterable[Mapping[str, Any]]]

_GIB = 1024**3
_KINDS = {
    KIND_SUCCESS: OutcomeKind.SUCCESS,
    KIND_RETRY_REQUESTED: OutcomeKind.RETRY_REQUESTED,
    KIND_EXCEPTION: OutcomeKind.EXCEPTION,
    KIND_MEMORY: OutcomeKind.MEMORY,
}
# Seconds from a real spot notice until unfinished tasks are killed and released: AWS warns
# two minutes ahead, GCP 30 seconds; both leave a margin to release the messages.
_NOTICE_TO_DEADLINE_S = {"aws": 100.0, "gcp": 20.0}
_DEFAULT_NOTICE_TO_DEADLINE_S = 20.0


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


@attrs.define
class _Running:
    task_id: str
    started: float | None = None
    kill_reason: str | None = None
    timer: asyncio.TimerHandle | None = None


def _tasks_from_records(records: Iterable[Mapping[str, Any]], where: str) -> list[Task]:
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise TaskFileError(
                f"{where}: task {index}: expected a mapping, got {type(record).__name__}"
            )
        task_id, data = record.get("task_id"), record.get("data")
        if not isinstance(task_id, str):
            raise TaskFileError(f"{where}: task {index}: 'task_id' must be a string")
        if not isinstance(data, Mapping):
            raise TaskFileError(f"{where}: task {index}: 'data' must be a mapping")
        if task_id in seen:
            raise TaskFileError(
                f"{where}: task {index}: duplicate task_id {task_id!r} "
                f"(first at task {seen[task_id]})"
            )
        seen[task_id] = index
        tasks.append(Task(task_id, dict(data)))
    return tasks


def _iter_file(path: str) -> Iterator[Task]:
    from cloud_tasks.taskfile import iter_tasks

    try:
        yield from iter_tasks(path)
    except CloudTasksError:
        raise
    except Exception as exc:
        raise TaskFileError(f"{path}: cannot read task file: {exc}") from exc


class Worker:
    """Runs ``process_task(task_id, task_data, worker_data) -> (success, result)`` for every task.

    Options come from ``args`` (default ``sys.argv[1:]``), else ``RMS_CLOUD_TASKS_*`` environment
    variables, else defaults. With ``--tasks FILE`` or ``task_source`` it runs a task file; else
    it serves the job's queue.

    Keyword-only arguments let a program (or a test) supply the ports instead of building them
    from the options: ``task_queue``/``event_queue`` (e.g. ``InMemoryTaskQueue``), ``metadata``
    (an ``InstanceMetadata``; enables termination-notice polling), ``clock`` (drives event
    timestamps, lease renewal, keep-alive and metadata polling intervals and simulated
    terminations), ``environ`` (instead of ``os.environ``), ``metadata_poll_interval_s``,
    ``receive_wait_s`` (long-poll time per receive) and ``handle_signals`` (install SIGINT/SIGTERM
    handlers; only possible on the main thread).
    """

    def __init__(
        self,
        process_task: ProcessTask,
        args: Sequence[str] | None = None,
        argparser: argparse.ArgumentParser | None = None,
        task_source: TaskSource | None = None,
        *,
        task_queue: TaskQueue | None = None,
        event_queue: EventQueue | None = None,
        metadata: InstanceMetadata | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        metadata_poll_interval_s: float = 5.0,
        receive_wait_s: float = 1.0,
        handle_signals: bool = True,
        prog: str | None = None,
    ) -> None:
        from cloud_tasks.adapters.memory.clock import SystemClock

        self._process_task = process_task
        self._task_source = task_source
        self._task_queue = task_queue
        self._event_queue = event_queue
        self._metadata = metadata
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._metadata_poll_interval_s = metadata_poll_interval_s
        self._receive_wait_s = receive_wait_s
        self._handle_signals = handle_signals
        env = os.environ if environ is None else environ
        self._environ: Mapping[str, str] = env
        options, namespace, parser = parse_worker_options(
            sys.argv[1:] if args is None else args, env, argparser, prog
        )
        self._parser = parser
        file_mode = task_source is not None or options.task_file is not None
        options = attrs.evolve(
            options,
            event_log_to_file=(
                file_mode if options.event_log_to_file is None else options.event_log_to_file
            ),
            event_log_to_queue=(
                (not file_mode)
                if options.event_log_to_queue is None
                else options.event_log_to_queue
            ),
        )
        self.options: WorkerOptions = options
        self.args: argparse.Namespace = namespace
        self.file_mode = file_mode
        if options.verbose and not logging.getLogger().handlers:
            logging.basicConfig(
                level=logging.DEBUG if options.verbose > 1 else logging.INFO,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        self._hostname = socket.gethostname()
        self._instance_id: str | None = None
        self._flags = LiveFlags()
        self._server: ForkServer | None = None
        self._events: ev.EventLog | None = None
        self._running: dict[int, _Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._changed: asyncio.Event | None = None
        self._stop_taking = False
        self._terminating = False
        self._signals = 0
        self._exit_code = 0
        self._background: list[asyncio.Task[None]] = []
        self._task_failure: BaseException | None = None

    # ------------------------------------------------------------------ public entry points

    async def start(self) -> None:
        """Run until done; on bad input print one line and exit (``SystemExit``) non-zero."""
        try:
            code = await self.serve()
        except CloudTasksError as exc:
            print(f"{self._parser.prog}: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        if code != 0:
            raise SystemExit(code)

    def run(self) -> None:
        """Synchronous form of ``start``."""
        asyncio.run(self.start())

    async def serve(self) -> int:
        """Run until done and return the exit status; raises ``CloudTasksError`` on bad input.

        0: every task was handled (or the queue stayed idle, or a spot termination ended the
        run); 128 + signal number after SIGINT/SIGTERM.
        """
        tasks = self._load_tasks() if self.file_mode else None
        memory_limit = self.options.max_memory_allowed_per_task
        worker_data = WorkerData(
            **{f.name: getattr(self.options, f.name) for f in attrs.fields(WorkerOptions)},
            args=self.args,
            hostname=self._hostname,
            flags=self._flags,
        )
        # The fork server must exist before any thread (executor, SDK client) is started.
        self._server = ForkServer.fork(
            self._process_task,
            worker_data,
            max_running=self.options.num_simultaneous_tasks or 1,
            memory_limit_bytes=None if memory_limit is None else int(memory_limit * _GIB),
        )
        loop = asyncio.get_running_loop()
        self._server.attach(loop, self._on_started)
        self._changed = asyncio.Event()
        installed: list[int] = []
        try:
            task_queue = None if tasks is not None else self._build_task_queue()
            if task_queue is not None and not await asyncio.to_thread(task_queue.exists):
                raise ConfigError(
                    f"queue {task_queue.name!r} does not exist: load it first "
                    "(cloud_tasks load_queue) or check --job-id/--queue-name"
                )
            event_queue = self._build_event_queue() if task_queue is not None else None
            metadata = self._build_metadata()
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
                    self._emit(ev.FATAL_EXCEPTION, exception=traceback.format_exc())
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
            if self._events is not None:
                await self._events.close()
            self._server.close()

    # ------------------------------------------------------------------ building ports

    def _load_tasks(self) -> Iterable[Task]:
        """Validate the whole task source up front, so bad input stops us before any task runs."""
        source = self._task_source
        if source is None:
            source = self.options.task_file
        if callable(source):
            try:
                records = list(source())
            except Exception as exc:
                raise TaskFileError(f"task_source failed: {exc}") from exc
            tasks: Iterable[Task] = _tasks_from_records(records, "task_source")
        else:
            from cloud_tasks.sources import is_remote

            path = os.fspath(source) if source is not None else ""
            # s3://, gs:// and http(s):// files are checked by reading them, just below.
            if not is_remote(path) and not Path(path).is_file():
                raise TaskFileError(f"{path}: task file not found")
            for _ in _iter_file(path):
                pass
            tasks = _LazyFile(path)
        stop = None
        if self.options.max_num_tasks is not None:
            stop = self.options.tasks_to_skip + self.options.max_num_tasks
        return _Sliced(tasks, self.options.tasks_to_skip, stop)

    def _build_task_queue(self) -> TaskQueue:
        if self._task_queue is not None:
            return self._task_queue
        provider = self.options.provider
        if provider is None:
            raise ConfigError(
                "nothing to do: give --tasks FILE to run a task file, or --provider and --job-id "
                "to serve a queue"
            )
        if provider == "memory":
            raise ConfigError(
                "provider 'memory' keeps its queue inside one process: pass "
                "task_queue=InMemoryTaskQueue(...) to Worker, or use provider 'local'"
            )
        factory = self._bootstrap("make_task_queue")
        queue: TaskQueue = factory(self._job_config())
        return queue

    def _build_event_queue(self) -> EventQueue | None:
        if not self.options.event_log_to_queue:
            return None
        if self._event_queue is not None:
            return self._event_queue
        if self._task_queue is not None:
            return None
        factory = self._bootstrap("make_event_queue")
        queue: EventQueue = factory(self._job_config())
        return queue

    def _job_config(self) -> Any:
        """The provider part of the options, as the composition root takes it."""
        from cloud_tasks.domain.options import JobConfig, ProviderOptions, RunOptions

        options = self.options
        return JobConfig(
            provider=options.provider or "",
            provider_options=ProviderOptions(
                job_id=options.job_id,
                queue_name=options.queue_name,
                region=options.region,
                zone=options.zone,
                exactly_once_queue=options.exactly_once_queue,
                project_id=options.project_id,
            ),
            run=RunOptions(max_runtime=options.max_runtime),
        )

    def _bootstrap(self, name: str) -> Callable[[Any], Any]:
        try:
            from cloud_tasks import bootstrap
        except ImportError as exc:  # pragma: no cover - bootstrap ships with the package
            raise ConfigError(f"queue mode is unavailable: {exc}") from exc
        factory = getattr(bootstrap, name, None)
        if factory is None:
            raise ConfigError(
                f"provider {self.options.provider!r}: queue mode is not available in this "
                "version (no queue adapter); run a task file with --tasks instead"
            )
        built: Callable[[Any], Any] = factory
        return built

    def _build_metadata(self) -> InstanceMetadata | None:
        if self._metadata is not None:
            return self._metadata
        if self.options.provider == "aws":
            from cloud_tasks.adapters.aws.metadata import Ec2InstanceMetadata

            return Ec2InstanceMetadata()
        if self.options.provider == "gcp":
            from cloud_tasks.adapters.gcp.metadata import GceInstanceMetadata

            return GceInstanceMetadata()
        if self.options.provider == "local":
            from cloud_tasks.adapters.local.metadata import LocalInstanceMetadata

            return LocalInstanceMetadata(self._environ)
        return None

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
                ev.SHUTDOWN_REQUESTED,
                signal=signal.Signals(signum).name,
                running_tasks=len(self._running),
                grace_period=grace,
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
        """Act on a spot termination notice as if it arrived now.

        Stops taking tasks, sets ``received_termination_notice`` in running tasks, and kills and
        releases the tasks still running ``delay_s`` later (default: by provider).
        """
        if self._terminating:
            return
        self._terminating = True
        if delay_s is None:
            delay_s = _NOTICE_TO_DEADLINE_S.get(
                self.options.provider or "", _DEFAULT_NOTICE_TO_DEADLINE_S
            )
        self._flags.set_termination_notice()
        self._stop_taking_tasks()
        self._emit(ev.SPOT_TERMINATION, running_tasks=len(self._running), deadline_s=delay_s)
        self._background.append(asyncio.get_running_loop().create_task(self._deadline(delay_s)))

    async def _deadline(self, delay_s: float) -> None:
        await self._clock.sleep(delay_s)
        self._kill_all("spot termination")

    def _stop_taking_tasks(self) -> None:
        if not self._stop_taking and self._server is not None:
            self._spawn_background(self._server.drop_backlog())
        self._stop_taking = True
        if self._changed is not None:
            self._changed.set()

    def _kill_all(self, reason: str) -> None:
        if self._server is None:
            return
        for token, running in list(self._running.items()):
            if running.kill_reason is None:
                running.kill_reason = reason
            self._spawn_background(self._server.kill(token))

    def _spawn_background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.append(task)
        task.add_done_callback(self._forget_background)

    def _forget_background(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._background.remove(task)

    def _start_background(self, metadata: InstanceMetadata | None, *, queue_mode: bool) -> None:
        loop = asyncio.get_running_loop()
        after = self.options.simulate_spot_termination_after
        if after is not None:
            self._background.append(loop.create_task(self._simulated_termination(after)))
        if metadata is not None and (self.options.is_spot or self._metadata is not None):
            self._background.append(loop.create_task(self._watch_termination(metadata)))
        if queue_mode and self.options.keepalive_interval > 0:
            self._background.append(loop.create_task(self._keepalive()))

    async def _simulated_termination(self, after_s: float) -> None:
        await self._clock.sleep(after_s)
        self.notice_termination(self.options.simulate_spot_termination_delay)

    async def _watch_termination(self, metadata: InstanceMetadata) -> None:
        reported = False
        while not self._terminating:
            try:
                notice = await asyncio.to_thread(metadata.termination_notice)
            except CloudTasksError as exc:
                notice = False
                if not reported:
                    reported = True
                    self._emit(ev.NON_FATAL_EXCEPTION, exception=f"metadata: {exc}")
            if notice:
                delay = self.options.simulate_spot_termination_delay
                self.notice_termination(delay)
                return
            await self._clock.sleep(self._metadata_poll_interval_s)

    async def _keepalive(self) -> None:
        while True:
            await self._clock.sleep(self.options.keepalive_interval)
            self._emit(ev.KEEP_ALIVE, running_tasks=len(self._running))

    # ------------------------------------------------------------------ dispatch

    def _emit(self, event_type: str, **fields: Any) -> None:
        if self._events is not None:
            self._events.emit(event_type, **fields)

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

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _execute(self, task_id: str, data: Any, attempt: int) -> Attempt:
        """Run one task in a fresh process and classify how it ended."""
        server = self._server
        if server is None:
            raise RuntimeError("the fork server is not running")
        loop = asyncio.get_running_loop()
        token, future = server.reserve()
        running = _Running(task_id)
        self._running[token] = running
        try:
            await server.submit(token, task_id, data, attempt, self._instance_id)
            report: ChildReport = await future
        finally:
            if running.timer is not None:
                running.timer.cancel()
            del self._running[token]
        elapsed = 0.0 if running.started is None else loop.time() - running.started
        return self._classify(report, running, elapsed)

    def _on_started(self, token: int) -> None:
        running = self._running.get(token)
        if running is None:
            return
        loop = asyncio.get_running_loop()
        running.started = loop.time()
        running.timer = loop.call_later(self.options.max_runtime, self._on_timeout, token)

    def _on_timeout(self, token: int) -> None:
        running = self._running.get(token)
        if running is None or self._server is None:
            return
        if running.kill_reason is None:
            running.kill_reason = "timeout"
        self._spawn_background(self._server.kill(token))

    @staticmethod
    def _classify(report: ChildReport, running: _Running, elapsed_s: float) -> Attempt:
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
        if running.kill_reason == "timeout":
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
    ) -> ev.Event:
        """The event that reports one attempt: its type and fields."""
        fields: dict[str, Any] = {
            "task_id": task_id,
            "attempt": attempt_no,
            "elapsed_time": round(attempt.elapsed_s, 6),
            "retry": isinstance(decision, Requeue),
            "outcome": attempt.kind.value,
        }
        kind = attempt.kind
        if kind is OutcomeKind.SUCCESS or kind is OutcomeKind.RETRY_REQUESTED:
            fields["success"] = kind is OutcomeKind.SUCCESS
            fields["result"] = attempt.result
            return ev.TASK_COMPLETED, fields
        if kind is OutcomeKind.EXCEPTION or kind is OutcomeKind.MEMORY:
            fields["exception"] = attempt.exception or ""
            return ev.TASK_EXCEPTION, fields
        if kind is OutcomeKind.EXIT:
            fields["exit_code"] = attempt.exit_code
            return ev.TASK_EXITED, fields
        if kind is OutcomeKind.TIMEOUT:
            fields["max_runtime"] = self.options.max_runtime
            return ev.TASK_TIMED_OUT, fields
        fields["reason"] = attempt.release_reason or "preempted"
        return ev.TASK_RELEASED, fields

    async def _deliver(self, events: Sequence[ev.Event]) -> bool:
        """Store ``events`` (file and event queue) before the message they report is settled."""
        if self._events is None:
            return True
        return await self._events.deliver(events)

    # ------------------------------------------------------------------ file mode

    async def _run_file(self, tasks: Iterable[Task]) -> None:
        # Up to N more tasks wait in the fork server, so a finished task is replaced at once.
        limit = 2 * (self.options.num_simultaneous_tasks or 1)
        for task in tasks:
            await self._wait_for_slot(limit)
            if self._stop_taking:
                break
            self._spawn(self._run_file_task(task))
        await self._drain()

    async def _run_file_task(self, task: Task) -> None:
        attempt = await self._execute(task.task_id, task.data, 1)
        if not attempt.started:
            return
        decision = decide_outcome(attempt.kind, self.options.retry_policy, failures=0)
        event_type, fields = self._attempt_event(task.task_id, 1, attempt, decision)
        self._emit(event_type, **fields)

    # ------------------------------------------------------------------ queue mode

    async def _run_queue(self, queue: TaskQueue) -> None:
        loop = asyncio.get_running_loop()
        limit = self.options.num_simultaneous_tasks or 1
        started = 0
        idle_since: float | None = None
        backoff_s = 0.5
        while not self._stop_taking:
            await self._wait_for_slot(limit)
            if self._stop_taking:
                break
            free = limit - self._active
            if self.options.max_num_tasks is not None:
                free = min(free, self.options.max_num_tasks - started)
                if free <= 0:
                    break
            try:
                messages = await asyncio.to_thread(
                    queue.receive, free, self.options.visibility_timeout, self._receive_wait_s
                )
                backoff_s = 0.5
            except CloudTasksError as exc:
                self._emit(ev.NON_FATAL_EXCEPTION, exception=f"receive: {exc}")
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
                continue
            if self._stop_taking:
                for message in messages:
                    await self._queue_call(queue.release, message.receipt)
                break
            if not messages:
                if self._active == 0 and self.options.exit_when_idle is not None:
                    now = loop.time()
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= self.options.exit_when_idle:
                        break
                continue
            idle_since = None
            for message in messages:
                started += 1
                self._spawn(self._run_queue_task(queue, message))
        await self._drain()

    async def _queue_call(self, func: Callable[..., None], *args: Any) -> bool:
        try:
            await asyncio.to_thread(func, *args)
        except CloudTasksError as exc:
            self._emit(
                ev.NON_FATAL_EXCEPTION, exception=f"{getattr(func, '__name__', func)}: {exc}"
            )
            return False
        return True

    async def _renew_lease(self, queue: TaskQueue, receipt: str) -> None:
        visibility = self.options.visibility_timeout
        while True:
            await self._clock.sleep(visibility / 3)
            await self._queue_call(queue.extend, receipt, visibility)

    async def _run_queue_task(self, queue: TaskQueue, message: ReceivedTask) -> None:
        """Run one delivery; its outcome event is stored before its message is settled.

        The order (event, then ack/requeue/release) means a crash at any point loses nothing:
        at worst the task runs again or its outcome is reported twice, and the task database
        tolerates duplicate events.
        """
        renewer = asyncio.get_running_loop().create_task(self._renew_lease(queue, message.receipt))
        try:
            await self._settle_queue_task(queue, message)
        finally:
            # The lease is held until the message is settled: a slow event queue must not let
            # the message reappear while its outcome is being reported.
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _settle_queue_task(self, queue: TaskQueue, message: ReceivedTask) -> None:
        policy = self.options.retry_policy
        rejected = admit_delivery(message.delivery_count, policy)
        if rejected is not None:
            dead = self._dead_letter_event(message, rejected, "preempted")
            if await self._deliver([dead]):
                await self._queue_call(queue.ack, message.receipt)
            return
        attempt = await self._execute(message.task_id, dict(message.data), message.attempt)
        decision = decide_outcome(
            attempt.kind,
            policy,
            failures=message.envelope.failures,
            delivery_count=message.delivery_count,
        )
        if attempt.started:
            events = [self._attempt_event(message.task_id, message.attempt, attempt, decision)]
            if isinstance(decision, DeadLetter):
                events.append(self._dead_letter_event(message, decision, attempt.error))
            if not await self._deliver(events):
                # The events could not be stored (the worker is stopping at once): run the
                # task again rather than settle it unreported.
                await self._queue_call(queue.release, message.receipt)
                return
        if isinstance(decision, Complete | Fail | DeadLetter):
            await self._queue_call(queue.ack, message.receipt)
        elif isinstance(decision, Requeue):
            await self._queue_call(queue.requeue, message)
        elif isinstance(decision, Release):
            await self._queue_call(queue.release, message.receipt)

    @staticmethod
    def _dead_letter_event(message: ReceivedTask, decision: DeadLetter, error: str) -> ev.Event:
        return ev.TASK_DEAD_LETTERED, {
            "task_id": message.task_id,
            "attempt": message.attempt,
            "retry": False,
            "reason": decision.reason,
            "error": error,
        }


class _LazyFile:
    """A task file read again (streaming) for the run after the validation pass."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __iter__(self) -> Iterator[Task]:
        return _iter_file(self._path)


class _Sliced:
    """Tasks ``start`` to ``stop`` of an iterable (``--tasks-to-skip``, ``--max-num-tasks``)."""

    def __init__(self, tasks: Iterable[Task], start: int, stop: int | None) -> None:
        self._tasks, self._start, self._stop = tasks, start, stop

    def __iter__(self) -> Iterator[Task]:
        return itertools.islice(self._tasks, self._start, self._stop)


__all__ = ["Attempt", "TaskSource", "Worker"]
