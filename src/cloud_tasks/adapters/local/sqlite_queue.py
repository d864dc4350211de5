"""Task and event queues in one SQLite file for the ``local`` provider (SPEC §8).

Many processes may use one file at once: the database runs in WAL mode, every change is one
``BEGIN IMMEDIATE`` transaction (so two receivers never lease the same message) and every
connection waits on a busy timeout instead of failing. A lease is a ``visible_at`` time on the
wall clock, so a client killed with ``kill -9`` loses nothing: its messages become visible again
when their lease runs out. The file and its directory are created owner-only (0600 / 0700).

A queue's ``without_waiting`` view has a connection of its own that never waits for a lock
(a call that finds it taken raises ``QueueBusyError`` at once) and never checkpoints the WAL
(a checkpoint writes the database file and syncs it); every ``_CALLS_PER_CHECKPOINT``-th call
it declines, so the caller's call on the queue itself gives that connection the chance to
checkpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from cloud_tasks.adapters._bodies import encode_envelopes, encode_events
from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.domain.tasks import SQS_MAX_MESSAGE_BYTES, Envelope
from cloud_tasks.exceptions import ProviderError, QueueBusyError, QueueNotFoundError
from cloud_tasks.ports import Clock, Lease, ReceivedEvent, ReceivedTask

BUSY_TIMEOUT_S = 60.0
# The wait for a lock through a view that never waits. Not even a few milliseconds: SQLite's
# busy handler sleeps a whole millisecond before its first retry, and with two workers and
# the manager writing, a lock is often taken for a moment (the call then goes to a thread).
_QUICK_BUSY_TIMEOUT_MS = 0
# Calls a view makes before it declines one (see the module docstring).
_CALLS_PER_CHECKPOINT = 200
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_POLL_S = (0.02, 0.25)  # first and longest sleep while waiting for a message
# Message ids per UPDATE (far below SQLite's limit on bound parameters, 999 before 3.32).
_IDS_PER_STATEMENT = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lease TEXT
);
-- Receives take the oldest visible messages: a walk in id order that skips the few leased
-- ones. (The earlier index by visible time made every receive sort all visible messages.)
DROP INDEX IF EXISTS messages_by_queue;
CREATE INDEX IF NOT EXISTS messages_in_order ON messages (queue, id);
CREATE TABLE IF NOT EXISTS loaded (
    queue TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (queue, task_id)
) WITHOUT ROWID;
"""


