"""Queue mode: the Worker in-process on the in-memory queues, tasks in real child processes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.fakes.metadata import imds_server
from tests.worker.scripts.outcomes_worker import process_task

from cloud_tasks.adapters.aws.metadata import Ec2InstanceMetadata
from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.queue import (
    InMemoryEventQueue,
    InMemoryQueueService,
    InMemoryTaskQueue,
)
from cloud_tasks.domain.events import NON_FATAL_EXCEPTION
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.ports import Clock, InstanceMetadata
from cloud_tasks.worker import Worker


def _queues(
    tasks: Sequence[tuple[str, dict[str, Any]]], clock: Clock | None = None
) -> tuple[InMemoryTaskQueue, InMemoryEventQueue]:
    service = InMemoryQueueService()
    queue = InMemoryTaskQueue("job", clock=clock, service=service)
    events = InMemoryEventQueue("job-events", clock=clock, service=service)
    queue.create()
    events.create()
    queue.send([Envelope(Task(task_id, data)) for task_id, data in tasks])
    return queue, events


def _serve(
    queue: InMemoryTaskQueue,
    events: InMemoryEventQueue,
    args: Sequence[str],
    metadata: InstanceMetadata | None = None,
    clock: Clock | None = None,
) -> int:
    worker = Worker(
        process_task,
        args=["--exit-when-idle", "0", *args],
        task_queue=queue,
        event_queue=events,
        metadata=metadata,
        clock=clock,
        environ={},
        handle_signals=False,
        metadata_poll_interval_s=0.1,
        receive_wait_s=0.2,
    )
    return asyncio.run(worker.serve())


def _of(events: InMemoryEventQueue, event_type: str) -> list[dict[str, Any]]:
    return [e for e in events.peek() if e["event_type"] == event_type]


def test_successful_tasks_are_acknowledged_and_reported() -> None:
    queue, events = _queues([(f"t{i}", {"mode": "success", "value": i}) for i in range(6)])
    assert _serve(queue, events, ["--num-simultaneous-tasks", "3"]) == 0
    assert queue.depth() == 0
    completed = _of(events, "task_completed")
    assert sorted(e["task_id"] for e in completed) == [f"t{i}" for i in range(6)]
    assert all(e["success"] is True and e["retry"] is False for e in completed)
    assert all(e["result"]["calls"] == 1 for e in completed)


def test_requested_retry_is_requeued_until_max_attempts_then_dead_lettered() -> None:
    queue, events = _queues([("flaky", {"mode": "retry"})])
    assert _serve(queue, events, ["--max-attempts", "3"]) == 0
    assert queue.depth() == 0
    attempts = _of(events, "task_completed")
    assert [(e["attempt"], e["retry"]) for e in attempts] == [(1, True), (2, True), (3, False)]
    (dead,) = _of(events, "task_dead_lettered")
    assert dead["task_id"] == "flaky" and "max_attempts=3" in dead["reason"]
    assert dead["error"] == "process_task asked for a retry"


def test_exceptions_follow_the_retry_flag_and_memory_is_never_retried() -> None:
    queue, events = _queues(
        [("boom", {"mode": "raise"}), ("hog", {"mode": "memory"}), ("bye", {"mode": "exit"})]
    )
    args = ["--retry-on-exception", "--retry-on-exit", "--max-attempts", "2"]
    args += ["--max-memory-allowed-per-task", "1", "--num-simultaneous-tasks", "3"]
    assert _serve(queue, events, args) == 0
    assert queue.depth() == 0
    hog = [e for e in events.peek() if e.get("task_id") == "hog"]
    assert [(e["event_type"], e["outcome"], e["retry"]) for e in hog] == [
        ("task_exception", "memory", False)
    ]
    boom = [e for e in _of(events, "task_exception") if e["task_id"] == "boom"]
    assert [e["attempt"] for e in boom] == [1, 2]
    assert [e["attempt"] for e in _of(events, "task_exited")] == [1, 2]
    dead = {e["task_id"]: e for e in _of(events, "task_dead_lettered")}
    assert set(dead) == {"boom", "bye"}
    assert "ValueError: bad input in boom" in dead["boom"]["error"]
    assert dead["bye"]["error"] == "process exited with code 3"


def test_the_lease_is_renewed_while_a_task_runs() -> None:
    queue, events = _queues([("slow", {"mode": "sleep", "seconds": 2})])
    # Two free slots: were the lease to lapse, the second slot would receive "slow" again.
    args = ["--visibility-timeout", "0.6", "--num-simultaneous-tasks", "2"]
    assert _serve(queue, events, args) == 0
    (done,) = _of(events, "task_completed")
    assert done["result"] == {"slept": True} and done["attempt"] == 1


def test_spot_notice_releases_unfinished_tasks_without_using_an_attempt() -> None:
    tasks = [
        ("watcher", {"mode": "wait_for_shutdown", "seconds": 20}),
        ("sleeper", {"mode": "sleep", "seconds": 60}),
        ("queued", {"mode": "success"}),
    ]
    queue, events = _queues(tasks)
    with imds_server() as (url, state):
        threading.Timer(1.0, lambda: setattr(state, "spot_action", {"action": "stop"})).start()
        started = time.monotonic()
        code = _serve(
            queue,
            events,
            ["--num-simultaneous-tasks", "2", "--simulate-spot-termination-delay", "0.5"],
            metadata=Ec2InstanceMetadata(url),
        )
    assert code == 0
    assert time.monotonic() - started < 20
    (notice,) = _of(events, "spot_termination")
    assert notice["instance_id"] == "i-0123456789abcdef0"
    (watcher,) = [e for e in _of(events, "task_completed") if e["task_id"] == "watcher"]
    assert watcher["result"] == {"noticed": True}
    (released,) = _of(events, "task_released")
    assert released["task_id"] == "sleeper" and released["retry"] is False
    left = {e.task.task_id: e.failures for e in queue.peek()}
    assert left == {"sleeper": 0, "queued": 0}  # nothing lost, no attempt consumed
    (redelivered,) = [m for m in queue.receive(10, 30) if m.task_id == "sleeper"][:1]
    assert redelivered.delivery_count == 2


def test_preemption_budget_dead_letters_a_task_lost_too_often() -> None:
    clock = VirtualClock(1_000.0)
    queue, events = _queues([("cursed", {"mode": "success"})], clock=clock)
    for _ in range(3):  # three workers vanished while holding it
        assert queue.receive(1, 10)
        clock.advance(11)
    assert _serve(queue, events, ["--max-preemptions", "2"], clock=clock) == 0
    assert queue.depth() == 0
    (dead,) = _of(events, "task_dead_lettered")
    assert dead["task_id"] == "cursed" and "max_preemptions=2" in dead["reason"]
    assert _of(events, "task_completed") == []


def test_keepalive_events_and_max_num_tasks() -> None:
    queue, events = _queues([(f"s{i}", {"mode": "sleep", "seconds": 0.7}) for i in range(3)])
    args = ["--keepalive-interval", "0.2", "--max-num-tasks", "1"]
    assert _serve(queue, events, args) == 0
    assert len(_of(events, "task_completed")) == 1
    assert queue.depth() == 2
    keepalives = _of(events, "keep_alive")
    assert keepalives and all(e["hostname"] for e in keepalives)


def test_a_spot_notice_among_short_tasks_loses_nothing_and_uses_no_attempt() -> None:
    """Short tasks make the worker hold a reserve of deliveries in its fork server; a notice
    hands the reserve back unstarted: each task is completed once or left in the queue."""
    names = [f"t{i:03d}" for i in range(300)]
    queue, events = _queues([(name, {"mode": "success"}) for name in names])
    args = ["--num-simultaneous-tasks", "2"]
    args += ["--simulate-spot-termination-after", "1", "--simulate-spot-termination-delay", "0"]
    assert _serve(queue, events, args) == 0
    completed = [e["task_id"] for e in _of(events, "task_completed")]
    left = {e.task.task_id: e.failures for e in queue.peek()}
    assert len(completed) == len(set(completed))
    assert sorted([*completed, *left]) == names
    assert set(left.values()) <= {0}
    assert _of(events, "task_exception") == _of(events, "task_dead_lettered") == []


class _RecordingClock(SystemClock):
    """Real time and real sleeps, remembering how long each sleep asked for."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


