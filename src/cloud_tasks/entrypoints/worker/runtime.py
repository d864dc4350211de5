"""``Worker``: parses the options, forks the fork server, then hands over to the event loop.

This module stays light (no ``asyncio``, no queue code): ``import cloud_tasks.worker`` is fast,
and ``Worker.run`` forks the fork server before ``asyncio`` is even imported, so every task
process is forked from a small parent (fork and exit cost grows with the parent's memory).
The serving loop itself is ``service.WorkerService``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from cloud_tasks.entrypoints.worker.data import LiveFlags, WorkerData
from cloud_tasks.entrypoints.worker.forkserver import ForkServer, ProcessTask
from cloud_tasks.entrypoints.worker.gpus import check_gpu_options
from cloud_tasks.entrypoints.worker.options import WorkerOptions, evolve, parse_worker_options
from cloud_tasks.exceptions import CloudTasksError

if TYPE_CHECKING:
    from cloud_tasks.domain.tasks import Task
    from cloud_tasks.entrypoints.worker.service import WorkerService
    from cloud_tasks.entrypoints.worker.tasksource import TaskSource
    from cloud_tasks.ports import Clock, EventQueue, InstanceMetadata, TaskQueue

_GIB = 1024**3


class Prepared(NamedTuple):
    """What ``serve`` runs with: the checked tasks (file mode) and the running fork server."""

    tasks: Iterable[Task] | None
    server: ForkServer


def _address_space_limit(memory_gb: float) -> int:
    """``RLIMIT_AS`` in bytes for ``memory_gb``, never above the hard limit this process has.

    A task process may lower its limits but not raise them: a value above the hard limit
    would make ``setrlimit`` fail in every task instead of limiting it.
    """
    import resource

    wanted = int(memory_gb * _GIB)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


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
        self._process_task = process_task
        self._task_source = task_source
        self._task_queue = task_queue
        self._event_queue = event_queue
        self._metadata = metadata
        self._clock = clock
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
        options = evolve(
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
        if options.verbose:
            import logging

            if not logging.getLogger().handlers:
                logging.basicConfig(
                    level=logging.DEBUG if options.verbose > 1 else logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                )
        self._hostname = socket.gethostname()
        self._flags = LiveFlags()
        self._prepared: Prepared | None = None
        self._service: WorkerService | None = None

    # ------------------------------------------------------------------ public entry points

    async def start(self) -> None:
        """Run until done; on bad input print one line and exit (``SystemExit``) non-zero."""
        try:
            code = await self.serve()
        except CloudTasksError as exc:
            self._fail(exc)
        if code != 0:
            raise SystemExit(code)

    def run(self) -> None:
        """Synchronous form of ``start``; forks the fork server before starting the loop."""
        try:
            self._prepare()
        except CloudTasksError as exc:
            self._fail(exc)
        import asyncio

        asyncio.run(self.start())

    async def serve(self) -> int:
        """Run until done and return the exit status; raises ``CloudTasksError`` on bad input.

        0: every task was handled (or the queue stayed idle, or a spot termination ended the
        run); 128 + signal number after SIGINT/SIGTERM.
        """
        # Fork first: the fork server (and so every task process) must not hold the serving
        # loop's modules (the Quick Start form calls this with asyncio already running).
        prepared = self._prepare()
        self._prepared = None  # one serve per preparation
        from cloud_tasks.entrypoints.worker.service import WorkerService

        self._service = WorkerService(
            options=self.options,
            server=prepared.server,
            tasks=prepared.tasks,
            hostname=self._hostname,
            flags=self._flags,
            environ=self._environ,
            task_queue=self._task_queue,
            event_queue=self._event_queue,
            metadata=self._metadata,
            clock=self._clock,
            metadata_poll_interval_s=self._metadata_poll_interval_s,
            receive_wait_s=self._receive_wait_s,
            handle_signals=self._handle_signals,
        )
        return await self._service.serve()

    def notice_termination(self, delay_s: float | None = None) -> None:
        """Act on a spot termination notice as if it arrived now (while ``serve`` runs).

        Stops taking tasks, sets ``received_termination_notice`` in running tasks, and kills and
        releases the tasks still running ``delay_s`` later (default: by provider).
        """
        if self._service is None:
            raise RuntimeError("the worker is not serving yet")
        self._service.notice_termination(delay_s)

    # ------------------------------------------------------------------ preparation

    def _fail(self, exc: CloudTasksError) -> NoReturn:
        print(f"{self._parser.prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None

    def _prepare(self) -> Prepared:
        """Fork the fork server, then check the task file before any task runs (once)."""
        if self._prepared is not None:
            return self._prepared
        memory_limit = self.options.max_memory_allowed_per_task
        check_gpu_options(self.options)
        worker_data = WorkerData(
            **self.options.as_dict(),
            args=self.args,
            hostname=self._hostname,
            flags=self._flags,
        )
        # The fork server must exist before any thread (executor, SDK client) is started.
        server = ForkServer.fork(
            self._process_task,
            worker_data,
            max_running=self.options.num_simultaneous_tasks or 1,
            memory_limit_bytes=None if memory_limit is None else _address_space_limit(memory_limit),
            max_runtime_s=self.options.max_runtime,
        )
        # The task file is checked after the fork, so the fork server (and every task process)
        # stays free of the YAML parser and the HTTP/S3 readers; nothing runs before it passes.
        try:
            tasks = None
            if self.file_mode:
                from cloud_tasks.entrypoints.worker.tasksource import load_tasks

                source = self._task_source
                if source is None:
                    source = self.options.task_file
                tasks = load_tasks(
                    source, skip=self.options.tasks_to_skip, limit=self.options.max_num_tasks
                )
                if self.options.event_log_to_file:
                    # Checked before any task runs (it is opened again, to append, by the log).
                    from cloud_tasks.entrypoints.worker.events import open_event_log

                    open_event_log(self.options.event_log_file).close()
        except BaseException:
            server.close()
            raise
        self._prepared = Prepared(tasks, server)
        return self._prepared


__all__ = ["Worker"]
