"""Two deliveries of one task on two workers: the first to finish wins, the other is killed.

The task's original and its speculative copy (a second message) run on two real workers on
the SQLite queue; the pool manager moves their events into a task database. When the copy
finishes first, the manager acks the straggler's delivery, the straggler's worker finds the
message gone at its next lease renewal and kills that task process, and the task database
counts one completion and one ``superseded`` release.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

from tests.service_layer.pool_helpers import bare_manager
from tests.worker.scripts.race_worker import process_task

from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.adapters.local.metadata import INSTANCE_ID_VARIABLE, LocalInstanceMetadata
from cloud_tasks.adapters.local.sqlite_queue import SqliteEventQueue, SqliteTaskQueue
from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.worker import Worker

DEADLINE_S = 60.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_losing_copy_is_killed_and_the_task_is_counted_once(tmp_path: Path) -> None:
    queues = tmp_path / "queues.sqlite3"
    task_queue = SqliteTaskQueue(queues, "job")
    event_queue = SqliteEventQueue(queues, "job-events")
    task_queue.create()
    event_queue.create()
    race = tmp_path / "race"
    race.mkdir()
    task = Task("t", {"dir": str(race), "fast_s": 0.5, "straggle_s": 120})
    db = TaskDatabase(tmp_path / "tasks.db", job_id="job")
    db.add_tasks([task], time.time())
    log: list[str] = []
    manager = bare_manager(task_queue, event_queue, db, clock=SystemClock(), log=log)
    task_queue.send([Envelope(task), Envelope(task)])  # the original and its copy
    workers = [
        Worker(
            process_task,
            args=["--visibility-timeout", "1.5", "--exit-when-idle", "2", "--report-task-starts"],
            task_queue=SqliteTaskQueue(queues, "job"),
            event_queue=SqliteEventQueue(queues, "job-events"),
            metadata=LocalInstanceMetadata({INSTANCE_ID_VARIABLE: name}),
            environ={},
            handle_signals=False,
            receive_wait_s=0.2,
        )
        for name in ("vm-1", "vm-2")
    ]
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda w=w: codes.append(asyncio.run(w.serve()))) for w in workers
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            asyncio.run(manager.poll_events())
            time.sleep(0.2)
        asyncio.run(manager.poll_events())
    finally:
        pids = [int(p.read_text()) for p in race.glob("pid-*")]
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads) and codes == [0, 0]
    straggler = int((race / "first").read_text())
    assert straggler in pids and len(pids) == 2
    # Killed, long before its 120 s were up: the threads ended within the deadline.
    assert not _alive(straggler)
    assert db.counts().completed == 1 and db.duplicate_completions() == 0
    kinds = [(e["event_type"], e.get("reason")) for e in db.events("t")]
    assert sorted(kinds, key=str) == sorted(
        [
            ("task_started", None),
            ("task_started", None),
            ("task_completed", None),
            ("task_released", "superseded"),
        ],
        key=str,
    )
    winner = next(e for e in db.events("t") if e["event_type"] == "task_completed")
    assert winner["result"]["pid"] != straggler
    assert task_queue.depth() == 0
    assert len(manager.deliveries) == 0
    assert any("stopping 1 run of tasks that finished elsewhere" in line for line in log)
