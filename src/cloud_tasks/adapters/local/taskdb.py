"""The task database (SPEC §13): one SQLite file per job with every task and every event.

One row per task (id, data, state, attempts, last event, result, error, timestamps, instance),
every event the workers sent (deduplicated: the event queue delivers at least once), and every
instance the manager started with its launch-time price, so spend can be computed after a
restart. The manager is the only writer; ``status`` reads it from another process.

State rules are those of ``domain.taskstate`` (``pending`` → ``running`` → ``completed`` |
``failed``); a second completion of the same task (a duplicate delivery) is recorded in the event
table and counted in ``duplicate_completions``, never counted twice.

Integrity: a file is a task database when its SQLite ``application_id`` is ``APPLICATION_ID``
(``identify``); nothing is written to, or deleted from, any other file. ``run`` records a task
file in one transaction and marks it ``recorded`` in the same one, so a manager killed while
recording leaves no part of it. Every event passes ``domain.events.decode`` before it touches a
row; one that fails is dropped (``IngestResult.rejected``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import attrs

from cloud_tasks.domain import taskstate
from cloud_tasks.domain.events import Event, KeepAlive, decode
from cloud_tasks.domain.tasks import Task
from cloud_tasks.domain.taskstate import (
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    STATES,
    IngestResult,
    InstanceRecord,
    TaskCounts,
)
from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import CloudTasksError, EventError, TaskStoreBusyError

_INSERT_CHUNK = 5000
#: Task ids bound in one lookup query (SQLite allows 999 bound values in older builds).
_IDS_PER_QUERY = 500
#: ``PRAGMA application_id`` of every task database ("ClTs"): how a file is recognised as ours.
APPLICATION_ID = 0x436C5473
#: The tables that make a database without our ``application_id`` (created before it was set)
#: one of ours.
_LEGACY_TABLES = frozenset({"meta", "tasks", "events", "instances"})
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    data TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_event TEXT,
    result TEXT,
    error TEXT,
    created_at REAL,
    started_at REAL,
    finished_at REAL,
    elapsed_s REAL,
    instance_id TEXT,
    duplicate_completions INTEGER NOT NULL DEFAULT 0,
    resent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    timestamp TEXT,
    event_type TEXT,
    task_id TEXT,
    instance_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT,
    instance_type TEXT,
    zone TEXT,
    is_spot INTEGER NOT NULL DEFAULT 0,
    price_per_hour_usd REAL NOT NULL DEFAULT 0,
    launched_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    first_seen_alive REAL,
    last_seen_alive REAL,
    last_task_event REAL,
    running_tasks INTEGER NOT NULL DEFAULT 0
);
"""


@attrs.frozen
class TaskRow:
    """One task as stored."""

    task_id: str
    state: str
    attempts: int
    last_event: str | None
    result: Any
    error: str | None
    elapsed_s: float | None
    instance_id: str | None
    duplicate_completions: int


