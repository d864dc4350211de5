"""Test a ``process_task`` against a simulated queue and spot terminations (SPEC §14).

The ``cloud_tasks_sim`` pytest fixture hands out a ``CloudTasksSim``; outside pytest (for
example inside a Hypothesis test) use ``simulate``::

    from cloud_tasks.testing import SimReport, simulate

    with simulate() as sim:
        sim.add_tasks([{"task_id": "t1", "data": {"a": 1}}])
        report: SimReport = sim.run(process_task, num_simultaneous_tasks=2)
    assert report.completed == {"t1"}

``run`` drives the real worker runtime (a fork server, one real child process per task, real
timeouts) against the in-memory task and event queues, so a task behaves as it would on a
cloud. The user guide is ``docs/testing.md``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from cloud_tasks.domain.events import (
    TASK_COMPLETED,
    TASK_DEAD_LETTERED,
    TASK_EXCEPTION,
    TASK_EXITED,
    TASK_RELEASED,
    TASK_TIMED_OUT,
)
from cloud_tasks.domain.option_schema import default
from cloud_tasks.domain.ranges import range_problem
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import TaskFileError

if TYPE_CHECKING:
    from cloud_tasks.adapters.memory.queue import InMemoryEventQueue, InMemoryTaskQueue
    from cloud_tasks.worker import WorkerData

ProcessTask = Callable[[str, Any, "WorkerData"], Any]
TaskList = Iterable[Mapping[str, Any]]

# With max_attempts=0 ("no cap") a task that never succeeds would be retried for ever on a
# cloud; a test must end, so the simulator gives up after this many application failures.
UNCAPPED_ATTEMPTS_LIMIT = 100

# How long one empty receive waits, and how long the queue must stay empty with nothing
# running before the worker exits. The margin keeps a retry re-sent just as the last receive
# returned from being mistaken for an empty queue.
_RECEIVE_WAIT_S = 0.02
_EXIT_WHEN_IDLE_S = 0.1

_ATTEMPT_EVENTS = frozenset(
    {TASK_COMPLETED, TASK_EXCEPTION, TASK_EXITED, TASK_TIMED_OUT, TASK_RELEASED}
)
_FAILURE_EVENTS = frozenset({TASK_COMPLETED, TASK_EXCEPTION, TASK_EXITED, TASK_TIMED_OUT})


@attrs.frozen(kw_only=True)
class SimReport:
    """What happened to every task added to a simulation, over every ``run`` so far.

    Each task id is in exactly one of ``completed`` (an attempt returned ``True``), ``pending``
    (a message for it is still in the queue, e.g. released by a spot termination) and
    ``failed`` (given up: not retried, or out of attempts).

    Attributes:
        attempts: task id → how many times a process was started for it (0 if never).
        results: task id → the result of its successful attempt, else of its last attempt
            that returned ``(False, result)``; tasks that never returned are absent.
        events: every worker event (SPEC §10) as a dict, in the order they were sent.
    """

    completed: frozenset[str]
    failed: frozenset[str]
    pending: frozenset[str]
    attempts: dict[str, int]
    results: dict[str, Any]
    events: list[dict[str, Any]]


def _check_range(name: str, value: float, option: str) -> None:
    """The worker option's range (``cloud_tasks.domain.ranges``), checked before the run."""
    problem = range_problem(option, value)
    if problem is not None:
        raise ValueError(f"{name}: {problem}")


