"""The task database (SPEC §13): one SQLite file per job with every task and every event.

One row per task (id, data, state, attempts, last event, result, error, timestamps, instance),
every event the workers sent (deduplicated: the event queue delivers at least once), and every
instance the manager started with its launch-time price, so spend can be computed after a
restart. The manager is the only writer; ``status`` reads it from another process.

State rules: ``pending`` → ``running`` → ``completed`` | ``failed``. A task whose outcome asked for
a retry goes back to ``pending`` (not terminal). ``completed`` is final: a second completion of
the same task (a duplicate delivery) is recorded in the event table and counted in
``duplicate_completions``, never counted twice. ``failed`` may still become ``completed`` when a
late delivery of the same task succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import CloudTasksError

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
STATES: tuple[str, ...] = (PENDING, RUNNING, COMPLETED, FAILED)
TERMINAL_STATES: frozenset[str] = frozenset({COMPLETED, FAILED})

_OUTCOME_EVENTS = frozenset(
    {"task_completed", "task_exception", "task_exited", "task_timed_out", "task_dead_lettered"}
)
_INSERT_CHUNK = 5000
#: ``task_released`` reasons that count as a preemption of the task.
PREEMPTION_REASONS = frozenset({"preempted", "spot_termination", "spot termination"})

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
class TaskCounts:
    """Tasks by state; ``total`` is their sum."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running + self.completed + self.failed

    @property
    def terminal(self) -> int:
        return self.completed + self.failed

    def with_reported_running(self, reported: int) -> TaskCounts:
        """These counts with up to ``reported`` pending tasks counted as running instead.

        Workers report how many tasks they run in each keep-alive, not which; never more
        than the pending tasks move.
        """
        running = min(self.pending, reported)
        if running <= 0:
            return self
        return attrs.evolve(self, pending=self.pending - running, running=self.running + running)

    @property
    def remaining(self) -> int:
        return self.pending + self.running


@attrs.frozen
class IngestResult:
    """What one batch of events changed: ``alive`` maps instance id to when it was last heard."""

    new_events: int = 0
    duplicate_events: int = 0
    transitions: int = 0
    alive: Mapping[str, float] = attrs.field(factory=dict)
    worked: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen
class InstanceRecord:
    """An instance as recorded by the manager: enough to compute spend after a restart."""

    instance_id: str
    name: str
    instance_type: str
    zone: str
    is_spot: bool
    price_per_hour_usd: float
    launched_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    first_seen_alive: float | None = None
    last_seen_alive: float | None = None
    last_task_event: float | None = None
    running_tasks: int = 0

    def cost_usd(self, now: float) -> float:
        end = self.ended_at if self.ended_at is not None else now
        return self.price_per_hour_usd * max(0.0, end - self.launched_at) / 3600.0


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


def error_text(event: Mapping[str, Any]) -> str | None:
    """The error a failed outcome event reports, in one line (``None`` for a success)."""
    return _error_text(event)


def _error_text(event: Mapping[str, Any]) -> str | None:
    kind = event.get("event_type")
    if kind == "task_exception":
        text = str(event.get("exception") or "exception")
        return text.strip().splitlines()[-1] if text.strip() else "exception"
    if kind == "task_exited":
        return f"process exited with code {event.get('exit_code')}"
    if kind == "task_timed_out":
        return "timed out (max_runtime exceeded)"
    if kind == "task_dead_lettered":
        return f"dead-lettered: {event.get('reason') or 'max_attempts reached'}"
    if kind == "task_completed" and not event.get("success", True):
        return "process_task returned False (retry requested)"
    return None