def identify(path: str | Path) -> str | None:
    """``None`` when ``path`` is a task database of Cloud Tasks, else what it is instead.

    A task database is recognised by its SQLite ``application_id`` (``APPLICATION_ID``), set
    when it is created; a database made before that was set is recognised by its tables. The
    file is only read (through SQLite, without locks, journals or ``-shm`` files), so asking
    changes nothing, whatever the file is.
    """
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        return "a link to a missing file" if target.is_symlink() else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return "a folder"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "an empty file"
    try:
        uri = f"{target.resolve().as_uri()}?immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            if db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                return None
            tables = {
                name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError:
        return "not a SQLite database"
    except (sqlite3.Error, OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if tables >= _LEGACY_TABLES:
        return None
    return "another program's SQLite database"


_SIDECARS = ("-wal", "-shm", "-journal")


def _check_no_sidecars(path: Path) -> None:
    """SQLite would take a ``-wal``, ``-shm`` or ``-journal`` file beside a new database as its
    own (and overwrite it): refuse one that is there without its database."""
    for suffix in _SIDECARS:
        sidecar = Path(f"{path}{suffix}")
        if os.path.lexists(sidecar):
            raise CloudTasksError(
                f"{shown(sidecar, 200)} is there but {shown(path.name, 100)} is not; it was "
                "left untouched. Move it away (or choose another db_file) so that a new task "
                "database can be made"
            )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _writes(
    method: Callable[Concatenate[TaskDatabase, _P], _R],
) -> Callable[Concatenate[TaskDatabase, _P], _R]:
    """A write that SQLite refuses (disk full, read-only file) becomes one ``CloudTasksError``
    line instead of a traceback. A lock held by another program is not refused here: the
    connection raises ``TaskStoreBusyError`` for it, which the pool manager waits out."""

    @functools.wraps(method)
    def write(self: TaskDatabase, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise CloudTasksError(
                f"{shown(self.path, 200)}: cannot write the task database ({exc}); check the "
                "free disk space and that no other program holds it, then resume with "
                "'cloud_tasks run --continue'"
            ) from exc

    return write


def _not_ours(path: Path, what: str) -> CloudTasksError:
    return CloudTasksError(
        f"{shown(path, 200)}: not a Cloud Tasks task database ({what}); it was left untouched. "
        "Point db_file (or --db-file) at the job's task database, or at a new file"
    )


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class _Connection:
    """A SQLite connection whose "locked by another program" failures (after the busy
    timeout) become ``TaskStoreBusyError``, which the pool manager waits out."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path

    @contextlib.contextmanager
    def _busy_is_waited_out(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in _BUSY_CODES:
                raise
            raise TaskStoreBusyError(
                f"{shown(self._path, 200)}: the task database is locked by another program "
                f"({exc.sqlite_errorname})"
            ) from exc

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        with self._busy_is_waited_out():
            return self._connection.execute(sql, parameters)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        with self._busy_is_waited_out():
            return self._connection.executemany(sql, rows)

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self._connection.executescript(script)

    @property
    def total_changes(self) -> int:
        return self._connection.total_changes

    def close(self) -> None:
        self._connection.close()


def _file_identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of ``path``, or None when nothing is there."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


class TaskDatabase:
    """The SQLite task database of one job. Not thread-safe: use it from one thread."""

    def __init__(self, path: str | Path, *, job_id: str | None = None, create: bool = True) -> None:
        """Open the database at ``path``, creating it when missing (unless ``create=False``);
        ``":memory:"`` keeps it in memory (simulations).

        An existing file is opened only when it is a task database (see ``identify``) and,
        when ``job_id`` is given, one of that job: nothing is ever written into another file.

        Raises:
            CloudTasksError: the file is not a task database, or one of another job, or it
                cannot be created or opened.
        """
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        if not in_memory:
            problem = identify(self.path)
            if problem == "missing":
                if not create:
                    raise CloudTasksError(
                        f"{shown(self.path, 200)}: no task database here; run 'cloud_tasks run' "
                        "first or pass --db-file"
                    )
                self._create_file(job_id)
            elif problem is not None:
                raise _not_ours(self.path, problem)
        try:
            self._db = _Connection(
                sqlite3.connect(":memory:" if in_memory else self.path, isolation_level=None),
                self.path,
            )
            if in_memory:
                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CloudTasksError(
                f"{shown(self.path, 200)}: cannot open the task database: {exc}; check the path "
                "of db_file"
            ) from exc
        self._identity = None if in_memory else _file_identity(self.path)
        recorded_job = self.meta().get("job_id")
        if job_id is not None and recorded_job is not None and recorded_job != job_id:
            self._db.close()
            raise CloudTasksError(
                f"{shown(self.path, 200)}: this is the task database of job "
                f"'{shown(recorded_job, 40)}', not of job '{job_id}'; it was left untouched. "
                "Point db_file (or --db-file) at this job's task database"
            )
        meta = self.meta()
        #: Every task of the job is recorded (``run``): events naming other tasks are refused.
        self.tasks_known = bool(meta.get("recorded")) or bool(
            meta.get("loaded") and meta.get("tasks_file")
        )
        self._counts = self._load_counts()
        # Preemptions per unfinished task (from task_released events), for the on-demand
        # fallback of the pool manager; kept in memory only, so it restarts from zero.
        self._preempted: dict[str, int] = {}
        # Spend and running tasks are read at every refresh of the live display: kept here so
        # that reading them costs O(active instances), not a scan of every instance ever run.
        self._active: dict[str, list[float]] = {}  # id → [price, launched_at, running tasks]
        self._ended_cost_usd = 0.0
        for record in self.instances():
            if record.ended_at is None:
                self._active[record.instance_id] = [
                    record.price_per_hour_usd,
                    record.launched_at,
                    float(record.running_tasks),
                ]
            else:
                self._ended_cost_usd += record.cost_usd(record.ended_at)

    def _create_file(self, job_id: str | None) -> None:
        """Create the database file whole: built under a temporary name beside it (with its
        job id), then linked into place, so ``path`` is never a half-made database and an
        existing file (one made meanwhile by someone else) is never replaced."""
        target = self.path
        _check_no_sidecars(target)
        staged = target.parent / f".{target.name}.{secrets.token_hex(6)}.new"
        try:
            os.close(os.open(staged, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            os.chmod(staged, 0o600)
            with contextlib.closing(sqlite3.connect(staged)) as db:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.executescript(_SCHEMA)
                if job_id is not None:
                    with db:
                        db.execute(
                            "INSERT INTO meta (key, value) VALUES ('job_id', ?)",
                            (json.dumps(job_id),),
                        )
            try:
                os.link(staged, target)
            except FileExistsError:
                pass  # made meanwhile: it is checked below like any existing file
            except OSError:
                # A file system without hard links: the check narrows, not closes, the race.
                if not os.path.lexists(target):
                    os.rename(staged, target)
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CloudTasksError(
                f"{shown(target, 200)}: cannot create the task database ({reason}); db_file "
                "must name a file in an existing folder you can write to"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                staged.unlink()
        problem = identify(target)
        if problem is not None:
            raise _not_ours(target, problem)

    @classmethod
    def open_existing(cls, path: str | Path, *, job_id: str | None = None) -> TaskDatabase:
        """Open a database that must already exist (``status``, ``--continue``)."""
        return cls(path, job_id=job_id, create=False)

    @staticmethod
    def check_new(path: str | Path, job_id: str) -> bool:
        """Before anything is created: can ``run`` put this job's task database at ``path``?

        True when a task database of this job is already there (``--force`` may replace it,
        ``--continue`` resume it), False when there is none and one can be created.

        Raises:
            CloudTasksError: ``path`` is a folder, a file that is not a task database, the
                task database of another job, or in a folder that is missing or read-only.
        """
        target = Path(path)
        problem = identify(target)
        if problem is None:
            with TaskDatabase.open_existing(target, job_id=job_id):
                pass
            if not os.access(target, os.W_OK):
                raise CloudTasksError(
                    f"{shown(target, 200)}: the task database is read-only; make it writable "
                    "or point db_file at another file"
                )
        elif problem != "missing":
            raise _not_ours(target, problem)
        else:
            _check_no_sidecars(target)
        parent = target.parent
        try:
            probe = parent / f".{target.name}.{secrets.token_hex(6)}.probe"
            os.close(os.open(probe, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            probe.unlink()
        except OSError as exc:
            raise CloudTasksError(
                f"{shown(target, 200)}: cannot create the task database there "
                f"({exc.strerror or exc}); db_file must name a file in an existing folder "
                "you can write to"
            ) from exc
        return problem is None

    def gone(self) -> str | None:
        """Why the file this database was opened from is no longer it (removed, or replaced
        by another file), or None. Writes would then go to a file no one can see."""
        if self._identity is None:
            return None
        now = _file_identity(self.path)
        if now is None:
            return "was removed"
        if now != self._identity:
            return "was replaced by another file"
        return None

    @staticmethod
    def remove(path: str | Path, job_id: str) -> None:
        """Delete this job's task database at ``path`` (``run --force``), after checking that
        it is one; any other file is refused and left as it is."""
        target = Path(path)
        problem = identify(target)
        if problem == "missing":
            return
        if problem is not None:
            raise _not_ours(target, problem)
        with TaskDatabase.open_existing(target, job_id=job_id):
            pass
        for suffix in ("", *_SIDECARS):
            Path(str(target) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TaskDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------

    @_writes
    def set_meta(self, /, **values: Any) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(key, json.dumps(value)) for key, value in values.items()],
        )

    def meta(self) -> dict[str, Any]:
        return {key: json.loads(value) for key, value in self._db.execute("SELECT * FROM meta")}

    # -- tasks ----------------------------------------------------------------------------

    def _load_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for state, count in self._db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"):
            counts[state] = count
        return counts

    def counts(self) -> TaskCounts:
        return TaskCounts(**{state: self._counts.get(state, 0) for state in STATES})

    @_writes
    def add_tasks(self, tasks: Iterable[Task], now: float, *, complete: bool = False) -> int:
        """Record tasks as pending; tasks already recorded are left as they are.

        All or nothing: the rows are written in one transaction, so a manager killed while it
        records a large file leaves none of them, never a part. ``complete=True`` says these
        are every task of the job (``run``), in the same transaction: from then on events
        naming another task are refused (``tasks_known``), and ``recorded`` in the metadata
        tells ``run --continue`` that the recording finished.

        Returns the number of new rows.
        """
        db = self._db
        before = db.total_changes
        db.execute("BEGIN")
        try:
            chunk: list[tuple[str, str, str, float]] = []
            for task in tasks:
                chunk.append((task.task_id, json.dumps(task.data), PENDING, now))
                if len(chunk) >= _INSERT_CHUNK:
                    db.executemany(
                        "INSERT OR IGNORE INTO tasks (task_id, data, state, created_at) "
                        "VALUES (?,?,?,?)",
                        chunk,
                    )
                    chunk.clear()
            db.executemany(
                "INSERT OR IGNORE INTO tasks (task_id, data, state, created_at) VALUES (?,?,?,?)",
                chunk,
            )
            added = db.total_changes - before
            if complete:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('recorded', 'true') "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._counts[PENDING] += added
        if complete:
            self.tasks_known = True
        return added

    def recorded(self) -> bool:
        """Whether ``add_tasks(..., complete=True)`` finished: every task of the job is here."""
        return bool(self.meta().get("recorded"))

    def task(self, task_id: str) -> TaskRow | None:
        row = self._db.execute(
            "SELECT task_id, state, attempts, last_event, result, error, elapsed_s, "
            "instance_id, duplicate_completions FROM tasks WHERE task_id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        return TaskRow(
            row[0],
            row[1],
            row[2],
            row[3],
            None if row[4] is None else json.loads(row[4]),
            row[5],
            row[6],
            row[7],
            row[8],
        )

    def task_ids(self, state: str) -> list[str]:
        return [
            r[0] for r in self._db.execute("SELECT task_id FROM tasks WHERE state = ?", (state,))
        ]

    def unfinished(self) -> list[tuple[Task, int]]:
        """Every task not yet terminal, with how often the manager re-sent it."""
        return [
            (Task(task_id, {} if data is None else json.loads(data)), resent)
            for task_id, data, resent in self._db.execute(
                "SELECT task_id, data, resent FROM tasks WHERE state IN (?, ?) ORDER BY seq",
                (PENDING, RUNNING),
            )
        ]

    @_writes
    def mark_resent(self, task_ids: Iterable[str]) -> None:
        """Count one more re-send of each task (its outcome was lost; it runs again)."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "UPDATE tasks SET resent = resent + 1 WHERE task_id = ?", [(t,) for t in task_ids]
        )
        self._db.execute("COMMIT")

    @_writes
    def fail_tasks(self, task_ids: Iterable[str], now: float, reason: str) -> int:
        """Mark these non-terminal tasks failed with ``reason``; returns how many changed."""
        self._db.execute("BEGIN")
        changed = 0
        for task_id in task_ids:
            cursor = self._db.execute(
                "UPDATE tasks SET state = ?, error = ?, finished_at = ? "
                "WHERE task_id = ? AND state IN (?, ?)",
                (FAILED, reason, now, task_id, PENDING, RUNNING),
            )
            changed += cursor.rowcount
        self._db.execute("COMMIT")
        self._counts = self._load_counts()
        return changed

    # -- events ---------------------------------------------------------------------------

    @_writes
    def ingest(self, events: Sequence[Mapping[str, Any]], now: float) -> IngestResult:
        """Record a batch of worker events and apply them to the task rows, atomically."""
        new = duplicates = transitions = 0
        alive: dict[str, float] = {}
        worked: dict[str, float] = {}
        busy: dict[str, int] = {}
        rejected: dict[int, str] = {}
        db = self._db
        known = self._is_task if self.tasks_known else None
        db.execute("BEGIN")
        try:
            for index, raw in enumerate(events):
                try:
                    event = decode(raw, known)
                except EventError as exc:
                    rejected[index] = str(exc)
                    continue
                # The body is the event as it came, fields unknown here included.
                body = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
                digest = hashlib.blake2b(body.encode(), digest_size=16).hexdigest()
                # Any accepted event may name a task, not only task events.
                task_id: str | None = raw.get("task_id")
                instance_id = event.instance_id
                cursor = db.execute(
                    "INSERT OR IGNORE INTO events (digest, received_at, timestamp, event_type, "
                    "task_id, instance_id, body) VALUES (?,?,?,?,?,?,?)",
                    (digest, now, event.timestamp, event.event_type, task_id, instance_id, body),
                )
                if cursor.rowcount == 0:
                    duplicates += 1
                    continue
                new += 1
                if instance_id is not None:
                    alive[instance_id] = now
                    if isinstance(event, KeepAlive) and event.running_tasks is not None:
                        busy[instance_id] = event.running_tasks
                if task_id is None:
                    continue
                if instance_id is not None:
                    worked[instance_id] = now
                if self._apply(task_id, event, now):
                    transitions += 1
            for instance_id, seen in alive.items():
                db.execute(
                    "UPDATE instances SET last_seen_alive = ?, "
                    "first_seen_alive = COALESCE(first_seen_alive, ?) WHERE instance_id = ?",
                    (seen, seen, instance_id),
                )
            for instance_id, seen in worked.items():
                db.execute(
                    "UPDATE instances SET last_task_event = ? WHERE instance_id = ?",
                    (seen, instance_id),
                )
            for instance_id, running in busy.items():
                db.execute(
                    "UPDATE instances SET running_tasks = ? WHERE instance_id = ?",
                    (running, instance_id),
                )
                if instance_id in self._active:
                    self._active[instance_id][2] = float(running)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._counts = self._load_counts()
            raise
        return IngestResult(new, duplicates, transitions, alive, worked, rejected)

    def _is_task(self, task_id: str) -> bool:
        query = "SELECT 1 FROM tasks WHERE task_id = ?"
        return self._db.execute(query, (task_id,)).fetchone() is not None

    def _apply(self, task_id: str, event: Event, now: float) -> bool:
        """Apply one new event to its task row (``domain.taskstate``); True when the state
        changed."""
        db = self._db
        row = db.execute(
            "SELECT state, attempts, error FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        if row is None:
            # A task loaded by someone else (manage_pool, monitor_event_queue).
            db.execute(
                "INSERT INTO tasks (task_id, state, created_at) VALUES (?, ?, ?)",
                (task_id, PENDING, now),
            )
            self._counts[PENDING] += 1
            state, attempts, error = PENDING, 0, None
        else:
            state, attempts, error = row
        preemptions = taskstate.preemptions_after(state, event, self._preempted.get(task_id, 0))
        if preemptions:
            self._preempted[task_id] = preemptions
        else:
            self._preempted.pop(task_id, None)
        decision = taskstate.decide(state, event, attempts=attempts, error=error)
        kind = event.event_type
        if isinstance(decision, taskstate.Note):
            db.execute("UPDATE tasks SET last_event = ? WHERE task_id = ?", (kind, task_id))
        elif isinstance(decision, taskstate.Start):
            db.execute(
                "UPDATE tasks SET state = ?, attempts = ?, last_event = ?, started_at = ?, "
                "instance_id = ? WHERE task_id = ?",
                (RUNNING, decision.attempts, kind, now, event.instance_id, task_id),
            )
            return self._move(state, RUNNING)
        elif isinstance(decision, taskstate.CompleteAgain):
            db.execute(
                "UPDATE tasks SET duplicate_completions = duplicate_completions + 1 "
                "WHERE task_id = ?",
                (task_id,),
            )
        elif isinstance(decision, taskstate.Complete):
            db.execute(
                "UPDATE tasks SET state = ?, attempts = ?, last_event = ?, result = ?, "
                "finished_at = ?, elapsed_s = ?, instance_id = ? WHERE task_id = ?",
                (
                    COMPLETED,
                    decision.attempts,
                    kind,
                    json.dumps(decision.result, default=str),
                    now,
                    decision.elapsed_s,
                    event.instance_id,
                    task_id,
                ),
            )
            return self._move(state, COMPLETED)
        elif isinstance(decision, taskstate.GiveUp):
            db.execute(
                "UPDATE tasks SET error = ?, last_event = ? WHERE task_id = ?",
                (decision.error, kind, task_id),
            )
        elif isinstance(decision, taskstate.Fail):
            db.execute(
                "UPDATE tasks SET state = ?, attempts = ?, last_event = ?, error = ?, "
                "finished_at = ?, elapsed_s = COALESCE(?, elapsed_s), instance_id = ? "
                "WHERE task_id = ?",
                (
                    decision.state,
                    decision.attempts,
                    kind,
                    decision.error,
                    None if decision.retry else now,
                    decision.elapsed_s,
                    event.instance_id,
                    task_id,
                ),
            )
            return self._move(state, decision.state)
        return False

    def preempted_tasks(self, min_preemptions: int) -> int:
        """Unfinished tasks whose run was lost to preemption at least ``min_preemptions`` times
        (counted from ``task_released`` events since this database was opened)."""
        return sum(1 for times in self._preempted.values() if times >= min_preemptions)

    def _move(self, old: str, new: str) -> bool:
        if old == new:
            return False
        self._counts[old] -= 1
        self._counts[new] += 1
        return True

    def events(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded events in arrival order (of one task when ``task_id`` is given)."""
        if task_id is None:
            rows: Iterable[tuple[str]] = self._db.execute("SELECT body FROM events ORDER BY id")
        else:
            rows = self._db.execute(
                "SELECT body FROM events WHERE task_id = ? ORDER BY id", (task_id,)
            )
        return [json.loads(body) for (body,) in rows]

    # -- instances ------------------------------------------------------------------------

    @_writes
    def record_instance(self, record: InstanceRecord) -> None:
        cursor = self._db.execute(
            "INSERT INTO instances (instance_id, name, instance_type, zone, is_spot, "
            "price_per_hour_usd, launched_at) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(instance_id) DO NOTHING",
            (
                record.instance_id,
                record.name,
                record.instance_type,
                record.zone,
                int(record.is_spot),
                record.price_per_hour_usd,
                record.launched_at,
            ),
        )
        if cursor.rowcount:
            self._active[record.instance_id] = [record.price_per_hour_usd, record.launched_at, 0.0]

    @_writes
    def end_instance(self, instance_id: str, ended_at: float, reason: str) -> None:
        cursor = self._db.execute(
            "UPDATE instances SET ended_at = ?, end_reason = ?, running_tasks = 0 "
            "WHERE instance_id = ? AND ended_at IS NULL",
            (ended_at, reason, instance_id),
        )
        active = self._active.pop(instance_id, None)
        if cursor.rowcount and active is not None:
            price, launched_at, _ = active
            self._ended_cost_usd += price * max(0.0, ended_at - launched_at) / 3600.0

    def instances(self, *, active_only: bool = False) -> list[InstanceRecord]:
        query = (
            "SELECT instance_id, name, instance_type, zone, is_spot, price_per_hour_usd, "
            "launched_at, ended_at, end_reason, first_seen_alive, last_seen_alive, "
            "last_task_event, running_tasks FROM instances"
        )
        if active_only:
            query += " WHERE ended_at IS NULL"
        return [
            InstanceRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:])
            for r in self._db.execute(query + " ORDER BY launched_at")
        ]

    def spend_usd(self, now: float) -> float:
        """USD spent: every instance's launch-time price times how long it ran (or runs)."""
        running = sum(
            price * max(0.0, now - launched_at) / 3600.0
            for price, launched_at, _ in self._active.values()
        )
        return self._ended_cost_usd + running

    def counts_with_running(self) -> TaskCounts:
        """``counts()``, with tasks running on instances estimated from their keep-alives.

        Workers report how many tasks they run in each keep-alive, not which; those tasks are
        counted as running instead of pending.
        """
        reported = int(sum(running for _, _, running in self._active.values()))
        return self.counts().with_reported_running(reported)

    # -- report queries -------------------------------------------------------------------

    def finished_between(self, start: float, end: float) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM tasks WHERE finished_at > ? AND finished_at <= ? "
            "AND state IN (?, ?)",
            (start, end, COMPLETED, FAILED),
        ).fetchone()
        return int(row[0])

    def elapsed_times(self) -> list[float]:
        """Elapsed seconds of every completed task, sorted."""
        return [
            r[0]
            for r in self._db.execute(
                "SELECT elapsed_s FROM tasks WHERE state = ? AND elapsed_s IS NOT NULL "
                "ORDER BY elapsed_s",
                (COMPLETED,),
            )
        ]

    def top_errors(self, limit: int = 5) -> list[tuple[str, int]]:
        return [
            (str(r[0]), int(r[1]))
            for r in self._db.execute(
                "SELECT error, COUNT(*) FROM tasks WHERE state = ? GROUP BY error "
                "ORDER BY COUNT(*) DESC, error LIMIT ?",
                (FAILED, limit),
            )
        ]

    def failures(self, limit: int = 10) -> list[TaskRow]:
        ids = [
            r[0]
            for r in self._db.execute(
                "SELECT task_id FROM tasks WHERE state = ? ORDER BY seq LIMIT ?", (FAILED, limit)
            )
        ]
        return [row for row in (self.task(task_id) for task_id in ids) if row is not None]

    def duplicate_completions(self) -> int:
        row = self._db.execute("SELECT COALESCE(SUM(duplicate_completions), 0) FROM tasks")
        return int(row.fetchone()[0])

    def iter_rows(self) -> Iterator[TaskRow]:
        for (task_id,) in self._db.execute("SELECT task_id FROM tasks ORDER BY seq").fetchall():
            row = self.task(task_id)
            if row is not None:
                yield row

    def iter_task_data(self, states: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """``(task_id, data)`` of the tasks in ``states``, in load order; ``data`` is None for a
        task known only from its events (loaded by ``load_queue``, not by ``run``)."""
        wanted = sorted(set(states))
        marks = ",".join("?" * len(wanted))
        cursor = self._db.execute(
            f"SELECT task_id, data FROM tasks WHERE state IN ({marks}) ORDER BY seq", wanted
        )
        for task_id, data in cursor:
            yield task_id, None if data is None else json.loads(data)

    def states_of(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of ``task_ids`` the database knows (any number of ids: they are
        looked up ``_IDS_PER_QUERY`` at a time, within SQLite's limit on bound values)."""
        states: dict[str, str] = {}
        for start in range(0, len(task_ids), _IDS_PER_QUERY):
            chunk = list(task_ids[start : start + _IDS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT task_id, state FROM tasks WHERE task_id IN ({marks})", chunk
            )
            states.update(rows.fetchall())
        return states

    def events_after(self, event_id: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        """``(id, event_type, body)`` of up to ``limit`` events recorded after ``event_id``, in
        arrival order; ``body`` is the event as stored (one line of JSON)."""
        return self._db.execute(
            "SELECT id, event_type, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (event_id, limit),
        ).fetchall()


__all__ = [
    "APPLICATION_ID",
    "TaskDatabase",
    "TaskRow",
    "identify",
]
