"""A task's outcome event is stored before its message is settled, so a crash loses nothing.

The queues here are the in-memory adapters with one addition each: the task queue records, at
every ack/requeue/release, which events the event queue already holds; the event queue can
refuse its first sends, as an unreachable service does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from tests.worker.scripts.outcomes_worker import process_task

from cloud_tasks.adapters.memory.queue import (
    InMemoryEventQueue,
    InMemoryQueueService,
    InMemoryTaskQueue,
)
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import ProviderError
from cloud_tasks.ports import ReceivedTask
from cloud_tasks.worker import Worker


class FlakyEventQueue(InMemoryEventQueue):
    """Refuses the first ``failures`` sends, then stores events as usual."""

    def __init__(self, name: str, service: InMemoryQueueService, failures: int = 0) -> None:
        super().__init__(name, service=service)
        self.failures_left = failures
        self.sends = 0

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.sends += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ProviderError(f"queue {self.name!r}: service unavailable")
        super().send(events)


class WatchedTaskQueue(InMemoryTaskQueue):
    """Records, for every settled delivery, the task's events already stored at that moment."""

    def __init__(self, name: str, service: InMemoryQueueService, events: InMemoryEventQueue):
        super().__init__(name, service=service)
        self._events = events
        self._tasks_by_receipt: dict[str, ReceivedTask] = {}
        self.settled: list[tuple[str, str, int, list[tuple[str, int]]]] = []

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        received = super().receive(max_messages, visibility_timeout_s, wait_s)
        for message in received:
            self._tasks_by_receipt[message.receipt] = message
        return received

    def _record(self, action: str, receipt: str) -> None:
        message = self._tasks_by_receipt[receipt]
        stored = [
            (e["event_type"], e["attempt"])
            for e in self._events.peek()
            if e.get("task_id") == message.task_id
        ]
        self.settled.append((action, message.task_id, message.attempt, stored))

    def ack(self, receipt: str) -> None:
        self._record("ack", receipt)
        super().ack(receipt)

    def requeue(self, message: ReceivedTask) -> None:
        self._record("requeue", message.receipt)
        super().requeue(message)

    def release(self, receipt: str) -> None:
        self._record("release", receipt)
        super().release(receipt)


def _serve(queue: InMemoryTaskQueue, events: InMemoryEventQueue, args: Sequence[str]) -> int:
    worker = Worker(
        process_task,
        args=["--exit-when-idle", "0", "--keepalive-interval", "0", *args],
        task_queue=queue,
        event_queue=events,
        environ={},
        handle_signals=False,
        receive_wait_s=0.2,
    )
    return asyncio.run(worker.serve())


def test_every_message_is_settled_only_after_its_outcome_event_is_stored() -> None:
    service = InMemoryQueueService()
    events = FlakyEventQueue("job-events", service)
    queue = WatchedTaskQueue("job", service, events)
    queue.create()
    events.create()
    tasks = [Task(f"ok{i}", {"mode": "success"}) for i in range(8)]
    tasks += [Task("flaky", {"mode": "retry"}), Task("boom", {"mode": "raise"})]
    queue.send([Envelope(task) for task in tasks])
    args = ["--num-simultaneous-tasks", "3", "--max-attempts", "2"]
    assert _serve(queue, events, args) == 0
    assert queue.depth() == 0

    expected_event = {"ack": "task_completed", "requeue": "task_completed"}
    for action, task_id, attempt, stored in queue.settled:
        if task_id == "boom":
            assert (action, stored) == ("ack", [("task_exception", 1)])
            continue
        assert (expected_event[action], attempt) in stored, (action, task_id, stored)
    flaky = [(a, attempt, stored) for a, t, attempt, stored in queue.settled if t == "flaky"]
    assert [(a, attempt) for a, attempt, _ in flaky] == [("requeue", 1), ("ack", 2)]
    # The dead-letter record is stored with the last attempt's outcome, before the final ack.
    assert ("task_dead_lettered", 2) in flaky[-1][2]
    assert sorted({t for _, t, _, _ in queue.settled}) == sorted(t.task_id for t in tasks)


def test_an_unreachable_event_queue_delays_acks_but_loses_no_outcome() -> None:
    service = InMemoryQueueService()
    events = FlakyEventQueue("job-events", service, failures=2)
    queue = WatchedTaskQueue("job", service, events)
    queue.create()
    events.create()
    queue.send([Envelope(Task(f"t{i}", {"mode": "success"})) for i in range(4)])
    assert _serve(queue, events, ["--num-simultaneous-tasks", "2"]) == 0
    assert events.sends >= 3 and events.failures_left == 0
    assert queue.depth() == 0
    completed = [e["task_id"] for e in events.peek() if e["event_type"] == "task_completed"]
    assert sorted(completed) == ["t0", "t1", "t2", "t3"]  # each reported once, none run twice
    for action, task_id, _, stored in queue.settled:
        assert action == "ack" and ("task_completed", 1) in stored, (task_id, stored)
