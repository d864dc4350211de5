"""File mode's tasks: a task file or a ``task_source`` callable, checked whole before any run."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import CloudTasksError, TaskFileError

TaskSource = str | os.PathLike[str] | Callable[[], Iterable[Mapping[str, Any]]]


def load_tasks(
    source: TaskSource | None, *, skip: int = 0, limit: int | None = None
) -> Iterable[Task]:
    """Validate the whole task source up front, so bad input stops the worker before any task.

    A file is read again (streaming) when the tasks are run; a callable is called once.
    ``skip`` and ``limit`` select a slice (``--tasks-to-skip``, ``--max-num-tasks``).
    """
    if callable(source):
        try:
            records = list(source())
        except Exception as exc:
            raise TaskFileError(f"task_source failed: {exc}") from exc
        tasks: Iterable[Task] = _tasks_from_records(records, "task_source")
    else:
        # Missing files, FIFOs, directories and devices are told apart by the reader itself.
        path = os.fspath(source) if source is not None else ""
        for _ in _iter_file(path):
            pass
        tasks = _LazyFile(path)
    return _Sliced(tasks, skip, None if limit is None else skip + limit)


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


__all__ = ["TaskSource", "load_tasks"]