def test_the_worker_backs_off_through_its_clock_while_receive_fails_then_recovers() -> None:
    queue, events = _queues([(f"t{i}", {"mode": "success"}) for i in range(3)])
    queue.fail_receives(3)
    clock = _RecordingClock()
    # Keep-alives and lease renewals sleep far longer than any of the three backoff waits.
    args = ["--keepalive-interval", "1000", "--visibility-timeout", "300"]
    assert _serve(queue, events, args, clock=clock) == 0
    assert queue.depth() == 0
    assert sorted(e["task_id"] for e in _of(events, "task_completed")) == ["t0", "t1", "t2"]
    failures = _of(events, NON_FATAL_EXCEPTION)
    assert len(failures) == 3
    assert all(e["exception"].startswith("receive: queue 'job': receive failed") for e in failures)
    # Full jitter below a cap that doubles from 0.5 s: each wait went through the clock.
    backoff = [s for s in clock.sleeps if s < 30]
    assert len(backoff) == 3
    assert all(0.0 <= wait <= 0.5 * 2**retry for retry, wait in enumerate(backoff))


def test_failed_event_sends_are_retried_through_the_clock_and_nothing_is_lost() -> None:
    queue, events = _queues([("t0", {"mode": "success"})])
    events.fail_sends(2)
    clock = _RecordingClock()
    args = ["--keepalive-interval", "1000", "--visibility-timeout", "300"]
    assert _serve(queue, events, args, clock=clock) == 0
    assert queue.depth() == 0
    (done,) = _of(events, "task_completed")
    assert done["task_id"] == "t0"
    backoff = [s for s in clock.sleeps if s < 30]
    assert len(backoff) == 2
    assert all(0.0 <= wait <= 0.5 * 2**retry for retry, wait in enumerate(backoff))
