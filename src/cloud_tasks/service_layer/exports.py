"""What a user can take out of a job's task database, and feed back into a new one.

- ``EventExport``: every event (not keep-alives) appended to a JSON-lines file as it reaches
  the database (``run --output-file``). A file that did not receive this job's events yet
  (a new file after ``--continue``) first gets every event already recorded.
- ``dump_tasks``: the tasks in some states written as a task file that ``run`` accepts
  unchanged (``status --dump failed --output failed.json``).
- ``skip_completed``: drop the tasks an earlier job's database records as completed
  (``run --skip-completed OLD.db``, ``load_queue --skip-completed OLD.db``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Final

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.bootstrap import open_task_database
from cloud_tasks.domain.events import KEEP_ALIVE
from cloud_tasks.domain.tasks import Task
from cloud_tasks.domain.taskstate import COMPLETED, STATES
from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import CloudTasksError, ConfigError

#: ``--dump`` accepts a state or ``unfinished`` (every task not completed).
DUMP_CHOICES: Final = (*STATES, "unfinished")
_EXPORT_META_KEY = "event_export"
_SKIP_BATCH = 500


class EventExport:
    """Appends a job's events, except keep-alives, to a JSON-lines file.

    Each line is one event as the database stores it. ``flush`` writes whatever arrived since
    the last call; call it while the job runs (each supervision pass) and once at the end.
    The position reached is kept in the database, so a resumed job (``--continue``) appending
    to the same file goes on where it stopped, while a different file starts from the first
    event recorded.
    """

    def __init__(self, db: TaskDatabase, path: str | Path) -> None:
        self.db = db
        self.path = Path(path)
        self._key = str(self.path.resolve())
        previous = db.meta().get(_EXPORT_META_KEY)
        self.last_id = 0
        if (
            isinstance(previous, dict)
            and previous.get("path") == self._key
            and self.path.is_file()
            and self.path.stat().st_size > 0
        ):
            self.last_id = int(previous.get("last_id", 0))
        _check_event_file(self.path)
        try:
            self._file: IO[str] = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot write the event file: {exc.strerror or exc}"
            ) from None
        self.written = 0

    def flush(self) -> int:
        """Append the events recorded since the last flush; returns how many were written."""
        count = 0
        while True:
            batch = self.db.events_after(self.last_id)
            if not batch:
                break
            lines = [body for _id, kind, body in batch if kind != KEEP_ALIVE]
            if lines:
                self._file.write("\n".join(lines) + "\n")
                count += len(lines)
            self.last_id = batch[-1][0]
        if count:
            self._file.flush()
        self.db.set_meta(**{_EXPORT_META_KEY: {"path": self._key, "last_id": self.last_id}})
        self.written += count
        return count

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._file.close()

    def __enter__(self) -> EventExport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _check_event_file(path: Path) -> None:
    """Events are appended only to a new file, an empty one, or one this export wrote (its
    first line is an event): never to the task file, the configuration, the task database or
    anything else that happens to be named, and never to a FIFO (opening one blocks)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError:
        return  # the open below names the problem
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "not a regular file"
    elif info.st_size:
        try:
            with path.open("rb") as stream:
                first = json.loads(stream.readline(1 << 20))
        except (OSError, ValueError):
            first = None
        if not (isinstance(first, dict) and "event_type" in first):
            problem = "its first line is not an event"
    if problem is not None:
        raise ConfigError(
            f"{shown(path, 200)}: exists and is not an event file written by --output-file "
            f"({problem}); it was left untouched. Choose a new file"
        )


def dump_states(choice: str) -> tuple[str, ...]:
    """The states a ``--dump`` choice stands for."""
    if choice == "unfinished":
        return tuple(state for state in STATES if state != COMPLETED)
    if choice not in STATES:
        raise ConfigError(
            f"--dump {choice}: not a task state; use one of {', '.join(DUMP_CHOICES)}"
        )
    return (choice,)