def create_owner_only(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite's -wal/-shm copy the mode).

    Only a file this call creates is opened and closed: closing any descriptor of a database
    file drops every POSIX lock this process holds on it, including the locks of SQLite
    connections open in other threads, and another process may then checkpoint and delete
    the WAL under them, which corrupts the database (sqlite.org/howtocorrupt.html, 2.2).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class SqliteDatabase:
    """One SQLite queue file, opened lazily and reopened after a fork.

    A single connection per process is guarded by a lock: SQLite serialises writers anyway,
    and the worker calls the queue from a few threads at most. With ``wait=False`` (see
    ``without_waiting``) a transaction that cannot start at once raises ``QueueBusyError``.
    """

    def __init__(self, path: str | os.PathLike[str], *, wait: bool = True) -> None:
        self.path = Path(path)
        self.wait = wait
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._calls = 0
        self._quick: SqliteDatabase | None = None

    def without_waiting(self) -> SqliteDatabase:
        """The same file through a connection of its own that never waits (one per object)."""
        if not self.wait:
            return self
        if self._quick is None:
            self._quick = SqliteDatabase(self.path, wait=False)
        return self._quick

    def file_exists(self) -> bool:
        return self.path.exists()

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            if self.path.exists():
                return self._conn
            # The file was removed (its last queue deleted): never write to the orphan.
            self._conn.close()
            self._conn = None
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_owner_only(self.path)
            busy_timeout_ms = int(BUSY_TIMEOUT_S * 1000) if self.wait else _QUICK_BUSY_TIMEOUT_MS
            conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            if not self.wait:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives any process crash; only a power loss may drop the
            # last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            self._raise_if_busy(exc)
            raise ProviderError(f"cannot open the queue database {self.path}: {exc}") from exc
        self._conn = conn
        self._pid = os.getpid()
        return conn

    def _raise_if_busy(self, exc: BaseException) -> None:
        """``QueueBusyError`` for a lock another connection holds, when this one never waits."""
        code = getattr(exc, "sqlite_errorcode", None)
        # The primary code (low byte) of any busy or locked result, extended or not.
        if not self.wait and code is not None and (code & 0xFF) in _BUSY_CODES:
            raise QueueBusyError(f"queue database {self.path} is locked") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front."""
        if self.wait:
            self._lock.acquire()
        elif not self._lock.acquire(blocking=False):
            raise QueueBusyError(f"queue database {self.path} is in use by another thread")
        try:
            if not self.wait:
                self._calls += 1
                if self._calls % _CALLS_PER_CHECKPOINT == 0:
                    raise QueueBusyError(f"queue database {self.path}: a checkpoint may be due")
            conn = self._open()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._raise_if_busy(exc)
                raise ProviderError(f"queue database {self.path} is unavailable: {exc}") from exc
            try:
                yield conn
            except BaseException as exc:
                conn.rollback()
                self._raise_if_busy(exc)
                raise
            try:
                conn.commit()
            except sqlite3.Error as exc:
                with suppress(sqlite3.Error):
                    conn.rollback()
                self._raise_if_busy(exc)
                raise ProviderError(f"queue database {self.path}: commit failed: {exc}") from exc
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def remove_if_unused(self) -> bool:
        """Remove the file (and its -wal/-shm) when it holds no queue and no load record; a
        job's queue file goes with its last queue. True when removed."""
        with self._lock:
            if not self.file_exists():
                return False
            with self.transaction() as conn:
                row = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM queues) + (SELECT COUNT(*) FROM loaded)"
                ).fetchone()
            if int(row[0]):
                return False
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return True


