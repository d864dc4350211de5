"""The pool manager's records for the dashboard, kept in a job's task database (SQLite).

Three tables are added to the task database (created when missing, so a database written by an
earlier version keeps working; nothing existing is changed):

- ``pool_decisions``: one row per scaling check: the pool's size, target and spend, and the
  reasons it is not larger (price cap, cost cap, capacity errors, quota, remaining work);
- ``manager_log``: every line the manager logged (instances started, lost, replaced, stopped);
- ``notifications``: which notifications a job has fired (each at most once per job, also
  across ``run --continue``).

``SqlitePoolRecords`` writes them; ``taskdb_views.TaskDatabaseView`` reads them back.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS pool_decisions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    instance_type TEXT,
    running INTEGER NOT NULL,
    target INTEGER NOT NULL,
    starting INTEGER NOT NULL,
    stopping INTEGER NOT NULL,
    remaining_tasks INTEGER NOT NULL,
    spent_usd REAL NOT NULL,
    projected_usd REAL NOT NULL,
    limited_by TEXT,
    max_total_cost_usd REAL,
    reasons TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS manager_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    kind TEXT PRIMARY KEY,
    fired_at REAL NOT NULL,
    body TEXT NOT NULL
);
"""

#: Manager log lines kept (the oldest are dropped beyond this).
MAX_LOG_LINES = 5000


class PoolDecisionRow(NamedTuple):
    """One scaling decision as recorded; ``reasons`` are ``{"kind", "text"}`` objects."""

    at: float
    instance_type: str | None
    running: int
    target: int
    starting: int
    stopping: int
    remaining_tasks: int
    spent_usd: float
    projected_usd: float
    limited_by: str | None
    max_total_cost_usd: float | None
    reasons: list[dict[str, Any]]


class SqlitePoolRecords:
    """Writes the dashboard's tables into the task database at ``path`` (see the module doc).

    Thread-safe: the manager and the threads that launch instances share it.
    """

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(Path(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=10000")
        # The task database is in WAL mode: a commit need not wait for the disk (as taskdb).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._log_rows = 0

    def close(self) -> None:
        self._db.close()

    # The dashboard's history is kept when it can be: a task database that another program
    # holds locked (or a full disk) skips a row rather than stopping the manager, which waits
    # for the database itself (PoolManager).

    def add_decision(self, row: PoolDecisionRow) -> None:
        """Record one scaling decision (skipped when SQLite refuses the write)."""
        with self._lock, contextlib.suppress(sqlite3.OperationalError):
            self._db.execute(
                "INSERT INTO pool_decisions (at, instance_type, running, target, starting, "
                "stopping, remaining_tasks, spent_usd, projected_usd, limited_by, "
                "max_total_cost_usd, reasons) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*row[:-1], json.dumps(row.reasons)),
            )

    def add_log_line(self, at: float, message: str) -> None:
        """Keep one line of the manager's log, and only the newest ``MAX_LOG_LINES`` (skipped
        when SQLite refuses the write)."""
        with self._lock, contextlib.suppress(sqlite3.OperationalError):  # as above
            self._db.execute("INSERT INTO manager_log (at, message) VALUES (?, ?)", (at, message))
            self._log_rows += 1
            if self._log_rows > MAX_LOG_LINES:
                self._db.execute(
                    "DELETE FROM manager_log WHERE id <= (SELECT MAX(id) FROM manager_log) - ?",
                    (MAX_LOG_LINES,),
                )
                self._log_rows = MAX_LOG_LINES

    def fired_notifications(self) -> set[str]:
        """The notification kinds recorded as fired."""
        with self._lock:
            return {kind for (kind,) in self._db.execute("SELECT kind FROM notifications")}

    def mark_fired(self, kind: str, at: float, body: dict[str, Any]) -> bool:
        """Record notification ``kind`` as fired at ``at``; False when it had been already."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO notifications (kind, fired_at, body) VALUES (?, ?, ?)",
                (kind, at, json.dumps(body)),
            )
            return cursor.rowcount > 0


__all__ = ["MAX_LOG_LINES", "SCHEMA", "PoolDecisionRow", "SqlitePoolRecords"]
