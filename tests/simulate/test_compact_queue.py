"""The compact task queue of simulations: oldest first, leases, receipts."""

from __future__ import annotations

import math

import pytest

from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.compact_queue import CompactTaskQueue
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import ProviderError


def _queue(count: int) -> tuple[CompactTaskQueue, VirtualClock]:
    clock = VirtualClock(0.0)
    queue = CompactTaskQueue("q", clock=clock)
    queue.create()
    queue.send([Envelope(Task(f"t{i}")) for i in range(count)])
    return queue, clock


def _ids(queue: CompactTaskQueue, count: int, lease_s: float = 60.0) -> list[str]:
    return [message.task_id for message in queue.receive(count, lease_s)]


def test_released_and_lapsed_messages_come_back_before_newer_ones() -> None:
    queue, clock = _queue(6)
    first = queue.receive(3, 60.0)
    assert [m.task_id for m in first] == ["t0", "t1", "t2"]
    queue.release(first[1].receipt)
    queue.send([Envelope(Task("t6"))])
    assert queue.visible() == 5
    assert _ids(queue, 2) == ["t1", "t3"]
    clock.set(61.0)  # t0 and t2 lapse; t1 and t3 were leased again at 0 and lapse too
    assert _ids(queue, 10) == ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]


def test_a_lease_of_infinite_length_never_lapses_but_can_be_shortened() -> None:
    queue, clock = _queue(2)
    (held,) = queue.receive(1, math.inf)
    clock.set(1e12)
    assert _ids(queue, 5, math.inf) == ["t1"]
    queue.extend(held.receipt, 30.0)
    clock.set(1e12 + 31)
    again = queue.receive(5, math.inf)
    assert [m.task_id for m in again] == ["t0"]  # t1 is still held
    assert again[0].delivery_count == 2


def test_ack_removes_any_receipt_of_a_message_and_refuses_malformed_ones() -> None:
    queue, _ = _queue(2)
    (message,) = queue.receive(1, 60.0)
    queue.ack(message.receipt)
    assert queue.depth() == 1
    queue.ack(message.receipt)  # twice is harmless
    with pytest.raises(ProviderError, match="malformed receipt"):
        queue.ack("not-a-receipt")


def test_requeue_sends_the_task_again_with_one_more_failure() -> None:
    queue, _ = _queue(2)
    (message,) = queue.receive(1, 60.0)
    queue.requeue(message)
    again = queue.receive(5, 60.0)
    assert [(m.task_id, m.envelope.failures) for m in again] == [("t1", 0), ("t0", 1)]