class _SqliteQueueBase:
    """Storage, leases and waiting shared by the task and event queues."""

    def __init__(
        self, path: str | os.PathLike[str] | SqliteDatabase, name: str, clock: Clock | None
    ) -> None:
        if not name:
            raise ProviderError("a queue name is required (set job_id or queue_name)")
        self.name = name
        self.db = path if isinstance(path, SqliteDatabase) else SqliteDatabase(path)
        # Leases are shared between processes, so they run on the wall clock by default.
        self._clock: Clock = clock if clock is not None else SystemClock()

    @property
    def path(self) -> Path:
        return self.db.path

    def _missing(self) -> QueueNotFoundError:
        return QueueNotFoundError(
            f"queue {self.name!r} does not exist in {self.path}; "
            "create it with 'cloud_tasks load_queue' (or check --queue-name/--job-id)"
        )

    @contextmanager
    def _existing(self) -> Iterator[sqlite3.Connection]:
        if not self.db.file_exists():
            raise self._missing()
        try:
            with self.db.transaction() as conn:
                row = conn.execute("SELECT 1 FROM queues WHERE name = ?", (self.name,)).fetchone()
                if row is None:
                    raise self._missing()
                yield conn
        except sqlite3.Error as exc:
            raise ProviderError(f"queue {self.name!r} in {self.path}: {exc}") from exc

    def create(self) -> None:
        """Create the queue if missing (idempotent)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO queues (name, created_at) VALUES (?, ?)",
                (self.name, self._clock.now()),
            )

    def exists(self) -> bool:
        if not self.db.file_exists():
            return False
        with self.db.transaction() as conn:
            row = conn.execute("SELECT 1 FROM queues WHERE name = ?", (self.name,)).fetchone()
            return row is not None

    def delete(self) -> None:
        """Delete the queue, its messages and its load record (idempotent); the file goes
        with the last queue in it."""
        if not self.db.file_exists():
            return
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM messages WHERE queue = ?", (self.name,))
            conn.execute("DELETE FROM loaded WHERE queue = ?", (self.name,))
            conn.execute("DELETE FROM queues WHERE name = ?", (self.name,))
        self.db.remove_if_unused()

    def depth(self) -> int:
        """Messages not yet acknowledged: visible plus leased (exact)."""
        with self._existing() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ?", (self.name,)
            ).fetchone()
            return int(row[0])

    def purge(self) -> None:
        """Remove every message."""
        with self._existing() as conn:
            conn.execute("DELETE FROM messages WHERE queue = ?", (self.name,))

    def _insert(self, bodies: Sequence[str]) -> None:
        now = self._clock.now()
        with self._existing() as conn:
            conn.executemany(
                "INSERT INTO messages (queue, body, visible_at) VALUES (?, ?, ?)",
                [(self.name, body, now) for body in bodies],
            )

    def _lease(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float
    ) -> list[tuple[int, str, int, str]]:
        """(id, body, delivery_count, receipt) of up to ``max_messages`` leased messages."""
        deadline = time.monotonic() + max(0.0, wait_s)
        pause = _POLL_S[0]
        while True:
            with self._existing() as conn:
                now = self._clock.now()
                rows = conn.execute(
                    "SELECT id, body, delivery_count FROM messages "
                    "WHERE queue = ? AND visible_at <= ? ORDER BY id LIMIT ?",
                    (self.name, now, max(0, max_messages)),
                ).fetchall()
                leased: list[tuple[int, str, int, str]] = []
                if rows:
                    # One lease token per receive: a receipt is the message id and the token,
                    # so it still names one delivery of one message; one statement per batch.
                    token = secrets.token_hex(8)
                    visible_at = now + max(0.0, visibility_timeout_s)
                    for start in range(0, len(rows), _IDS_PER_STATEMENT):
                        ids = [row[0] for row in rows[start : start + _IDS_PER_STATEMENT]]
                        conn.execute(
                            "UPDATE messages SET visible_at = ?, "
                            "delivery_count = delivery_count + 1, lease = ? "
                            f"WHERE id IN ({','.join('?' * len(ids))})",
                            (visible_at, token, *ids),
                        )
                    leased = [
                        (message_id, body, count + 1, f"{message_id}:{token}")
                        for message_id, body, count in rows
                    ]
            if leased or max_messages <= 0:
                return leased
            if not self.db.wait and wait_s > 0:
                raise QueueBusyError(f"queue {self.name!r}: nothing to receive yet")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, _POLL_S[1])

    def _parse(self, receipt: str) -> tuple[int, str]:
        message_id, _, token = receipt.partition(":")
        try:
            return int(message_id), token
        except ValueError as exc:
            raise ProviderError(f"queue {self.name!r}: malformed receipt {receipt!r}") from exc

    def _ack(self, receipts: Iterable[str]) -> None:
        # Any receipt of a message deletes it: whoever holds one has processed it.
        ids = [(self.name, self._parse(receipt)[0]) for receipt in receipts]
        with self._existing() as conn:
            conn.executemany("DELETE FROM messages WHERE queue = ? AND id = ?", ids)


class SqliteTaskQueue(_SqliteQueueBase):
    """A ``TaskQueue`` in a SQLite file, shared by any number of local processes.

    ``extend`` and ``release`` act only with the message's current receipt; with an older one
    (the lease expired and someone else received the message) they do nothing, and ``extend``
    says ``LOST``, or ``GONE`` once the message was deleted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | SqliteDatabase,
        name: str,
        *,
        clock: Clock | None = None,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(path, name, clock)
        self.max_message_bytes = max_message_bytes
        self._view: SqliteTaskQueue | None = None

    def without_waiting(self) -> SqliteTaskQueue:
        """This queue through a connection that never waits (see the module docstring)."""
        if not self.db.wait:
            return self
        if self._view is None:
            self._view = SqliteTaskQueue(
                self.db.without_waiting(),
                self.name,
                clock=self._clock,
                max_message_bytes=self.max_message_bytes,
            )
        return self._view

    def _bodies(self, envelopes: Sequence[Envelope]) -> list[str]:
        return encode_envelopes(self.name, envelopes, self.max_message_bytes)

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Store every envelope in one transaction (all or nothing)."""
        self._insert(self._bodies(envelopes))

    #: The ``loaded`` table records every task id ``send_once`` stored.
    remembers_loads = True

    def address(self) -> str:
        """The SQLite file and the queue name."""
        return f"local||{self.path.resolve()}|{self.name}"

    def send_once(self, envelopes: Sequence[Envelope]) -> int:
        """Send only tasks never loaded into this queue before; returns how many were sent.

        The load record and the messages are written in one transaction, so a load that is
        interrupted at any point and run again sends every task exactly once.
        """
        bodies = self._bodies(envelopes)
        now = self._clock.now()
        sent = 0
        with self._existing() as conn:
            for envelope, body in zip(envelopes, bodies, strict=True):
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO loaded (queue, task_id) VALUES (?, ?)",
                    (self.name, envelope.task.task_id),
                )
                if cursor.rowcount:
                    conn.execute(
                        "INSERT INTO messages (queue, body, visible_at) VALUES (?, ?, ?)",
                        (self.name, body, now),
                    )
                    sent += 1
        return sent

    def loaded_task_ids(self) -> set[str]:
        """Ids of every task ``send_once`` has stored since the queue was created or purged."""
        with self._existing() as conn:
            rows = conn.execute("SELECT task_id FROM loaded WHERE queue = ?", (self.name,))
            return {str(row[0]) for row in rows}

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        """Lease up to ``max_messages`` in the order they were sent."""
        return [
            ReceivedTask(Envelope.decode(body), receipt, count)
            for _id, body, count, receipt in self._lease(max_messages, visibility_timeout_s, wait_s)
        ]

    def extend(self, receipt: str, visibility_timeout_s: float) -> Lease:
        message_id, token = self._parse(receipt)
        with self._existing() as conn:
            cursor = conn.execute(
                "UPDATE messages SET visible_at = ? WHERE queue = ? AND id = ? AND lease = ?",
                (self._clock.now() + max(0.0, visibility_timeout_s), self.name, message_id, token),
            )
            if cursor.rowcount:
                return Lease.HELD
            # Ids are never reused (AUTOINCREMENT): a missing row was deleted.
            row = conn.execute(
                "SELECT 1 FROM messages WHERE queue = ? AND id = ?", (self.name, message_id)
            ).fetchone()
        return Lease.LOST if row is not None else Lease.GONE

    def ack(self, receipt: str) -> None:
        self._ack([receipt])

    def release(self, receipt: str) -> None:
        message_id, token = self._parse(receipt)
        with self._existing() as conn:
            conn.execute(
                "UPDATE messages SET visible_at = ?, lease = NULL "
                "WHERE queue = ? AND id = ? AND lease = ?",
                (self._clock.now(), self.name, message_id, token),
            )

    def requeue(self, message: ReceivedTask) -> None:
        """Send the task again with one more failure and ack this delivery, atomically."""
        envelope = attrs.evolve(message.envelope, failures=message.envelope.failures + 1)
        (body,) = self._bodies([envelope])
        message_id, _ = self._parse(message.receipt)
        with self._existing() as conn:
            conn.execute(
                "INSERT INTO messages (queue, body, visible_at) VALUES (?, ?, ?)",
                (self.name, body, self._clock.now()),
            )
            conn.execute("DELETE FROM messages WHERE queue = ? AND id = ?", (self.name, message_id))

    def purge(self) -> None:
        """Remove every message and forget which tasks were loaded."""
        with self._existing() as conn:
            conn.execute("DELETE FROM messages WHERE queue = ?", (self.name,))
            conn.execute("DELETE FROM loaded WHERE queue = ?", (self.name,))


class SqliteEventQueue(_SqliteQueueBase):
    """An ``EventQueue`` in a SQLite file; received events reappear unless acknowledged."""

    def __init__(
        self,
        path: str | os.PathLike[str] | SqliteDatabase,
        name: str,
        *,
        clock: Clock | None = None,
        visibility_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(path, name, clock)
        self.visibility_timeout_s = visibility_timeout_s
        self._view: SqliteEventQueue | None = None

    def without_waiting(self) -> SqliteEventQueue:
        """This queue through a connection that never waits (see the module docstring)."""
        if not self.db.wait:
            return self
        if self._view is None:
            self._view = SqliteEventQueue(
                self.db.without_waiting(),
                self.name,
                clock=self._clock,
                visibility_timeout_s=self.visibility_timeout_s,
            )
        return self._view

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Store every event (each a JSON object) in one transaction."""
        self._insert(encode_events(self.name, events))

    def receive(self, max_messages: int, wait_s: float = 0.0) -> list[ReceivedEvent]:
        return [
            ReceivedEvent(json.loads(body), receipt)
            for _id, body, _count, receipt in self._lease(
                max_messages, self.visibility_timeout_s, wait_s
            )
        ]

    def ack(self, receipts: Iterable[str]) -> None:
        self._ack(receipts)


