"""A job's task database, read-only: what ``dashboard`` and ``results`` read (SPEC §11).

Readers open the SQLite file with ``mode=ro``: they can never change a job's records, and they
may run beside the manager (the database is in WAL mode, so reading never blocks its writes).
Every query the dashboard makes is bounded (grouped in SQL, or limited to the newest rows), so
a database of millions of tasks answers in well under a second; ``result_rows`` streams.
SQLite's failures become one ``CloudTasksError`` line naming the file.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar
from urllib.parse import quote

from cloud_tasks.adapters.local.pool_records import PoolDecisionRow
from cloud_tasks.domain.events import KEEP_ALIVE
from cloud_tasks.domain.taskstate import COMPLETED, FAILED, InstanceRecord
from cloud_tasks.exceptions import CloudTasksError

#: Rows fetched from SQLite at once by ``result_rows``.
_FETCH = 10_000


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


class FinishedBin(NamedTuple):
    """Tasks of one state that finished in one time bin, and their elapsed times."""

    slot: int
    state: str
    tasks: int
    shortest_s: float | None
    longest_s: float | None
    timed: int


class KeepAliveListing(NamedTuple):
    """The tasks one keep-alive of an instance listed as running."""

    instance_id: str
    received_at: float
    task_ids: list[Any]


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reads(
    method: Callable[Concatenate[TaskDatabaseView, _P], _R],
) -> Callable[Concatenate[TaskDatabaseView, _P], _R]:
    """A read that SQLite fails (a file replaced or damaged meanwhile) becomes one
    ``CloudTasksError`` line instead of a traceback."""

    @functools.wraps(method)
    def read(self: TaskDatabaseView, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    return read


class TaskDatabaseView:
    """The task database at ``path``, opened read-only (see the module doc).

    Raises:
        CloudTasksError: no database there, or the file is not a task database.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = connect_read_only(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TaskDatabaseView:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _failed(self, exc: sqlite3.Error) -> CloudTasksError:
        return CloudTasksError(f"{self.path}: cannot read the task database: {exc}")

    def _has_table(self, name: str) -> bool:
        """Whether the database has table ``name`` (tables added later are missing in old
        files)."""
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    @_reads
    def data_version(self) -> int:
        """A number that changes when another connection (the manager) committed."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    @_reads
    def meta(self, keys: Sequence[str]) -> dict[str, Any]:
        """The job's metadata values of ``keys`` that are recorded (and readable)."""
        marks = ",".join("?" * len(keys))
        meta: dict[str, Any] = {}
        for key, value in self._db.execute(
            f"SELECT key, value FROM meta WHERE key IN ({marks})", list(keys)
        ):
            try:
                meta[key] = json.loads(value)
            except ValueError:
                continue
        return meta

    # -- tasks ----------------------------------------------------------------------------

    @_reads
    def state_counts(self) -> dict[str, int]:
        """How many tasks are in each state recorded."""
        rows = self._db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {state: int(count) for state, count in rows}

    @_reads
    def first_created_at(self) -> float | None:
        """When the first task was recorded (a scan of every task)."""
        value = self._db.execute("SELECT MIN(created_at) FROM tasks").fetchone()[0]
        return None if value is None else float(value)

    @_reads
    def last_finished_at(self) -> float | None:
        """When the last task finished (a scan of every task)."""
        value = self._db.execute("SELECT MAX(finished_at) FROM tasks").fetchone()[0]
        return None if value is None else float(value)

    @_reads
    def finished_per_bin(self, t0: float, width: float) -> list[FinishedBin]:
        """Completed and failed tasks per time bin of ``width`` seconds from ``t0`` (bins may
        lie outside the range asked for), with the completed ones' elapsed times."""
        return [
            FinishedBin(int(index), state, int(n), shortest, longest, int(timed))
            for index, state, n, shortest, longest, timed in self._db.execute(
                "SELECT CAST((finished_at - ?) / ? AS INTEGER), state, COUNT(*), MIN(elapsed_s), "
                "MAX(elapsed_s), COUNT(elapsed_s) FROM tasks "
                "WHERE finished_at IS NOT NULL AND state IN (?, ?) GROUP BY 1, 2",
                (t0, width, COMPLETED, FAILED),
            )
        ]

    @_reads
    def elapsed_per_bin(self, low: float, width: float) -> list[tuple[int, int]]:
        """``(bin, tasks)`` of the completed tasks' elapsed times, in bins of ``width`` seconds
        from ``low``."""
        return [
            (int(index), int(n))
            for index, n in self._db.execute(
                "SELECT CAST((elapsed_s - ?) / ? AS INTEGER), COUNT(*) FROM tasks "
                "WHERE state = ? AND elapsed_s IS NOT NULL GROUP BY 1",
                (low, width, COMPLETED),
            )
        ]

    @_reads
    def finished_among(self, task_ids: Sequence[str]) -> set[str]:
        """Which of ``task_ids`` (at most 500) have completed or failed."""
        marks = ",".join("?" * len(task_ids))
        return {
            task_id
            for (task_id,) in self._db.execute(
                f"SELECT task_id FROM tasks WHERE task_id IN ({marks}) AND state IN (?, ?)",
                [*task_ids, COMPLETED, FAILED],
            )
        }

    @_reads
    def top_errors(self, limit: int) -> list[tuple[str | None, int]]:
        """The ``limit`` most frequent errors of failed tasks, with how many failed so."""
        return [
            (error, int(count))
            for error, count in self._db.execute(
                "SELECT error, COUNT(*) FROM tasks WHERE state = ? GROUP BY error "
                "ORDER BY COUNT(*) DESC, error LIMIT ?",
                (FAILED, limit),
            )
        ]

    @_reads
    def failed_task_ids(self, error: str | None, limit: int) -> list[str]:
        """The first ``limit`` failed tasks (in load order) whose error is ``error``."""
        return [
            task_id
            for (task_id,) in self._db.execute(
                "SELECT task_id FROM tasks WHERE state = ? AND error IS ? ORDER BY seq LIMIT ?",
                (FAILED, error, limit),
            )
        ]

    def result_rows(self, states: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(task_id, state, attempts, result, error, elapsed_s, instance_id)`` of every task
        (only those in ``states`` when given), in load order, streamed; ``result`` is the JSON
        text of the task's result."""
        query = "SELECT task_id, state, attempts, result, error, elapsed_s, instance_id FROM tasks"
        wanted = sorted(set(states))
        if wanted:
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
        try:
            cursor = self._db.execute(query + " ORDER BY seq", wanted)
            while batch := cursor.fetchmany(_FETCH):
                yield from batch
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    # -- events ---------------------------------------------------------------------------

    @_reads
    def keep_alive_listings(
        self, instance_ids: Collection[str], scan: int
    ) -> list[KeepAliveListing]:
        """The running tasks listed by the keep-alives of ``instance_ids`` among the newest
        ``scan`` events, newest first."""
        listings = []
        for instance_id, received_at, body in self._db.execute(
            "SELECT instance_id, received_at, body FROM events WHERE event_type = ? "
            "AND id > (SELECT COALESCE(MAX(id), 0) FROM events) - ? ORDER BY id DESC",
            (KEEP_ALIVE, scan),
        ):
            if instance_id not in instance_ids:
                continue
            try:
                event = json.loads(body)
            except ValueError:
                continue
            ids = event.get("running_task_ids") if isinstance(event, dict) else None
            if isinstance(ids, list):
                listings.append(KeepAliveListing(instance_id, float(received_at), ids))
        return listings

    @_reads
    def latest_event_other_than(self, task_id: str, event_type: str) -> dict[str, Any] | None:
        """The newest event of ``task_id`` that is not an ``event_type`` one (None when there
        is none, or it is not readable)."""
        row = self._db.execute(
            "SELECT body FROM events WHERE task_id = ? AND event_type != ? ORDER BY id DESC "
            "LIMIT 1",
            (task_id, event_type),
        ).fetchone()
        if row is None:
            return None
        try:
            event = json.loads(row[0])
        except ValueError:
            return None
        return event if isinstance(event, dict) else None

    # -- instances and the manager's records ----------------------------------------------

    @_reads
    def instances(self) -> list[InstanceRecord]:
        """Every instance the manager started, in launch order."""
        return [
            InstanceRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:])
            for r in self._db.execute(
                "SELECT instance_id, name, instance_type, zone, is_spot, price_per_hour_usd, "
                "launched_at, ended_at, end_reason, first_seen_alive, last_seen_alive, "
                "last_task_event, running_tasks FROM instances ORDER BY launched_at"
            )
        ]

    @_reads
    def pool_decisions(self, newest: int) -> list[PoolDecisionRow]:
        """The ``newest`` scaling decisions, newest first (none in a database from before they
        were recorded)."""
        if not self._has_table("pool_decisions"):
            return []
        rows = self._db.execute(
            "SELECT at, instance_type, running, target, starting, stopping, remaining_tasks, "
            "spent_usd, projected_usd, limited_by, max_total_cost_usd, reasons "
            "FROM pool_decisions ORDER BY id DESC LIMIT ?",
            (newest,),
        ).fetchall()
        decisions = []
        for row in rows:
            try:
                reasons = json.loads(row[11])
            except ValueError:
                reasons = []
            at, kind, running, target, starting, stopping, remaining = row[:7]
            spent, projected, limited_by, cap = row[7:11]
            decisions.append(
                PoolDecisionRow(
                    at,
                    kind,
                    running,
                    target,
                    starting,
                    stopping,
                    remaining,
                    spent,
                    projected,
                    limited_by,
                    cap,
                    reasons,
                )
            )
        return decisions

    @_reads
    def manager_log(self, newest: int) -> list[tuple[float, str]]:
        """``(at, message)`` of the ``newest`` lines the manager logged, newest first."""
        if not self._has_table("manager_log"):
            return []
        return [
            (at, message)
            for at, message in self._db.execute(
                "SELECT at, message FROM manager_log ORDER BY id DESC LIMIT ?", (newest,)
            )
        ]

    @_reads
    def notifications(self) -> list[tuple[str, float]]:
        """``(kind, fired_at)`` of every notification fired, oldest first."""
        if not self._has_table("notifications"):
            return []
        return [
            (kind, fired_at)
            for kind, fired_at in self._db.execute(
                "SELECT kind, fired_at FROM notifications ORDER BY fired_at"
            )
        ]


__all__ = [
    "FinishedBin",
    "KeepAliveListing",
    "TaskDatabaseView",
    "connect_read_only",
]
