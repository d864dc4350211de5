"""The SQLite queue across real processes: concurrent receivers and ``kill -9`` of any client."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cloud_tasks.adapters.local.sqlite_queue import SqliteEventQueue, SqliteTaskQueue
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import QueueBusyError

RECEIVER = textwrap.dedent(
    """
    import pathlib, sys, time
    from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue
    queue = SqliteTaskQueue(sys.argv[1], "jobs")
    if len(sys.argv) > 3:  # start together: wait until every receiver is ready
        barrier, count = pathlib.Path(sys.argv[2]), int(sys.argv[3])
        (barrier / str(time.monotonic_ns())).touch()
        while len(list(barrier.iterdir())) < count:
            time.sleep(0.01)
    while True:
        batch = queue.receive(5, 60.0, wait_s=0.5)
        if not batch:
            break
        for message in batch:
            print(message.task_id, flush=True)
            time.sleep(0.002)  # a little work per task, so one receiver cannot take them all
            queue.ack(message.receipt)
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue
    queue = SqliteTaskQueue(sys.argv[1], "jobs")
    got = queue.receive(3, 2.0, wait_s=5.0)
    print(len(got), flush=True)
    time.sleep(600)
    """
)

SENDER = textwrap.dedent(
    """
    import sys
    from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue
    from cloud_tasks.domain.tasks import Envelope, Task
    queue = SqliteTaskQueue(sys.argv[1], "jobs")
    batch = 0
    while True:
        queue.send([Envelope(Task(f"b{batch}-{i}", {"pad": "x" * 200})) for i in range(50)])
        batch += 1
        if batch == 3:
            print("sending", flush=True)
    """
)


def make_queue(tmp_path: Path, count: int = 0) -> SqliteTaskQueue:
    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", "jobs")
    queue.create()
    if count:
        queue.send([Envelope(Task(f"t{i:04d}", {"i": i})) for i in range(count)])
    return queue


def python(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_concurrent_processes_each_get_every_task_once(tmp_path: Path) -> None:
    queue = make_queue(tmp_path, 400)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [python(RECEIVER, str(queue.path), str(barrier), "4") for _ in range(4)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], [e for _, e in outputs]
    received = [line for out, _ in outputs for line in out.split()]
    assert len(received) == 400
    assert set(received) == {f"t{i:04d}" for i in range(400)}
    assert sum(1 for out, _ in outputs if out.strip()) >= 2  # the work was really shared
    assert queue.depth() == 0


def test_leases_of_a_killed_client_come_back(tmp_path: Path) -> None:
    queue = make_queue(tmp_path, 3)
    holder = python(HOLDER, str(queue.path))
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "3"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert queue.receive(10, 60.0) == []  # still leased by the dead client
    time.sleep(2.2)
    again = queue.receive(10, 60.0, wait_s=2.0)
    assert sorted(m.task_id for m in again) == ["t0000", "t0001", "t0002"]
    assert {m.delivery_count for m in again} == {2}


def test_a_writer_killed_midway_leaves_a_consistent_file(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    sender = python(SENDER, str(queue.path))
    assert sender.stdout is not None
    assert sender.stdout.readline().strip() == "sending"
    time.sleep(0.3)
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=30)
    with sqlite3.connect(queue.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    depth = queue.depth()
    assert depth >= 150
    assert depth % 50 == 0  # each send is one transaction: all of a batch or none of it
    got = queue.receive(depth, 60.0)
    assert len({m.task_id for m in got}) == depth


def test_send_once_skips_tasks_already_loaded(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    first = [Envelope(Task(f"t{i}", {})) for i in range(10)]
    assert queue.send_once(first) == 10
    assert queue.send_once([*first[5:], Envelope(Task("t10", {}))]) == 1
    assert queue.depth() == 11
    assert queue.loaded_task_ids() == {f"t{i}" for i in range(11)}
    queue.purge()
    assert queue.loaded_task_ids() == set()
    assert queue.send_once(first) == 10


def test_a_large_receive_leases_each_message_once_and_each_receipt_settles_its_own(
    tmp_path: Path,
) -> None:
    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", "jobs")
    queue.create()
    queue.send([Envelope(Task(f"t{i}", {})) for i in range(1200)])
    batch = queue.receive(1100, 60.0)
    assert len(batch) == 1100 and len({m.receipt for m in batch}) == 1100
    assert {m.delivery_count for m in batch} == {1}
    assert [m.task_id for m in queue.receive(1000, 60.0)] == [f"t{i}" for i in range(1100, 1200)]
    queue.release(batch[0].receipt)  # only this message comes back
    (again,) = queue.receive(10, 60.0)
    assert (again.task_id, again.delivery_count) == ("t0", 2)
    queue.release(batch[0].receipt)  # an older receipt no longer releases it
    assert queue.receive(10, 60.0) == []
    for message in batch[1:]:
        queue.ack(message.receipt)
    assert queue.depth() == 101


def test_the_view_that_never_waits_declines_while_another_process_holds_the_lock(
    tmp_path: Path,
) -> None:
    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", "jobs")
    queue.create()
    queue.send([Envelope(Task("a", {})), Envelope(Task("b", {}))])
    view = queue.without_waiting()
    holder = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(QueueBusyError, match="locked"):
            view.receive(1, 60.0)
        with pytest.raises(QueueBusyError):
            view.send([Envelope(Task("c", {}))])
        # The queue itself waits for the lock.
        released = threading.Timer(0.3, holder.execute, ["COMMIT"])
        released.start()
        (got,) = queue.receive(1, 60.0)
        released.join()
    finally:
        holder.close()
    assert got.task_id == "a"  # the view's receive leased nothing
    assert queue.depth() == 2  # and its send sent nothing
    (then,) = view.receive(1, 60.0)
    assert then.task_id == "b"


def test_the_view_leaves_checkpoints_to_the_queue_so_the_wal_stays_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    events = SqliteEventQueue(path, "jobs-events")
    events.create()
    view = events.without_waiting()
    declined = 0
    for i in range(3000):
        batch = [{"event_type": "keep_alive", "n": i, "pad": "x" * 500}]
        try:
            view.send(batch)
        except QueueBusyError:  # as the worker does: the same call off the loop
            declined += 1
            events.send(batch)
    assert declined > 0
    # Every send appends a few 4 KiB pages; without checkpoints 3000 of them grow the WAL
    # past 20 MB, with them it is reused from the start once copied to the database.
    assert Path(f"{path}-wal").stat().st_size < 12 * 2**20
    assert events.depth() == 3000


def test_a_file_made_with_the_former_receive_index_gets_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, "
        "body TEXT NOT NULL, visible_at REAL NOT NULL, delivery_count INTEGER NOT NULL "
        "DEFAULT 0, lease TEXT);"
        "CREATE INDEX messages_by_queue ON messages (queue, visible_at, id);"
    )
    old.close()
    queue = SqliteTaskQueue(path, "jobs")
    queue.create()
    queue.send([Envelope(Task(f"t{i}", {})) for i in range(5)])
    assert [m.task_id for m in queue.receive(2, 60.0)] == ["t0", "t1"]
    with sqlite3.connect(path) as db:
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE queue = ? AND visible_at <= ? "
            "ORDER BY id LIMIT 1",
            ("jobs", time.time()),
        ).fetchall()
    assert "messages_by_queue" not in indexes and "messages_in_order" in indexes
    # A receive walks the queue in id order instead of sorting every visible message.
    assert not any("TEMP B-TREE" in str(row) for row in plan)