def dump_tasks(db: TaskDatabase, states: Sequence[str], output: str | Path | None) -> int:
    """Write the tasks in ``states`` as a task file (JSON, or YAML for .yaml/.yml); return how
    many. ``output`` None writes JSON to standard output.

    The file is written whole or not at all (a temporary file renamed into place).

    Raises:
        CloudTasksError: a task has no data in the database (it was loaded by ``load_queue``);
            nothing is written.
    """
    missing = [task_id for task_id, data in db.iter_task_data(states) if data is None]
    if missing:
        ids = ", ".join(shown(task_id) for task_id in missing[:5])
        ids += " ..." if len(missing) > 5 else ""
        raise CloudTasksError(
            f"{db.path}: {len(missing)} of these tasks have no data in the task database "
            f"({ids}); they were loaded with load_queue, so take them from the original "
            "task file with --skip-completed instead"
        )
    tasks = (Task(task_id, data) for task_id, data in db.iter_task_data(states))
    if output is None:
        import sys

        return _write_json(tasks, sys.stdout)
    target = Path(output)
    as_yaml = target.suffix.lower() in (".yaml", ".yml")
    if not as_yaml and target.suffix.lower() != ".json":
        raise ConfigError(
            f"{target}: a task file must end in .json, .yaml or .yml (so run can read it)"
        )
    if os.path.lexists(target):
        raise ConfigError(
            f"{shown(target, 200)}: already exists; it is never overwritten. Choose a new file"
        )
    directory = target.parent
    try:
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the task file: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            count = _write_yaml(tasks, stream) if as_yaml else _write_json(tasks, stream)
        try:
            os.link(temp_name, target)  # never over a file made meanwhile
        except FileExistsError:
            raise ConfigError(
                f"{shown(target, 200)}: already exists; it is never overwritten. Choose a new file"
            ) from None
        except OSError:
            os.replace(temp_name, target)  # no hard links here: checked just above
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    return count


def _write_json(tasks: Iterable[Task], stream: IO[str]) -> int:
    """One task per line inside a JSON list: valid JSON that diffs and greps well."""
    count = 0
    stream.write("[")
    for task in tasks:
        stream.write(",\n" if count else "\n")
        stream.write(json.dumps({"task_id": task.task_id, "data": task.data}))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def _write_yaml(tasks: Iterable[Task], stream: IO[str]) -> int:
    import yaml

    count = 0
    for task in tasks:
        item = [{"task_id": task.task_id, "data": task.data}]
        stream.write(yaml.safe_dump(item, sort_keys=False, allow_unicode=True))
        count += 1
    if not count:
        stream.write("[]\n")
    return count


def skip_completed(tasks: Iterable[Task], earlier: TaskDatabase) -> Iterator[Task]:
    """The tasks that ``earlier`` (an earlier job's database) does not record as completed,
    in order. Reads the database in batches, so any number of tasks streams through."""
    batch: list[Task] = []
    for task in tasks:
        batch.append(task)
        if len(batch) >= _SKIP_BATCH:
            yield from _not_completed(batch, earlier)
            batch = []
    if batch:
        yield from _not_completed(batch, earlier)


def _not_completed(batch: list[Task], earlier: TaskDatabase) -> list[Task]:
    states = earlier.states_of([task.task_id for task in batch])
    return [task for task in batch if states.get(task.task_id) != COMPLETED]


def open_earlier_database(path: str | Path, current: str | Path | None = None) -> TaskDatabase:
    """Open the database given to ``--skip-completed``; it must exist and not be the new job's."""
    if current is not None and Path(path).resolve() == Path(current).resolve():
        raise ConfigError(
            f"--skip-completed {path}: that is this job's own task database; give the new job "
            "another --job-id (or --db-file) so the earlier database is kept"
        )
    return open_task_database(path, existing=True)


__all__ = [
    "DUMP_CHOICES",
    "EventExport",
    "dump_states",
    "dump_tasks",
    "open_earlier_database",
    "skip_completed",
]
