"""The in-memory task and event queues honour the port semantics."""

from __future__ import annotations

import threading
import time

import pytest

from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.queue import (
    InMemoryEventQueue,
    InMemoryQueueService,
    InMemoryTaskQueue,
)
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import ProviderError, QueueNotFoundError
from cloud_tasks.ports import EventQueue, TaskQueue


def _queue(clock: VirtualClock) -> InMemoryTaskQueue:
    queue = InMemoryTaskQueue("q", clock=clock)
    queue.create()
    return queue


def test_implements_the_ports() -> None:
    assert isinstance(InMemoryTaskQueue("q"), TaskQueue)
    assert isinstance(InMemoryEventQueue("q-events"), EventQueue)


def test_missing_queue_raises() -> None:
    with pytest.raises(QueueNotFoundError):
        InMemoryTaskQueue("nope").depth()


def test_leases_expire_extend_release_and_requeue() -> None:
    clock = VirtualClock()
    queue = _queue(clock)
    queue.send([Envelope(Task("a", {"x": 1})), Envelope(Task("b"))])
    first = queue.receive(1, visibility_timeout_s=10)
    assert [m.task_id for m in first] == ["a"] and first[0].delivery_count == 1
    clock.advance(9)
    queue.extend(first[0].receipt, 10)
    clock.advance(9)
    assert [m.task_id for m in queue.receive(5, 10)] == ["b"]  # "a" is still leased
    clock.advance(2)
    again = queue.receive(5, 10)
    assert [(m.task_id, m.delivery_count) for m in again] == [("a", 2)]
    queue.extend(first[0].receipt, 100)  # a stale receipt does nothing
    queue.release(again[0].receipt)
    released = queue.receive(5, 10)
    assert [(m.task_id, m.attempt) for m in released] == [("a", 1)]
    queue.requeue(released[0])
    assert [(e.task.task_id, e.failures) for e in queue.peek()] == [("b", 0), ("a", 1)]
    queue.ack(released[0].receipt)  # acking twice is not an error
    assert queue.depth() == 2
    queue.purge()
    assert queue.depth() == 0


def test_receive_waits_for_a_send_from_another_thread() -> None:
    queue = InMemoryTaskQueue("q")
    queue.create()
    threading.Timer(0.2, lambda: queue.send([Envelope(Task("late"))])).start()
    started = time.monotonic()
    (message,) = queue.receive(1, 30, wait_s=10)
    assert message.task_id == "late" and time.monotonic() - started < 5


def test_too_large_message_is_refused_whole() -> None:
    queue = InMemoryTaskQueue("q", max_message_bytes=100)
    queue.create()
    with pytest.raises(ProviderError, match="big"):
        queue.send([Envelope(Task("ok")), Envelope(Task("big", {"x": "y" * 200}))])
    assert queue.depth() == 0


def test_named_queues_are_shared_through_a_service() -> None:
    service = InMemoryQueueService()
    writer, reader = (
        InMemoryTaskQueue("q", service=service),
        InMemoryTaskQueue("q", service=service),
    )
    writer.create()
    writer.send([Envelope(Task("a"))])
    assert reader.exists() and reader.depth() == 1
    reader.delete()
    assert not writer.exists()


def test_event_queue_redelivers_until_acknowledged() -> None:
    clock = VirtualClock()
    events = InMemoryEventQueue("e", clock=clock, visibility_timeout_s=5)
    events.create()
    events.send([{"event_type": "keep_alive"}])
    (first,) = events.receive(10)
    assert events.receive(10) == []
    clock.advance(6)
    (second,) = events.receive(10)
    assert second.event == first.event
    events.ack([second.receipt])
    assert events.peek() == []
    with pytest.raises(ProviderError):
        events.send([{"bad": object()}])
