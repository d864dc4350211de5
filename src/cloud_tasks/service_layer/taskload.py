"""A job's task file, read once (SPEC §3, §11).

``run`` needs the tasks three times: to check the whole file before anything is created, to
record them in the task database, and to send them to the queue; ``load_queue`` twice, to check
and to send. The file, perhaps a download, is read once by ``read_task_file`` (``scan_task_file``
for ``load_queue``, which words its own errors): every task is validated, its queue message
encoded and sized, the tasks outside a ``--start-task``/``--limit`` slice and those completed in
an earlier job (``--skip-completed``) dropped, and the messages of the rest written to a
``TaskSpool``, an unnamed temporary file the later passes read back.
"""

from __future__ import annotations

import collections
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs

from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.service_layer.exports import skip_completed
from cloud_tasks.taskfile import iter_tasks

if TYPE_CHECKING:
    from cloud_tasks.adapters.local.taskdb import TaskDatabase
    from cloud_tasks.ports import TaskSource

#: Ids named in the error about tasks too large for the queue.
_OVERSIZED_SHOWN = 5
#: Bytes of the spool decoded at once.
_READ_BYTES = 1 << 20


@attrs.frozen
class TaskFileSummary:
    """What one read of a task file found: ``total`` tasks, of which ``selected`` are to run
    (in the slice, and not completed in the earlier job); ``oversized``: the ids of the tasks in
    the slice whose queue message is larger than the limit given, in file order."""

    total: int
    selected: int
    oversized: tuple[str, ...] = ()


class TaskSpool:
    """Queue messages kept in an unnamed temporary file, read back as tasks, in order, as often
    as needed (one pass at a time).

    The file has no name (``tempfile.TemporaryFile``), so it is gone when closed, and also when
    the process is killed. It is made in ``directory`` (the task database's folder: the job's
    own disk, not a small tmpfs) when that folder can take it, else in the system's temporary
    folder.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._file = _temporary_file(directory)
        self.count = 0

    def add(self, body: str) -> None:
        """Keep one task's queue message (``Envelope.encode``: compact JSON, so one line)."""
        self._file.write(body.encode("utf-8"))
        self._file.write(b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[Task]:
        self._file.flush()
        self._file.seek(0)
        # A batch of lines is one JSON list (whitespace may follow each value): one call of
        # the C decoder per megabyte instead of one per task.
        while lines := self._file.readlines(_READ_BYTES):
            for message in json.loads(b"[" + b",".join(lines) + b"]"):
                yield Task(message["task_id"], message["data"])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TaskSpool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _temporary_file(directory: str | Path | None) -> IO[bytes]:
    if directory is not None:
        try:
            return tempfile.TemporaryFile(prefix=".tasks-", dir=directory)
        except OSError:
            pass  # a folder that does not exist yet or is read-only: 'run' reports it later
    return tempfile.TemporaryFile(prefix="cloud-tasks-")


def read_task_file(
    location: str,
    *,
    max_message_bytes: int | None = None,
    earlier: TaskDatabase | None = None,
    spool: TaskSpool | None = None,
    source: TaskSource | None = None,
    on_task: Callable[[Task], None] | None = None,
) -> TaskFileSummary:
    """Read the task file at ``location`` once, checking every task.

    With ``max_message_bytes`` (``run``, ``check``) the file must hold a task and every task's
    message must fit the queue. With ``earlier`` (``--skip-completed``'s database) the tasks it
    records as completed are not selected. With ``spool`` the selected tasks' messages are
    kept there for the passes that follow. ``on_task`` is called with each selected task.

    Raises:
        TaskFileError: the file is unreadable or invalid, empty, or has tasks too large for
            the queue (their ids are named).
    """
    summary = scan_task_file(
        location,
        max_message_bytes=max_message_bytes,
        earlier=earlier,
        spool=spool,
        source=source,
        on_task=on_task,
    )
    if max_message_bytes is not None:
        _require_runnable(location, summary.total, summary.oversized, max_message_bytes)
    return summary


def scan_task_file(
    location: str,
    *,
    max_message_bytes: int | None = None,
    earlier: TaskDatabase | None = None,
    spool: TaskSpool | None = None,
    source: TaskSource | None = None,
    on_task: Callable[[Task], None] | None = None,
    start: int = 0,
    limit: int | None = None,
) -> TaskFileSummary:
    """``read_task_file`` that selects only the tasks from index ``start`` (at most ``limit`` of
    them) and refuses nothing but an unreadable or invalid file: the tasks too large for the
    queue are in the summary, for the caller to refuse in its own words.

    Raises:
        TaskFileError: the file is unreadable or invalid.
    """
    total = 0
    oversized: list[str] = []
    end = None if limit is None else start + limit
    encode = spool is not None or max_message_bytes is not None
    # The messages of tasks read but not yet passed on (at most one batch of skip_completed).
    bodies: collections.deque[tuple[Task, str]] = collections.deque()

    def tasks() -> Iterator[Task]:
        nonlocal total
        for task in iter_tasks(location, source=source):
            index = total
            total += 1
            # Every task is read and checked; only those of the slice go on.
            if index < start or (end is not None and index >= end):
                continue
            if encode:
                body = Envelope(task).encode()
                # ensure_ascii (json's default): as many bytes as characters.
                if max_message_bytes is not None and len(body) > max_message_bytes:
                    oversized.append(task.task_id)
                if spool is not None:
                    bodies.append((task, body))
            yield task

    selected = 0
    for task in tasks() if earlier is None else skip_completed(tasks(), earlier):
        selected += 1
        if on_task is not None:
            on_task(task)
        if spool is not None:
            # skip_completed yields a subsequence of the same objects, in order.
            while bodies[0][0] is not task:
                bodies.popleft()
            spool.add(bodies.popleft()[1])
    return TaskFileSummary(total, selected, tuple(oversized))


def _require_runnable(location: str, total: int, oversized: Sequence[str], max_bytes: int) -> None:
    if total == 0:
        raise TaskFileError(f"{location}: the task file holds no tasks; nothing to run")
    if oversized:
        ids = ", ".join(f"'{shown(task_id)}'" for task_id in oversized[:_OVERSIZED_SHOWN])
        ids += " ..." if len(oversized) > _OVERSIZED_SHOWN else ""
        raise TaskFileError(
            f"{location}: {len(oversized)} tasks are larger than the queue's {max_bytes}-byte "
            f"message limit ({ids}); keep large inputs in files and pass their paths"
        )


__all__ = ["TaskFileSummary", "TaskSpool", "read_task_file", "scan_task_file"]
