"""The manager acks the delivery of a run whose task finished through another delivery.

Workers name the delivery of each run in ``task_started`` (``receipt``); when one run of a
task wins, the manager acks the others, so that their workers find the message gone at the next
lease renewal and stop them. Here the manager's event polls are driven by hand on the memory
queue, and each queue delivery stands for one worker's run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.queue import (
    InMemoryEventQueue,
    InMemoryQueueService,
    InMemoryTaskQueue,
)
from cloud_tasks.adapters.memory.taskstore import InMemoryTaskStore
from cloud_tasks.domain.events import (
    Event,
    TaskCompleted,
    TaskException,
    TaskReleased,
    TaskStarted,
    encode,
)
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.ports import Lease, ReceivedTask
from cloud_tasks.service_layer.pool import PoolManager
from tests.service_layer.pool_helpers import bare_manager

LEASE_S = 600.0


class Job:
    """A task queue, an event queue, a task store and a manager polling them."""

    def __init__(self, task_ids: list[str]) -> None:
        self.clock = VirtualClock(1_800_000_000.0)
        service = InMemoryQueueService()
        self.tasks = InMemoryTaskQueue("job", clock=self.clock, service=service)
        self.events = InMemoryEventQueue("job-events", clock=self.clock, service=service)
        self.tasks.create()
        self.events.create()
        self.store = InMemoryTaskStore(tasks_known=True)
        self.store.add_tasks([Task(t, {}) for t in task_ids])
        self.log: list[str] = []
        self.manager: PoolManager = bare_manager(
            self.tasks, self.events, self.store, clock=self.clock, log=self.log
        )

    def deliver(self, task_id: str) -> ReceivedTask:
        """Send one message of ``task_id`` (an original or a copy) and receive it."""
        self.tasks.send([Envelope(Task(task_id, {}))])
        (message,) = self.tasks.receive(1, LEASE_S)
        assert message.task_id == task_id
        return message

    def report(self, instance: str | None, *events: Event) -> None:
        """Events as the worker on ``instance`` sends them."""
        wire: list[dict[str, Any]] = []
        for event in events:
            obj = encode(event)
            obj["instance_id"] = instance
            obj["timestamp"] = self.clock.now()
            wire.append(obj)
        self.events.send(wire)

    def poll(self) -> None:
        asyncio.run(self.manager.poll_events())

    def held(self, message: ReceivedTask) -> bool:
        found = self.tasks.extend(message.receipt, LEASE_S)
        assert found is not Lease.LOST
        return found is Lease.HELD


def started(message: ReceivedTask, *, receipt: bool = True) -> TaskStarted:
    return TaskStarted(
        task_id=message.task_id,
        attempt=message.attempt,
        receipt=message.receipt if receipt else None,
    )


def completed(task_id: str) -> TaskCompleted:
    return TaskCompleted(task_id=task_id, attempt=1, elapsed_time=5.0, retry=False, success=True)


def test_the_first_outcome_acks_the_other_runs_delivery_and_only_it() -> None:
    job = Job(["t"])
    original, copy = job.deliver("t"), job.deliver("t")
    job.report("slow", started(original))
    job.report("fast", started(copy))
    job.poll()
    assert job.held(original) and job.held(copy)  # both run: nothing ended
    job.report("fast", completed("t"))
    job.poll()
    assert not job.held(original)  # the slow run finds its message gone: its worker stops it
    assert job.held(copy)  # the winner settles its own delivery
    assert job.store.counts().completed == 1
    assert len(job.manager.deliveries) == 0
    assert any("stopping 1 run of tasks that finished elsewhere" in line for line in job.log)
    # The loser's note after it was stopped changes nothing.
    job.report("slow", TaskReleased(task_id="t", attempt=1, retry=False, reason="superseded"))
    job.poll()
    assert job.store.counts().completed == 1 and job.store.duplicate_completions == 0


def test_a_run_that_starts_after_its_task_completed_is_acked_at_once() -> None:
    job = Job(["t"])
    original = job.deliver("t")
    job.report("a", started(original), completed("t"))
    job.tasks.ack(original.receipt)
    job.poll()
    late = job.deliver("t")  # a copy received after the original won
    assert job.held(late)
    job.report("b", started(late))
    job.poll()
    assert not job.held(late)
    assert len(job.manager.deliveries) == 0


def test_a_start_that_arrives_after_its_own_outcome_is_harmless() -> None:
    # At-least-once event queues may reorder: the winner's start comes last; acking its
    # (already settled) delivery again changes nothing.
    job = Job(["t"])
    message = job.deliver("t")
    job.report("a", completed("t"))
    job.tasks.ack(message.receipt)
    job.poll()
    job.report("a", started(message))
    job.poll()
    assert job.store.counts().completed == 1
    assert len(job.manager.deliveries) == 0


def test_a_retry_acks_nothing_and_a_failure_for_good_acks_the_other_run() -> None:
    job = Job(["t", "u"])
    first, second = job.deliver("t"), job.deliver("t")
    job.report("a", started(first))
    job.report("b", started(second))
    job.report(
        "a", TaskException(task_id="t", attempt=1, retry=True, exception="ValueError: flaky")
    )
    job.poll()
    assert job.store.counts().pending == 2  # t is to be retried: not terminal
    assert job.held(second)
    third = job.deliver("t")  # the retry
    job.report("a", started(third))
    job.report("a", TaskException(task_id="t", attempt=2, retry=False, exception="E: no"))
    job.poll()
    assert job.store.counts().failed == 1
    assert not job.held(second)  # the task failed for good: the other run is stopped
    assert len(job.manager.deliveries) == 0


def test_a_running_task_and_a_started_failed_task_are_never_acked() -> None:
    job = Job(["t", "u"])
    running = job.deliver("t")
    job.report("a", started(running))
    job.poll()
    failed = job.deliver("u")
    job.report("a", started(failed))
    job.report("a", TaskException(task_id="u", attempt=1, retry=False, exception="E: no"))
    job.tasks.ack(failed.receipt)
    job.poll()
    late = job.deliver("u")  # a copy of a failed task may still succeed: it runs on
    job.report("b", started(late))
    job.poll()
    assert job.held(running) and job.held(late)
    assert job.manager.deliveries.tasks() == {"t", "u"}


def test_without_receipts_nothing_is_followed_or_acked() -> None:
    job = Job(["t"])
    original, copy = job.deliver("t"), job.deliver("t")
    job.report("slow", started(original, receipt=False))
    job.report("fast", started(copy, receipt=False), completed("t"))
    job.poll()
    assert job.held(original)  # an older worker's copy runs to its end, as before
    assert len(job.manager.deliveries) == 0


def test_two_runs_of_one_task_on_one_instance_are_both_acked_when_it_ends() -> None:
    # The outcome names the instance, not the delivery: which run ended is unknown.
    job = Job(["t"])
    first, second = job.deliver("t"), job.deliver("t")
    job.report("a", started(first), started(second), completed("t"))
    job.poll()
    assert not job.held(first) and not job.held(second)
    assert len(job.manager.deliveries) == 0


def test_memory_holds_only_the_runs_in_progress() -> None:
    ids = [f"t{i:04d}" for i in range(600)]  # more than one event batch, and one lookup
    job = Job(ids)
    messages = [job.deliver(t) for t in ids]
    for message in messages:
        job.report(f"vm{int(message.task_id[1:]) % 7}", started(message))
    job.poll()
    assert len(job.manager.deliveries) == 600
    for message in messages[:500]:
        job.report(f"vm{int(message.task_id[1:]) % 7}", completed(message.task_id))
    job.poll()
    assert len(job.manager.deliveries) == 100
    # An instance that is gone takes its runs with it (their messages come back).
    asyncio.run(job.manager._terminate(["vm0", "vm1"], job.clock.now(), "test"))
    left = {m.task_id for m in messages[500:] if int(m.task_id[1:]) % 7 not in (0, 1)}
    assert job.manager.deliveries.tasks() == left
    assert all(job.held(m) for m in messages[500:])


def test_an_ack_that_fails_is_logged_and_the_manager_goes_on() -> None:
    job = Job(["t"])
    copy = job.deliver("t")
    job.report("a", TaskStarted(task_id="t", attempt=1, receipt="not-a-receipt"))
    job.report("b", started(copy), completed("t"))
    job.poll()
    assert job.store.counts().completed == 1
    assert any("could not stop 1 run" in line for line in job.log)
    assert len(job.manager.deliveries) == 0


@pytest.mark.parametrize("receipt", [17, "", "r" * 5000])
def test_a_start_with_a_bad_receipt_is_dropped_not_followed(receipt: object) -> None:
    job = Job(["t"])
    job.events.send([{"event_type": "task_started", "task_id": "t", "receipt": receipt}])
    job.poll()
    assert len(job.manager.deliveries) == 0
    assert any("dropped 1 invalid event" in line for line in job.log)