def default_state_dir() -> Path:
    """Where Cloud Tasks keeps local state: ``RMS_CLOUD_TASKS_STATE_DIR`` if set, else
    the per-user state folder (platformdirs): ``$XDG_STATE_HOME/cloud_tasks`` or
    ``~/.local/state/cloud_tasks`` on Linux."""
    explicit = os.environ.get("RMS_CLOUD_TASKS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_state_dir("cloud_tasks", appauthor=False))


def queue_file(queue_name: str, directory: str | os.PathLike[str]) -> Path:
    """The SQLite file holding ``queue_name`` and its event queue, in the job's ``directory``
    (see ``bootstrap.local_queue_dir``)."""
    return Path(directory) / f"{queue_name}.sqlite3"


class LoadJournal:
    """The ids of tasks loaded into a cloud queue, kept in a local SQLite file.

    ``load_queue`` records each batch after the queue accepted it and skips recorded ids on
    a re-run, so a load interrupted and run again sends each task once, except for the
    batches in flight at the moment of the interruption. ``key`` names the queue (provider,
    endpoint, location, name); purging or deleting the queue through the CLI clears it.
    """

    def __init__(self, path: str | os.PathLike[str] | SqliteDatabase, key: str) -> None:
        self.db = path if isinstance(path, SqliteDatabase) else SqliteDatabase(path)
        self.key = key

    @property
    def path(self) -> Path:
        return self.db.path

    def known(self, task_ids: Sequence[str]) -> set[str]:
        """Which of ``task_ids`` were recorded."""
        found: set[str] = set()
        if not task_ids or not self.db.file_exists():
            return found
        with self.db.transaction() as conn:
            for start in range(0, len(task_ids), 500):
                chunk = list(task_ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT task_id FROM loaded WHERE queue = ? AND task_id IN ({marks})",
                    [self.key, *chunk],
                )
                found.update(str(row[0]) for row in rows)
        return found

    def record(self, task_ids: Iterable[str]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO loaded (queue, task_id) VALUES (?, ?)",
                [(self.key, task_id) for task_id in task_ids],
            )

    def count(self) -> int:
        if not self.db.file_exists():
            return 0
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM loaded WHERE queue = ?", (self.key,)
            ).fetchone()
            return int(row[0])

    def clear(self) -> None:
        if not self.db.file_exists():
            return
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM loaded WHERE queue = ?", (self.key,))


__all__ = [
    "LoadJournal",
    "SqliteDatabase",
    "SqliteEventQueue",
    "SqliteTaskQueue",
    "default_state_dir",
    "queue_file",
]
