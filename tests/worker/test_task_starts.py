"""--report-task-starts: a task_started event precedes each run's outcome (for speculation)."""

from __future__ import annotations

import asyncio
from typing import Any

from cloud_tasks.adapters.memory.queue import InMemoryEventQueue, InMemoryTaskQueue
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.worker import Worker, WorkerData


def succeed(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
    return True, None


def _events(args: list[str]) -> list[dict[str, Any]]:
    queue, events = InMemoryTaskQueue("starts"), InMemoryEventQueue("starts-events")
    queue.create()
    events.create()
    queue.send([Envelope(Task(f"t{n}", {})) for n in range(3)])
    worker = Worker(
        succeed,
        args=["--exit-when-idle", "0", "--keepalive-interval", "0", *args],
        task_queue=queue,
        event_queue=events,
        environ={},
        handle_signals=False,
        receive_wait_s=0.01,
    )
    assert asyncio.run(worker.serve()) == 0
    return [e for e in events.peek() if "task_id" in e]


def test_each_run_reports_its_start_before_its_outcome() -> None:
    events = _events(["--report-task-starts"])
    for task_id in ("t0", "t1", "t2"):
        kinds = [e["event_type"] for e in events if e["task_id"] == task_id]
        assert kinds == ["task_started", "task_completed"]


def test_each_start_names_the_delivery_it_runs() -> None:
    # The manager acks the delivery of a run that lost to another copy (docs/worker.md).
    starts = [e for e in _events(["--report-task-starts"]) if e["event_type"] == "task_started"]
    receipts = [e["receipt"] for e in starts]
    assert len(starts) == 3 and all(isinstance(r, str) and r for r in receipts)
    assert len(set(receipts)) == 3


def test_starts_are_not_reported_by_default() -> None:
    assert all(e["event_type"] != "task_started" for e in _events([]))


def test_a_copy_of_a_task_running_here_is_handed_back_a_few_times_then_run() -> None:
    queue, events = InMemoryTaskQueue("copies"), InMemoryEventQueue("copies-events")
    queue.create()
    events.create()
    queue.send([Envelope(Task("slow", {}))])

    def slow(task_id: str, task_data: dict[str, Any], worker_data: WorkerData) -> Any:
        import time

        time.sleep(1.0)  # the copy arrives meanwhile
        return True, None

    worker = Worker(
        slow,
        args=["--exit-when-idle", "0.2", "--keepalive-interval", "0", "--report-task-starts",
              "--num-simultaneous-tasks", "2"],
        task_queue=queue, event_queue=events, environ={}, handle_signals=False,
        receive_wait_s=0.01,
    )  # fmt: skip

    async def main() -> int:
        serving = asyncio.ensure_future(worker.serve())
        await asyncio.sleep(0.3)
        queue.send([Envelope(Task("slow", {}))])  # the manager's speculative copy
        return await serving

    assert asyncio.run(main()) == 0
    kinds = [e["event_type"] for e in events.peek() if e.get("task_id") == "slow"]
    # No other worker took it, so after a few hand-backs this one ran it; never dead-lettered
    # for the hand-backs, and both runs completed.
    assert kinds.count("task_started") == 2 and kinds.count("task_completed") == 2
    assert "task_dead_lettered" not in kinds
    assert queue.depth() == 0