class TaskDatabase:
    """The SQLite task database of one job. Not thread-safe: use it from one thread."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating when missing) the database at ``path``; ``":memory:"`` keeps it in
        memory (simulations)."""
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        try:
            if not in_memory:
                # Only a file created here is opened and closed: closing a descriptor of a
                # database open in this process drops its SQLite locks (sqlite.org/howtocorrupt).
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
                os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(":memory:" if in_memory else self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CloudTasksError(
                f"{self.path}: cannot open the task database: {exc}; check the path of db_file"
            ) from exc
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

    @classmethod
    def open_existing(cls, path: str | Path) -> TaskDatabase:
        """Open a database that must already exist (``status``, ``--continue``)."""
        if not Path(path).is_file():
            raise CloudTasksError(
                f"{path}: no task database here; run 'cloud_tasks run' first or pass --db-file"
            )
        return cls(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TaskDatabase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------

    def set_meta(self, **values: Any) -> None:
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

    def add_tasks(self, tasks: Iterable[Task], now: float) -> int:
        """Record tasks as pending; tasks already recorded are left as they are.

        Returns the number of new rows.
        """
        added = 0
        chunk: list[tuple[str, str, str, float]] = []

        def flush() -> int:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO tasks (task_id, data, state, created_at) VALUES (?,?,?,?)",
                chunk,
            )
            self._db.execute("COMMIT")
            return self._db.total_changes - before

        for task in tasks:
            chunk.append((task.task_id, json.dumps(task.data), PENDING, now))
            if len(chunk) >= _INSERT_CHUNK:
                added += flush()
                chunk.clear()
        if chunk:
            added += flush()
        self._counts[PENDING] += added
        return added

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

    def mark_resent(self, task_ids: Iterable[str]) -> None:
        """Count one more re-send of each task (its outcome was lost; it runs again)."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "UPDATE tasks SET resent = resent + 1 WHERE task_id = ?", [(t,) for t in task_ids]
        )
        self._db.execute("COMMIT")

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

    def ingest(self, events: Sequence[Mapping[str, Any]], now: float) -> IngestResult:
        """Record a batch of worker events and apply them to the task rows, atomically."""
        new = duplicates = transitions = 0
        alive: dict[str, float] = {}
        worked: dict[str, float] = {}
        busy: dict[str, int] = {}
        db = self._db
        db.execute("BEGIN")
        try:
            for event in events:
                body = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
                digest = hashlib.blake2b(body.encode(), digest_size=16).hexdigest()
                kind = str(event.get("event_type", ""))
                task_id = event.get("task_id")
                instance_id = event.get("instance_id")
                cursor = db.execute(
                    "INSERT OR IGNORE INTO events (digest, received_at, timestamp, event_type, "
                    "task_id, instance_id, body) VALUES (?,?,?,?,?,?,?)",
                    (
                        digest,
                        now,
                        event.get("timestamp"),
                        kind,
                        None if task_id is None else str(task_id),
                        None if instance_id is None else str(instance_id),
                        body,
                    ),
                )
                if cursor.rowcount == 0:
                    duplicates += 1
                    continue
                new += 1
                if instance_id is not None:
                    alive[str(instance_id)] = now
                    running = event.get("running_tasks")
                    if kind == "keep_alive" and isinstance(running, int):
                        busy[str(instance_id)] = running
                if task_id is None:
                    continue
                if instance_id is not None:
                    worked[str(instance_id)] = now
                if self._apply(str(task_id), kind, event, now):
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
        return IngestResult(new, duplicates, transitions, alive, worked)

    def _apply(self, task_id: str, kind: str, event: Mapping[str, Any], now: float) -> bool:
        """Apply one new event to its task row; True when the state changed."""
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
        instance_id = event.get("instance_id")
        attempt = event.get("attempt")
        attempts = max(attempts, attempt if isinstance(attempt, int) else 0)

        if kind == "task_started":
            if state in TERMINAL_STATES:
                return False
            new_state = RUNNING
            attempts = max(attempts, 1)
            db.execute(
                "UPDATE tasks SET state = ?, attempts = ?, last_event = ?, started_at = ?, "
                "instance_id = ? WHERE task_id = ?",
                (new_state, attempts, kind, now, instance_id, task_id),
            )
            return self._move(state, new_state)
        if kind not in _OUTCOME_EVENTS:
            db.execute("UPDATE tasks SET last_event = ? WHERE task_id = ?", (kind, task_id))
            if (
                kind == "task_released"
                and state not in TERMINAL_STATES
                and str(event.get("reason", "preempted")) in PREEMPTION_REASONS
            ):
                self._preempted[task_id] = self._preempted.get(task_id, 0) + 1
            return False
        self._preempted.pop(task_id, None)

        success = kind == "task_completed" and bool(event.get("success"))
        elapsed = event.get("elapsed_time")
        elapsed_s = float(elapsed) if isinstance(elapsed, int | float) else None
        if state == COMPLETED:
            if success:
                db.execute(
                    "UPDATE tasks SET duplicate_completions = duplicate_completions + 1 "
                    "WHERE task_id = ?",
                    (task_id,),
                )
            return False
        if success:
            result = json.dumps(event.get("result", {}), default=str)
            db.execute(
                "UPDATE tasks SET state = ?, attempts = ?, last_event = ?, result = ?, "
                "finished_at = ?, elapsed_s = ?, instance_id = ? WHERE task_id = ?",
                (COMPLETED, max(attempts, 1), kind, result, now, elapsed_s, instance_id, task_id),
            )
            return self._move(state, COMPLETED)
        new_error = _error_text(event)
        if kind == "task_dead_lettered" and error and error not in (new_error or ""):
            new_error = f"{new_error}; last error: {error}"
        if state == FAILED:
            if kind == "task_dead_lettered":
                # The attempt's outcome (retry false) came first: say that it was given up.
                db.execute(
                    "UPDATE tasks SET error = ?, last_event = ? WHERE task_id = ?",
                    (new_error, kind, task_id),
                )
            return False
        retry = kind != "task_dead_lettered" and event.get("retry") is True
        new_state = PENDING if retry else FAILED
        db.execute(
            "UPDATE tasks SET state = ?, attempts = ?, last_event = ?, error = ?, "
            "finished_at = ?, elapsed_s = COALESCE(?, elapsed_s), instance_id = ? "
            "WHERE task_id = ?",
            (
                new_state,
                max(attempts, 1),
                kind,
                new_error,
                None if retry else now,
                elapsed_s,
                instance_id,
                task_id,
            ),
        )
        return self._move(state, new_state)

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
        """The state of each of ``task_ids`` the database knows (at most 500 ids per call)."""
        if not task_ids:
            return {}
        marks = ",".join("?" * len(task_ids))
        rows = self._db.execute(
            f"SELECT task_id, state FROM tasks WHERE task_id IN ({marks})", list(task_ids)
        )
        return dict(rows.fetchall())

    def events_after(self, event_id: int, limit: int = 1000) -> list[tuple[int, str, str]]:
        """``(id, event_type, body)`` of up to ``limit`` events recorded after ``event_id``, in
        arrival order; ``body`` is the event as stored (one line of JSON)."""
        return self._db.execute(
            "SELECT id, event_type, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (event_id, limit),
        ).fetchall()


__all__ = [
    "COMPLETED",
    "FAILED",
    "PENDING",
    "PREEMPTION_REASONS",
    "RUNNING",
    "STATES",
    "TERMINAL_STATES",
    "IngestResult",
    "InstanceRecord",
    "TaskCounts",
    "TaskDatabase",
    "TaskRow",
    "error_text",
]
