"""The ``TaskQueue`` contract (ports.TaskQueue), run against every adapter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.exceptions import (
    NotSupportedError,
    ProviderError,
    QueueBusyError,
    QueueNotFoundError,
)
from cloud_tasks.ports import Lease, ReceivedTask, TaskQueue
from tests.contract.conftest import QueueKit

LONG_LEASE_S = 60.0
QUIET_WAIT_S = 0.3  # how long a receive that must come back empty waits
T = TypeVar("T")

# The Pub/Sub adapter sets return_immediately on purpose when asked not to wait.
pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")


def envelopes(count: int, prefix: str = "t") -> list[Envelope]:
    return [
        Envelope(Task(f"{prefix}{i:03d}", {"i": i, "name": "é✓", "nested": [i]}))
        for i in range(count)
    ]


def drain(
    queue: TaskQueue, expected: int, visibility_s: float = LONG_LEASE_S
) -> list[ReceivedTask]:
    """Receive until ``expected`` messages arrived or nothing more comes for a few seconds."""
    got: list[ReceivedTask] = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        got.extend(queue.receive(expected - len(got), visibility_s, wait_s=2.0))
    return got


def test_create_is_idempotent_and_exists_reports_it(queue_kit: QueueKit) -> None:
    queue = queue_kit.make_tasks(queue_kit.new_name())
    assert not queue.exists()
    queue.create()
    queue.create()
    assert queue.exists()
    assert queue_kit.make_tasks(queue.name).exists()
    queue.delete()


def test_every_sent_task_is_delivered_with_its_data(task_queue: TaskQueue) -> None:
    sent = envelopes(25)  # more than one SQS batch
    task_queue.send(sent)
    got = drain(task_queue, 25)
    assert sorted(m.task_id for m in got) == sorted(e.task.task_id for e in sent)
    by_id = {m.task_id: m for m in got}
    for envelope in sent:
        message = by_id[envelope.task.task_id]
        assert dict(message.data) == dict(envelope.task.data)
        assert message.envelope.failures == 0
        assert message.attempt == 1
        assert message.delivery_count == 1
    assert len({m.receipt for m in got}) == 25


def test_a_leased_message_is_hidden_from_other_receivers(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    task_queue.send(envelopes(1))
    first = drain(task_queue, 1)
    assert [m.task_id for m in first] == ["t000"]
    other = queue_kit.make_tasks(task_queue.name)
    assert other.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []


def test_an_expired_lease_is_redelivered_with_a_higher_delivery_count(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    task_queue.send(envelopes(1))
    (first,) = drain(task_queue, 1, visibility_s=1.0)
    time.sleep(1.2)
    other = queue_kit.make_tasks(task_queue.name)
    (again,) = drain(other, 1)
    assert again.task_id == first.task_id
    assert again.delivery_count == first.delivery_count + 1
    assert again.envelope.failures == 0  # a lost lease is not an application failure
    assert again.receipt != first.receipt


def test_extending_a_lease_prevents_redelivery(queue_kit: QueueKit, task_queue: TaskQueue) -> None:
    task_queue.send(envelopes(1))
    (message,) = drain(task_queue, 1, visibility_s=2.0)
    other = queue_kit.make_tasks(task_queue.name)
    for _ in range(2):
        time.sleep(1.0)
        task_queue.extend(message.receipt, 2.0)
    time.sleep(0.3)  # now past the original 2 s lease
    assert other.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []
    task_queue.ack(message.receipt)


def test_extend_says_the_lease_is_held_while_the_receipt_holds_it(task_queue: TaskQueue) -> None:
    task_queue.send(envelopes(1))
    (message,) = drain(task_queue, 1)
    assert task_queue.extend(message.receipt, LONG_LEASE_S) is Lease.HELD
    task_queue.ack(message.receipt)


def test_extend_says_gone_once_the_message_was_acked(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    task_queue.send(envelopes(1))
    (message,) = drain(task_queue, 1)
    task_queue.ack(message.receipt)
    found = task_queue.extend(message.receipt, LONG_LEASE_S)
    # Pub/Sub takes a new deadline for an acked message without complaint (ports.Lease).
    assert found is (Lease.GONE if queue_kit.reports_gone else Lease.HELD)


def test_extend_says_gone_when_another_receiver_of_the_task_acked_it_first(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    """The losing copy of a task run twice learns, at its next renewal, that it lost."""
    task_queue.send(envelopes(1))
    (first,) = drain(task_queue, 1, visibility_s=1.0)
    time.sleep(1.2)
    other = queue_kit.make_tasks(task_queue.name)
    (second,) = drain(other, 1)
    assert second.task_id == first.task_id
    other.ack(second.receipt)
    found = task_queue.extend(first.receipt, LONG_LEASE_S)
    if queue_kit.reports_gone:
        assert found is Lease.GONE
    else:
        assert found is not Lease.GONE
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []


def test_extend_of_a_replaced_receipt_says_lost_and_leaves_the_new_lease(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    if not queue_kit.exclusive_leases:
        # SQS answers a replaced receipt as it answers a deleted message (moto extends the
        # lease instead); Pub/Sub cannot tell. See ports.Lease and docs/worker.md.
        pytest.skip(f"{queue_kit.kind}: a replaced receipt is not told apart")
    task_queue.send(envelopes(1))
    (first,) = drain(task_queue, 1, visibility_s=1.0)
    time.sleep(1.2)
    other = queue_kit.make_tasks(task_queue.name)
    (second,) = drain(other, 1, visibility_s=1.0)
    assert task_queue.extend(first.receipt, LONG_LEASE_S) is Lease.LOST
    time.sleep(1.2)  # the second lease was not extended by the first receipt: it lapsed
    (third,) = drain(other, 1)
    assert third.delivery_count == second.delivery_count + 1
    other.ack(third.receipt)


def test_extend_after_release_says_lost(queue_kit: QueueKit, task_queue: TaskQueue) -> None:
    if not queue_kit.exclusive_leases:
        pytest.skip(f"{queue_kit.kind}: a released receipt is not told apart")
    task_queue.send(envelopes(1))
    (message,) = drain(task_queue, 1)
    task_queue.release(message.receipt)
    assert task_queue.extend(message.receipt, LONG_LEASE_S) is Lease.LOST
    (again,) = drain(task_queue, 1)
    task_queue.ack(again.receipt)


def test_release_makes_the_message_visible_at_once(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    task_queue.send(envelopes(1))
    (message,) = drain(task_queue, 1)
    task_queue.release(message.receipt)
    other = queue_kit.make_tasks(task_queue.name)
    started = time.monotonic()
    (again,) = drain(other, 1)
    assert again.task_id == message.task_id
    assert again.envelope.failures == 0
    assert again.delivery_count == message.delivery_count + 1
    assert time.monotonic() - started < LONG_LEASE_S / 2


def test_requeue_counts_a_failure_and_retires_the_old_delivery(task_queue: TaskQueue) -> None:
    task_queue.send(envelopes(1))
    (first,) = drain(task_queue, 1, visibility_s=1.0)
    task_queue.requeue(first)
    (second,) = drain(task_queue, 1)
    assert second.task_id == first.task_id
    assert second.envelope.failures == 1
    assert second.attempt == 2
    assert second.delivery_count == 1  # a new message, not a redelivery
    task_queue.requeue(second)
    (third,) = drain(task_queue, 1)
    assert third.attempt == 3
    task_queue.ack(third.receipt)
    time.sleep(1.2)  # the first delivery's lease has long run out: it must not come back
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []


def test_ack_is_idempotent_and_final(task_queue: TaskQueue) -> None:
    task_queue.send(envelopes(2))
    messages = drain(task_queue, 2, visibility_s=1.0)
    for message in messages:
        task_queue.ack(message.receipt)
        task_queue.ack(message.receipt)
    time.sleep(1.2)
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []
    assert task_queue.depth() == 0


def test_dead_lettering_is_an_ack_plus_an_event(queue_kit: QueueKit, task_queue: TaskQueue) -> None:
    events = queue_kit.make_events(f"{task_queue.name}-events")
    events.create()
    try:
        task_queue.send(envelopes(1))
        (message,) = drain(task_queue, 1, visibility_s=1.0)
        events.send(
            [
                {
                    "event_type": "task_dead_lettered",
                    "task_id": message.task_id,
                    "attempt": message.attempt,
                    "reason": "max_attempts reached",
                }
            ]
        )
        task_queue.ack(message.receipt)
        time.sleep(1.2)
        assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []
        received = events.receive(10, wait_s=5.0)
        assert [e.event["task_id"] for e in received] == [message.task_id]
        assert received[0].event["event_type"] == "task_dead_lettered"
        events.ack([e.receipt for e in received])
    finally:
        events.delete()


def test_depth_counts_what_is_left(queue_kit: QueueKit, task_queue: TaskQueue) -> None:
    assert task_queue.depth() == 0
    task_queue.send(envelopes(5))
    assert task_queue.depth() == 5
    leased = drain(task_queue, 2)
    assert task_queue.depth() == (5 if queue_kit.depth_counts_leased else 3)
    for message in leased:
        task_queue.ack(message.receipt)
    assert task_queue.depth() == 3


def test_purge_removes_every_message(task_queue: TaskQueue) -> None:
    task_queue.send(envelopes(12))
    task_queue.purge()
    assert task_queue.depth() == 0
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []
    task_queue.send(envelopes(1, prefix="after"))  # the queue still works after a purge
    assert [m.task_id for m in drain(task_queue, 1)] == ["after000"]


def test_send_once_sends_each_task_once_where_the_queue_remembers_loads(
    task_queue: TaskQueue,
) -> None:
    if not task_queue.remembers_loads:
        with pytest.raises(NotSupportedError, match=task_queue.name):
            task_queue.send_once(envelopes(3))
        assert task_queue.depth() == 0
        return
    assert task_queue.send_once(envelopes(3)) == 3
    assert task_queue.send_once(envelopes(5)) == 2
    assert task_queue.depth() == 5


def test_two_adapters_of_one_queue_share_its_address(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    same = queue_kit.make_tasks(task_queue.name)
    other = queue_kit.make_tasks(queue_kit.new_name())
    assert same.address() == task_queue.address()
    assert other.address() != task_queue.address()
    assert task_queue.address().startswith(f"{queue_kit.provider}|")
    assert task_queue.address().endswith(f"|{task_queue.name}")


def test_delete_removes_the_queue_and_is_idempotent(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    task_queue.send(envelopes(3))
    task_queue.delete()
    task_queue.delete()
    assert not task_queue.exists()
    assert not queue_kit.make_tasks(task_queue.name).exists()
    with pytest.raises(QueueNotFoundError):
        task_queue.send(envelopes(1))


def test_a_missing_queue_raises_queue_not_found_naming_it(queue_kit: QueueKit) -> None:
    queue = queue_kit.make_tasks(queue_kit.new_name())
    for operation in (
        lambda: queue.send(envelopes(1)),
        lambda: queue.receive(1, LONG_LEASE_S),
        lambda: queue.depth(),
        lambda: queue.purge(),
    ):
        with pytest.raises(QueueNotFoundError, match=queue.name):
            operation()


def test_an_oversized_task_is_refused_before_anything_is_sent(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    if not queue_kit.checks_bodies:
        pytest.skip(f"the {queue_kit.kind} queues never serialize tasks")
    big = Task("too-big", {"blob": "x" * task_queue.max_message_bytes})
    with pytest.raises(ProviderError, match="too-big"):
        task_queue.send([*envelopes(3), Envelope(big)])
    assert task_queue.depth() == 0


def test_concurrent_receivers_never_share_a_lease(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    if not queue_kit.shared_across_threads:
        pytest.skip(f"the {queue_kit.kind} queues serve one thread")
    task_queue.send(envelopes(40))
    results: list[list[str]] = [[], [], []]

    def consume(slot: int) -> None:
        queue = queue_kit.make_tasks(task_queue.name)
        while True:
            batch = queue.receive(3, LONG_LEASE_S, wait_s=1.0)
            if not batch:
                return
            results[slot].extend(m.task_id for m in batch)

    errors: list[BaseException] = []

    def run(slot: int) -> None:
        try:
            consume(slot)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    every = sorted(task_id for result in results for task_id in result)
    assert set(every) == {e.task.task_id for e in envelopes(40)}  # no task lost
    if queue_kit.exclusive_leases:
        duplicates = sorted({t for t in every if every.count(t) > 1})
        assert duplicates == []


def test_receive_waits_for_a_message_sent_meanwhile(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    if not queue_kit.shared_across_threads:
        pytest.skip(f"the {queue_kit.kind} queues serve one thread and never wait")
    sender = queue_kit.make_tasks(task_queue.name)
    timer = threading.Timer(0.5, lambda: sender.send(envelopes(1, prefix="late")))
    timer.start()
    try:
        got = task_queue.receive(1, LONG_LEASE_S, wait_s=10.0)
    finally:
        timer.join()
    assert [m.task_id for m in got] == ["late000"]


def _without_busy(call: Callable[[], T]) -> T:
    """``call()``, again while the view says it would wait (another test's connection may hold
    the lock for a moment, and the view declines a call now and then)."""
    for _ in range(100):
        try:
            return call()
        except QueueBusyError:
            time.sleep(0.01)
    raise AssertionError("the view stayed busy for a second")


def test_a_view_that_never_waits_shares_the_queue(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    view = task_queue.without_waiting()
    if view is None:
        pytest.skip(f"{queue_kit.kind}: no view that never waits")
    assert view.without_waiting() is view
    task_queue.send(envelopes(3))
    first = _without_busy(lambda: view.receive(1, LONG_LEASE_S, 0.0))
    assert [m.task_id for m in first] == ["t000"]
    second = drain(task_queue, 1)
    assert [m.task_id for m in second] == ["t001"]
    _without_busy(lambda: view.ack(first[0].receipt))
    _without_busy(lambda: view.release(second[0].receipt))
    (again,) = drain(task_queue, 1)
    assert again.task_id == "t001"
    _without_busy(lambda: view.requeue(again))
    got = drain(task_queue, 2)
    assert sorted((m.task_id, m.attempt) for m in got) == [("t001", 2), ("t002", 1)]
    assert task_queue.depth() == 2


def test_a_view_never_waits_for_a_message(queue_kit: QueueKit, task_queue: TaskQueue) -> None:
    view = task_queue.without_waiting()
    if view is None:
        pytest.skip(f"{queue_kit.kind}: no view that never waits")
    assert _without_busy(lambda: view.receive(1, LONG_LEASE_S, 0.0)) == []
    with pytest.raises(QueueBusyError):
        view.receive(1, LONG_LEASE_S, 5.0)


def test_only_the_sqlite_queue_offers_a_view_that_never_waits(
    queue_kit: QueueKit, task_queue: TaskQueue
) -> None:
    """The worker calls a queue on its event loop only through such a view: the cloud queues
    (network calls) and the in-memory ones (no lock to wait for) offer none."""
    offers = task_queue.without_waiting() is not None
    assert offers == (queue_kit.kind == "sqlite")
