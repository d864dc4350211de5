"""The task database's integrity: it is recognised before anything is written, it records a
task file all or nothing, and forged or malformed events change nothing in it.

The same event rule (``cloud_tasks.domain.events.event_problem``) guards the SQLite
``TaskDatabase`` and the ``InMemoryTaskStore``; every case here runs against both.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_tasks.adapters.local.taskdb import APPLICATION_ID, TaskDatabase, identify
from cloud_tasks.adapters.memory.taskstore import InMemoryTaskStore
from cloud_tasks.domain.events import EVENT_CLASSES, encode, event_problem
from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import CloudTasksError
from tests.domain.event_strategies import events_of

TASKS = [Task(f"t{i}", {"i": i}) for i in range(3)]


def _fingerprint(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with a hash of its bytes (folders as 'dir')."""
    found = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        found[name] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _foreign_sqlite(path: Path) -> None:
    # closing(): a connection's own 'with' commits but does not close, and the -wal and -shm
    # files would then vanish whenever the garbage collector closes it.
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    # Closed cleanly: no -wal or -shm beside it, so any that appear were made by us.
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


FOREIGN: dict[str, Callable[[Path], None]] = {
    "empty file": lambda p: p.write_bytes(b""),
    "task file": lambda p: p.write_text('[{"task_id": "a", "data": {}}]\n'),
    "config": lambda p: p.write_text("provider: local\nlocal:\n  job_id: j\n"),
    "worker": lambda p: p.write_text("print('worker')\n"),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 8),
    "sqlite header only": lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84),
    "another program's database": _foreign_sqlite,
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_file_that_is_not_ours_is_refused_and_left_as_it_was(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    FOREIGN[kind](path)
    before = _fingerprint(tmp_path)
    assert identify(path) is not None
    for open_it in (
        lambda: TaskDatabase(path),
        lambda: TaskDatabase.open_existing(path),
        lambda: TaskDatabase.check_new(path, "job"),
        lambda: TaskDatabase.remove(path, "job"),
    ):
        with pytest.raises(CloudTasksError, match="not a Cloud Tasks task database") as caught:
            open_it()
        assert "\n" not in str(caught.value)
        assert _fingerprint(tmp_path) == before  # not a byte written, no -wal, no -shm


def test_folders_and_fifos_are_refused_without_blocking(tmp_path: Path) -> None:
    folder = tmp_path / "job.db"
    folder.mkdir()
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    assert identify(folder) == "a folder"
    assert identify(fifo) == "not a regular file"  # never opened: opening a FIFO blocks
    for path in (folder, fifo):
        with pytest.raises(CloudTasksError, match="not a Cloud Tasks task database"):
            TaskDatabase(path)
        with pytest.raises(CloudTasksError, match="not a Cloud Tasks task database"):
            TaskDatabase.remove(path, "job")
    assert folder.is_dir() and fifo.exists()


def test_a_dangling_symlink_is_never_written_through(tmp_path: Path) -> None:
    link = tmp_path / "job.db"
    link.symlink_to(tmp_path / "elsewhere.db")
    for make in (lambda: TaskDatabase(link), lambda: TaskDatabase.check_new(link, "job")):
        with pytest.raises(CloudTasksError, match="a link to a missing file"):
            make()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.db"]


def test_a_new_database_is_marked_as_ours_and_made_whole(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    with TaskDatabase(path, job_id="job") as db:
        db.set_meta(job_id="job")
    assert identify(path) is None
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    # Nothing staged is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_new_database_carries_its_job_id_from_birth(tmp_path: Path) -> None:
    with TaskDatabase(tmp_path / "job.db", job_id="job") as db:
        assert db.meta() == {"job_id": "job"}
    with pytest.raises(CloudTasksError, match="task database of job 'job', not of job 'other'"):
        TaskDatabase(tmp_path / "job.db", job_id="other")


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_stray_sqlite_sidecar_is_never_taken_over(suffix: str, tmp_path: Path) -> None:
    # SQLite would take job.db-wal as the new job.db's own log and overwrite it.
    sidecar = tmp_path / f"job.db{suffix}"
    sidecar.write_text("someone's notes\n")
    for make in (
        lambda: TaskDatabase(tmp_path / "job.db"),
        lambda: TaskDatabase.check_new(tmp_path / "job.db", "job"),
    ):
        with pytest.raises(CloudTasksError, match="Move it away"):
            make()
    assert sidecar.read_text() == "someone's notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [sidecar.name]


def test_a_database_made_before_the_application_id_is_still_ours(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with TaskDatabase(path) as db:
        db.add_tasks(TASKS, 1.0)
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("PRAGMA application_id = 0")
    assert identify(path) is None
    with TaskDatabase.open_existing(path) as db:
        assert db.counts().total == 3


def test_another_jobs_database_is_refused_by_writers(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    with TaskDatabase(path) as db:
        db.set_meta(job_id="other")
        db.add_tasks(TASKS, 1.0)
    before = _fingerprint(tmp_path)
    for open_it in (
        lambda: TaskDatabase(path, job_id="mine"),
        lambda: TaskDatabase.check_new(path, "mine"),
        lambda: TaskDatabase.remove(path, "mine"),
    ):
        with pytest.raises(CloudTasksError, match="task database of job 'other', not of job"):
            open_it()
    assert _fingerprint(tmp_path) == before
    TaskDatabase.remove(path, "other")
    assert not path.exists()


def test_a_missing_folder_is_found_before_anything_is_made(tmp_path: Path) -> None:
    with pytest.raises(CloudTasksError, match="existing folder you can write to"):
        TaskDatabase.check_new(tmp_path / "no" / "such" / "job.db", "job")
    with pytest.raises(CloudTasksError, match="cannot create the task database"):
        TaskDatabase(tmp_path / "no" / "such" / "job.db")
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_folder_is_found_before_anything_is_made(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(CloudTasksError, match="existing folder you can write to"):
            TaskDatabase.check_new(locked / "job.db", "job")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_recording_is_all_or_nothing(tmp_path: Path) -> None:
    def tasks_then_failure() -> Iterator[Task]:
        for i in range(12_000):
            yield Task(f"t{i}", {"i": i})
        raise OSError("the task file went away")

    path = tmp_path / "job.db"
    with TaskDatabase(path) as db:
        with pytest.raises(OSError):
            db.add_tasks(tasks_then_failure(), 1.0, complete=True)
        assert db.counts().total == 0 and not db.recorded() and not db.tasks_known
    # Another connection (status, --continue) sees no part of it either.
    with TaskDatabase.open_existing(path) as db:
        assert db.counts().total == 0 and not db.recorded()
        assert db.add_tasks((Task(f"t{i}", {}) for i in range(12_000)), 2.0, complete=True)
        assert db.recorded() and db.tasks_known
    with TaskDatabase.open_existing(path) as db:
        assert db.counts().pending == 12_000 and db.tasks_known


# -- events ---------------------------------------------------------------------------------


def _event(kind: str = "task_completed", task_id: Any = "t0", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": "2026-01-01T00:00:00+00:00",
        "hostname": "h",
        "instance_id": "i-1",
        "event_type": kind,
        "task_id": task_id,
    }
    if kind == "task_completed":
        base.update(success=True, retry=False, attempt=1, elapsed_time=0.5, result={})
    base.update(fields)
    return {key: value for key, value in base.items() if value is not _DROP}


_DROP = object()

#: Events that must change nothing, with a word of the reason they are dropped for.
FORGED: list[tuple[str, Any]] = [
    ("unknown task", _event(task_id="never-loaded")),
    ("success", _event(success="yes")),
    ("success", _event(success=1)),
    ("success", _event(success=_DROP)),
    ("success", _event(success=None)),
    ("retry", _event("task_exception", retry="no", exception="x")),
    ("attempt", _event(attempt=-1)),
    ("attempt", _event(attempt="2")),
    ("attempt", _event(attempt=True)),
    ("attempt", _event(attempt=10**30)),  # more than SQLite stores: once an OverflowError
    ("elapsed_time", _event(elapsed_time=math.nan)),
    ("elapsed_time", _event(elapsed_time=math.inf)),
    ("elapsed_time", _event(elapsed_time=-3.0)),
    ("elapsed_time", _event(elapsed_time="5")),
    ("event_type", _event(kind="task_teleported")),
    ("event_type", _event(event_type=None)),
    ("event_type", _event(event_type=["task_completed"])),
    ("instance_id", _event(instance_id=5)),
    ("instance_id", _event(instance_id="")),
    ("instance_id", _event(instance_id="i-\ud800")),
    ("instance_id", _event(instance_id="i" * 10_000)),
    ("timestamp", _event(timestamp={"a": 1})),
    ("timestamp", _event(timestamp=math.nan)),
    ("timestamp", _event(timestamp=10**400)),
    ("task_id", _event(task_id=5)),
    ("task_id", _event(task_id=["t0"])),
    ("task_id", _event(task_id="")),
    ("task_id", _event(task_id="t\ud800")),
    ("task_id", _event(task_id=_DROP)),
    ("task_id", _event("task_exited", task_id=None, exit_code=1)),
    ("running_tasks", _event("keep_alive", task_id=_DROP, running_tasks=-5)),
    ("running_tasks", _event("keep_alive", task_id=_DROP, running_tasks="9")),
    ("running_tasks", _event("keep_alive", task_id=_DROP, running_tasks=10**100 * 1.0)),
    ("running_tasks", _event("keep_alive", task_id=_DROP, running_tasks=2**64)),
    ("JSON object", ["task_completed", "t0"]),
    ("JSON object", "task_completed t0"),
    ("JSON object", None),
    ("JSON object", 42),
]


def _sqlite_store(tmp_path: Path) -> Any:
    db = TaskDatabase(tmp_path / "job.db")
    db.add_tasks(TASKS, 1.0, complete=True)
    return db


def _memory_store(_tmp_path: Path) -> Any:
    store = InMemoryTaskStore(tasks_known=True)
    store.add_tasks(TASKS, 1.0)
    return store


STORES = {"sqlite": _sqlite_store, "memory": _memory_store}


def _state(store: Any) -> tuple[Any, ...]:
    rows = None
    if isinstance(store, TaskDatabase):
        rows = [(r.task_id, r.state, r.attempts, r.last_event) for r in store.iter_rows()]
        rows.append(len(store.events()))
    return (store.counts(), rows)


@pytest.mark.parametrize("store_kind", sorted(STORES))
@pytest.mark.parametrize(
    ("reason", "event"), FORGED, ids=[f"{r}-{i}" for i, (r, _) in enumerate(FORGED)]
)
def test_a_forged_or_malformed_event_changes_nothing(
    store_kind: str, reason: str, event: Any, tmp_path: Path
) -> None:
    store = STORES[store_kind](tmp_path)
    before = _state(store)
    result = store.ingest([event], 5.0)
    assert list(result.rejected) == [0]
    assert reason in result.rejected[0]
    assert "\n" not in result.rejected[0] and len(result.rejected[0]) < 200
    assert result.transitions == 0 and not result.alive
    assert _state(store) == before
    # The store still works: a real outcome in the same batch as junk is applied.
    result = store.ingest([event, _event()], 6.0)
    assert list(result.rejected) == [0]
    assert store.counts().completed == 1


@pytest.mark.parametrize("store_kind", sorted(STORES))
def test_tasks_are_learnt_from_events_only_when_the_store_does_not_know_them_all(
    store_kind: str, tmp_path: Path
) -> None:
    store: Any = (
        TaskDatabase(tmp_path / "job.db") if store_kind == "sqlite" else InMemoryTaskStore()
    )
    assert not store.tasks_known  # manage_pool: tasks loaded by load_queue, learnt from events
    result = store.ingest([_event(task_id="hand-loaded"), _event(success="yes")], 1.0)
    assert list(result.rejected) == [1]
    assert (store.counts().total, store.counts().completed) == (1, 1)


_JUNK = st.dictionaries(
    st.sampled_from(
        [
            "event_type",
            "task_id",
            "instance_id",
            "success",
            "retry",
            "attempt",
            "elapsed_time",
            "running_tasks",
            "timestamp",
            "result",
            "exception",
        ]
    ),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from(["task_completed", "keep_alive", "task_exception", "t0", "zz"]),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    ),
)
#: Events a worker could send about the job's tasks (every type), as JSON objects.
_WORKER_EVENTS = st.one_of(
    *(events_of(cls, st.sampled_from([t.task_id for t in TASKS])) for cls in EVENT_CLASSES.values())
).map(encode)


def _outcomes(store: Any) -> tuple[Any, ...]:
    """What both stores report: counts, each task's state, errors, duplicates, preemptions."""
    if isinstance(store, TaskDatabase):
        states = [row.state if (row := store.task(t.task_id)) else None for t in TASKS]
        duplicates = store.duplicate_completions()
    else:
        states = [store.state_of(t.task_id) for t in TASKS]
        duplicates = store.duplicate_completions
    preempted = [store.preempted_tasks(n) for n in (1, 2)]
    return store.counts(), states, store.top_errors(10), duplicates, preempted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(_JUNK | _WORKER_EVENTS, max_size=6), min_size=1, max_size=4))
def test_junk_events_never_break_either_store_and_both_agree(
    batches: list[list[dict[str, Any]]],
) -> None:
    """The same batches of events, valid or not, in the same order: both stores refuse the
    same ones and end with the same task states, errors and counters."""
    db = TaskDatabase(":memory:")
    db.add_tasks(TASKS, 1.0, complete=True)
    memory = InMemoryTaskStore(tasks_known=True)
    memory.add_tasks(TASKS, 1.0)
    known = {t.task_id for t in TASKS}
    sent = 0
    for batch in batches:
        # A field of its own makes each event unique: the SQLite store drops a repeated
        # delivery of the same event, the in-memory store does not look (SPEC §13).
        events = [{**event, "sent": (sent := sent + 1)} for event in batch]
        problems = [event_problem(event, known.__contains__) for event in events]
        results = [store.ingest(events, 2.0) for store in (db, memory)]
        for result in results:
            assert set(result.rejected) == {i for i, p in enumerate(problems) if p is not None}
        assert results[0].transitions == results[1].transitions
        assert _outcomes(db) == _outcomes(memory)
        assert db.counts().total == len(TASKS)
        for event, problem in zip(events, problems, strict=True):
            if isinstance(event.get("task_id"), str) and event["task_id"] not in known:
                assert problem is not None


def test_a_full_disk_while_recording_is_one_line_and_leaves_no_part(tmp_path: Path) -> None:
    path = tmp_path / "job.db"
    with TaskDatabase(path) as db:
        # SQLite's own page limit stands in for a full disk: the same error, the same path.
        pages = db._db.execute("PRAGMA page_count").fetchone()[0]
        db._db.execute(f"PRAGMA max_page_count = {pages + 4}")
        tasks = (Task(f"t{i}", {"pad": "x" * 100}) for i in range(5000))
        with pytest.raises(CloudTasksError, match="cannot write the task database") as caught:
            db.add_tasks(tasks, 1.0, complete=True)
        assert "full" in str(caught.value) and "\n" not in str(caught.value)
        assert db.counts().total == 0 and not db.recorded()
    with TaskDatabase.open_existing(path) as db:
        assert db.counts().total == 0 and not db.recorded()