def _check_int(name: str, value: object, option: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    _check_range(name, value, option or name)
    return value


def _check_seconds(
    name: str, value: object, *, allow_none: bool, option: str | None = None
) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "a number of seconds or None" if allow_none else "a number of seconds"
        raise TypeError(f"{name}: expected {expected}, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{name}: must be a finite number of seconds, got {value!r}")
    _check_range(name, seconds, option or name)
    return seconds


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


def _task_from_record(record: object, index: int) -> Task:
    where = f"add_tasks: task index {index}: "
    if not isinstance(record, Mapping):
        raise TaskFileError(
            where + f"expected a mapping with task_id and data, got {type(record).__name__}"
        )
    unknown = sorted(str(key) for key in record if key not in ("task_id", "data"))
    if unknown:
        raise TaskFileError(
            where + f"unknown key {unknown[0]!r} (a task has only task_id and data)"
        )
    for key in ("task_id", "data"):
        if key not in record:
            hint = " (use {} for a task without data)" if key == "data" else ""
            raise TaskFileError(where + f"missing key {key!r}{hint}")
    task_id, data = record["task_id"], record["data"]
    if not isinstance(task_id, str) or not task_id:
        raise TaskFileError(where + f"task_id must be a non-empty string, got {task_id!r}")
    if not isinstance(data, Mapping):
        raise TaskFileError(where + f"data must be a mapping, got {type(data).__name__}")
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError:
        raise TaskFileError(where + "task_id holds a lone surrogate: not Unicode text") from None
    try:
        # allow_nan=False: NaN and Infinity are not JSON; a task file refuses them too.
        json.dumps(dict(data), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskFileError(where + f"data is not JSON-serializable: {exc}") from None
    return Task(task_id, dict(data))


def _serve_blocking(serve: Callable[[], Any]) -> int:
    """Run the worker's ``serve`` coroutine to completion, even from inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        code: int = asyncio.run(serve())
        return code
    # An async test already runs a loop on this thread; give the worker a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cloud_tasks_sim") as pool:
        code = pool.submit(lambda: asyncio.run(serve())).result()
    return code


class CloudTasksSim:
    """A simulated job: an in-memory task queue plus the real worker runtime to drain it.

    Tasks added with ``add_tasks`` are sent to the queue by the next ``run``. The queue outlives
    a run, so after a spot termination a second ``run`` (a new worker) picks up what is pending.
    Use it as a context manager, or through the ``cloud_tasks_sim`` fixture.
    """

    def __init__(self) -> None:
        from cloud_tasks import bootstrap

        queues = bootstrap.build_test_adapters("cloud-tasks-sim")
        self._queue: InMemoryTaskQueue = queues.task_queue
        self._events: InMemoryEventQueue = queues.event_queue
        self._queue.create()
        self._events.create()
        self._task_ids: dict[str, int] = {}
        self._unsent: list[Task] = []
        self._checkpoint_dir = tempfile.mkdtemp(prefix="cloud-tasks-sim-checkpoints-")
        self._closed = False

    def __enter__(self) -> CloudTasksSim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the simulated queues; the simulation cannot be used afterwards."""
        self._closed = True
        self._queue.delete()
        self._events.delete()
        shutil.rmtree(self._checkpoint_dir, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this simulation is closed; start a new one with simulate()")

    @property
    def task_ids(self) -> list[str]:
        """Every task id added so far, in the order added."""
        return list(self._task_ids)

    @property
    def checkpoint_location(self) -> str:
        """The folder ``worker_data.checkpoint`` saves to in this simulation (removed at close)."""
        return self._checkpoint_dir

    def checkpoints(self) -> dict[str, Any]:
        """Task id → its saved checkpoint, for every task whose checkpoint is still stored.

        A task's checkpoint is deleted once its outcome is final, so after a spot termination
        this holds the progress the pending tasks will resume from.
        """
        from urllib.parse import unquote

        self._check_open()
        saved: dict[str, Any] = {}
        for path in sorted(Path(self._checkpoint_dir).glob("*.checkpoint")):
            saved[unquote(path.name.removesuffix(".checkpoint"))] = pickle.loads(path.read_bytes())
        return saved

    def add_tasks(self, tasks: TaskList | str | os.PathLike[str]) -> None:
        """Add tasks: a list of ``{"task_id": str, "data": mapping}``, or a JSON/YAML file path.

        The whole batch is checked before any task is added; a bad or duplicate task raises
        ``TaskFileError`` naming the task index (and the file and line for a file).
        """
        self._check_open()
        if isinstance(tasks, str | os.PathLike):
            from cloud_tasks.taskfile import read_tasks

            batch = read_tasks(Path(tasks))
        elif isinstance(tasks, Mapping | bytes):
            raise TypeError(
                "add_tasks: expected a list of task mappings or a task file path, "
                f"got {type(tasks).__name__}"
            )
        else:
            batch = [_task_from_record(record, index) for index, record in enumerate(tasks)]
        first_index: dict[str, int] = {}
        for index, task in enumerate(batch):
            if task.task_id in self._task_ids:
                raise TaskFileError(
                    f"add_tasks: task index {index}: duplicate task_id {task.task_id!r} "
                    "(added before)"
                )
            if task.task_id in first_index:
                raise TaskFileError(
                    f"add_tasks: task index {index}: duplicate task_id {task.task_id!r} "
                    f"(first used by task index {first_index[task.task_id]})"
                )
            first_index[task.task_id] = index
        for task in batch:
            self._task_ids[task.task_id] = len(self._task_ids)
        self._unsent.extend(batch)

    def run(
        self,
        process_task: ProcessTask,
        *,
        num_simultaneous_tasks: int = 2,
        max_runtime: float = 10,
        max_attempts: int = default("max_attempts"),
        retry_on_exception: bool = default("retry_on_exception"),
        retry_on_exit: bool = default("retry_on_exit"),
        retry_on_timeout: bool = default("retry_on_timeout"),
        spot_termination_after: float | None = None,
        spot_termination_delay: float | None = None,
        duplicate_delivery: bool = False,
    ) -> SimReport:
        """Run one worker until the queue is empty with nothing running, or a spot termination
        has played out; return the report of the whole simulation so far.

        Args:
            process_task: ``process_task(task_id, task_data, worker_data) -> (success, result)``,
                run in a forked child process per attempt (never pickled).
            num_simultaneous_tasks: task processes at once (≥ 1).
            max_runtime: seconds an attempt may run before it is killed (a timeout outcome).
            max_attempts: application-failure attempts before a task is dead-lettered; 0 means
                no cap, which the simulator bounds at ``UNCAPPED_ATTEMPTS_LIMIT`` attempts.
            retry_on_exception, retry_on_exit, retry_on_timeout: retry those outcomes.
            spot_termination_after: seconds after the worker starts at which a spot termination
                notice arrives; None for no notice.
            spot_termination_delay: seconds from the notice until tasks still running are killed
                and released to the queue (they end in ``pending``); None: the worker's default
                of 20 s. Needs ``spot_termination_after``.
            duplicate_delivery: send every task added since the last run twice, as an
                at-least-once queue may deliver it; both copies may run at the same time.

        Raises:
            TypeError, ValueError: an option has the wrong type or value (named in the message).
            CloudTasksError: the worker refused its input.
        """
        self._check_open()
        if not callable(process_task):
            raise TypeError(f"process_task: expected a callable, got {process_task!r}")
        slots = _check_int("num_simultaneous_tasks", num_simultaneous_tasks)
        runtime_s = _check_seconds("max_runtime", max_runtime, allow_none=False)
        attempts_cap = _check_int("max_attempts", max_attempts)
        flags = {
            "retry-on-exception": _check_bool("retry_on_exception", retry_on_exception),
            "retry-on-exit": _check_bool("retry_on_exit", retry_on_exit),
            "retry-on-timeout": _check_bool("retry_on_timeout", retry_on_timeout),
        }
        after_s = _check_seconds(
            "spot_termination_after",
            spot_termination_after,
            allow_none=True,
            option="simulate_spot_termination_after",
        )
        delay_s = _check_seconds(
            "spot_termination_delay",
            spot_termination_delay,
            allow_none=True,
            option="simulate_spot_termination_delay",
        )
        if delay_s is not None and after_s is None:
            raise ValueError(
                "spot_termination_delay: needs spot_termination_after (when the notice arrives)"
            )
        duplicate = _check_bool("duplicate_delivery", duplicate_delivery)

        args = [
            "--num-simultaneous-tasks",
            str(slots),
            "--max-runtime",
            repr(runtime_s),
            "--max-attempts",
            str(attempts_cap or UNCAPPED_ATTEMPTS_LIMIT),
            "--exit-when-idle",
            repr(_EXIT_WHEN_IDLE_S),
            "--keepalive-interval",
            "0",
            "--no-event-log-to-file",
            "--event-log-to-queue",
            "--checkpoint-location",
            self._checkpoint_dir,
        ]
        args += [f"--{flag}" if on else f"--no-{flag}" for flag, on in flags.items()]
        if after_s is not None:
            args += ["--simulate-spot-termination-after", repr(after_s)]
        if delay_s is not None:
            args += ["--simulate-spot-termination-delay", repr(delay_s)]
        self._send_unsent(duplicate)
        self._serve(process_task, args)
        return self.report()

    def _send_unsent(self, duplicate: bool) -> None:
        envelopes = [Envelope(task) for task in self._unsent]
        self._queue.send(envelopes)
        if duplicate:
            self._queue.send(envelopes)
        self._unsent.clear()

    def _serve(self, process_task: ProcessTask, args: Sequence[str]) -> None:
        from cloud_tasks.worker import Worker

        worker = Worker(
            process_task,
            args=args,
            task_queue=self._queue,
            event_queue=self._events,
            environ={},
            handle_signals=False,
            receive_wait_s=_RECEIVE_WAIT_S,
            prog="cloud_tasks_sim",
        )
        _serve_blocking(worker.serve)

    def report(self) -> SimReport:
        """The report of every run so far (what ``run`` returns)."""
        self._check_open()
        events = self._events.peek()
        attempts = dict.fromkeys(self._task_ids, 0)
        completed: set[str] = set()
        gave_up: set[str] = set()
        results: dict[str, Any] = {}
        for event in events:
            task_id = event.get("task_id")
            if not isinstance(task_id, str):
                continue
            kind = event.get("event_type")
            if kind in _ATTEMPT_EVENTS:
                attempts[task_id] = attempts.get(task_id, 0) + 1
            if kind == TASK_COMPLETED:
                if event.get("success") is True:
                    completed.add(task_id)
                    results[task_id] = event.get("result")
                elif task_id not in completed:
                    results[task_id] = event.get("result")
            if kind == TASK_DEAD_LETTERED or (
                kind in _FAILURE_EVENTS
                and event.get("retry") is False
                and event.get("success") is not True
            ):
                gave_up.add(task_id)
        queued = {envelope.task.task_id for envelope in self._queue.peek()}
        queued.update(task.task_id for task in self._unsent)
        pending = queued - completed
        failed = set(self._task_ids) - completed - pending
        lost = failed - gave_up
        if lost:
            raise RuntimeError(
                f"tasks {sorted(lost)} are neither completed, failed nor in the queue; "
                "this is a bug in the worker runtime"
            )
        return SimReport(
            completed=frozenset(completed),
            failed=frozenset(failed),
            pending=frozenset(pending),
            attempts=attempts,
            results=results,
            events=events,
        )


def simulate() -> CloudTasksSim:
    """A fresh simulation; use it as ``with simulate() as sim:`` (the queues go at the end)."""
    return CloudTasksSim()


__all__ = ["UNCAPPED_ATTEMPTS_LIMIT", "CloudTasksSim", "SimReport", "simulate"]
