"""A run whose message another delivery settled first is stopped and reports no outcome."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from tests.worker.scripts.outcomes_worker import process_task

from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.adapters.local.sqlite_queue import SqliteEventQueue, SqliteTaskQueue
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.ports import Lease
from cloud_tasks.worker import Worker

OUTCOMES = {"task_completed", "task_exception", "task_exited", "task_timed_out"}


class _ClockAhead(SystemClock):
    """Wall time an hour ahead: to a queue using it, every lease taken now has lapsed."""

    def now(self) -> float:
        return super().now() + 3600.0


def _wait_for(predicate: Any, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_run_whose_message_another_receiver_acked_is_killed_and_records_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "queues.sqlite3"
    queue = SqliteTaskQueue(db, "job")
    events = SqliteEventQueue(db, "job-events")
    queue.create()
    events.create()
    marker = tmp_path / "pid"
    queue.send([Envelope(Task("slow", {"mode": "sleep", "seconds": 60, "marker": str(marker)}))])
    worker = Worker(
        process_task,
        args=["--visibility-timeout", "1.5", "--exit-when-idle", "1"],
        task_queue=queue,
        event_queue=events,
        environ={},
        handle_signals=False,
        receive_wait_s=0.2,
    )
    codes: list[int] = []
    serving = threading.Thread(target=lambda: codes.append(asyncio.run(worker.serve())))
    serving.start()
    pid = 0
    try:
        assert _wait_for(lambda: marker.exists() and marker.read_text() != "")
        pid = int(marker.read_text())
        assert _alive(pid)
        # A second receiver gets the task as if the worker's lease had lapsed, and settles it.
        other = SqliteTaskQueue(db, "job", clock=_ClockAhead())
        (again,) = other.receive(1, 60.0)
        assert again.task_id == "slow" and again.delivery_count == 2
        other.ack(again.receipt)
        serving.join(timeout=30)
        assert not serving.is_alive()
    finally:
        if pid and _alive(pid):
            os.kill(pid, 9)
        serving.join(timeout=30)
    assert codes == [0]
    assert not _alive(pid)
    received = [e.event for e in events.receive(100)]
    slow = [e for e in received if e.get("task_id") == "slow"]
    assert [e["event_type"] for e in slow if e["event_type"] in OUTCOMES] == []
    assert [(e["event_type"], e["reason"]) for e in slow] == [("task_released", "superseded")]
    assert queue.depth() == 0


def test_a_run_whose_lease_another_receiver_took_runs_on_and_reports(tmp_path: Path) -> None:
    """A lost lease is not a finished task: the run goes on and its outcome counts."""
    db = tmp_path / "queues.sqlite3"
    queue = SqliteTaskQueue(db, "job")
    events = SqliteEventQueue(db, "job-events")
    queue.create()
    events.create()
    marker = tmp_path / "pid"
    queue.send([Envelope(Task("slow", {"mode": "sleep", "seconds": 3, "marker": str(marker)}))])
    worker = Worker(
        process_task,
        args=["--visibility-timeout", "1.5", "--exit-when-idle", "1"],
        task_queue=queue,
        event_queue=events,
        environ={},
        handle_signals=False,
        receive_wait_s=0.2,
    )
    codes: list[int] = []
    serving = threading.Thread(target=lambda: codes.append(asyncio.run(worker.serve())))
    serving.start()
    try:
        assert _wait_for(lambda: marker.exists() and marker.read_text() != "")
        other = SqliteTaskQueue(db, "job", clock=_ClockAhead())
        (again,) = other.receive(1, 60.0)
        assert again.task_id == "slow"
    finally:
        serving.join(timeout=30)
    assert not serving.is_alive() and codes == [0]
    received = [e.event for e in events.receive(100)]
    slow = [e for e in received if e.get("task_id") == "slow"]
    assert [(e["event_type"], e["result"]) for e in slow] == [("task_completed", {"slept": True})]
    # The first delivery's ack deleted the message: the second one would now be stopped.
    assert other.extend(again.receipt, 60.0) is Lease.GONE
