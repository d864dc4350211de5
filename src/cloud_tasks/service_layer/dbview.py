"""Read-only access to a job's task database, for ``dashboard`` and ``results``.

Readers open the SQLite file with ``mode=ro``: they can never change a job's records, and they
may run beside the manager (the database is in WAL mode, so reading never blocks its writes).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from cloud_tasks.exceptions import CloudTasksError


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the task database at ``path``.

    Raises:
        CloudTasksError: no database there, or the file is not a task database.
    """
    file = Path(path)
    if not file.is_file():
        raise CloudTasksError(
            f"{path}: no task database here; run 'cloud_tasks run' first or pass --db-file"
        )
    uri = f"file:{quote(str(file.resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=10000")
        connection.execute("SELECT seq FROM tasks LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise CloudTasksError(
            f"{path}: cannot read the task database: {exc}; is it a cloud_tasks task database?"
        ) from exc
    return connection


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    """Whether the database has table ``name`` (tables added later are missing in old files)."""
    row = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


__all__ = ["connect_read_only", "has_table"]
