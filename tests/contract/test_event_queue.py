"""The ``EventQueue`` contract (ports.EventQueue), run against every adapter."""

from __future__ import annotations

import time

import pytest

from cloud_tasks.exceptions import ProviderError, QueueBusyError, QueueNotFoundError
from cloud_tasks.ports import EventQueue, ReceivedEvent
from tests.contract.conftest import EVENT_VISIBILITY_S, QueueKit

# The Pub/Sub adapter sets return_immediately on purpose when asked not to wait.
pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")


def event(i: int) -> dict[str, object]:
    return {
        "timestamp": "2024-01-01T00:00:00+00:00",
        "event_type": "task_completed",
        "task_id": f"t{i}",
        "success": True,
        "retry": False,
        "result": {"value": i, "text": "é✓"},
    }


def drain(queue: EventQueue, expected: int) -> list[ReceivedEvent]:
    got: list[ReceivedEvent] = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        got.extend(queue.receive(expected - len(got), wait_s=2.0))
    return got


def test_create_exists_delete(queue_kit: QueueKit) -> None:
    queue = queue_kit.make_events(f"{queue_kit.new_name()}-events")
    assert not queue.exists()
    queue.create()
    queue.create()
    assert queue.exists()
    queue.delete()
    queue.delete()
    assert not queue.exists()


def test_events_arrive_as_sent(event_queue: EventQueue) -> None:
    sent = [event(i) for i in range(15)]
    event_queue.send(sent)
    got = drain(event_queue, 15)
    assert sorted((dict(e.event) for e in got), key=lambda e: str(e["task_id"])) == sorted(
        sent, key=lambda e: str(e["task_id"])
    )
    event_queue.ack([e.receipt for e in got])


def test_unacknowledged_events_come_back_and_acknowledged_ones_do_not(
    event_queue: EventQueue,
) -> None:
    event_queue.send([event(i) for i in range(3)])
    got = drain(event_queue, 3)
    keep = [e for e in got if e.event["task_id"] != "t1"]
    event_queue.ack([e.receipt for e in keep])
    event_queue.ack([e.receipt for e in keep])  # idempotent
    time.sleep(EVENT_VISIBILITY_S + 0.2)
    again = drain(event_queue, 1)
    assert [e.event["task_id"] for e in again] == ["t1"]
    event_queue.ack([e.receipt for e in again])
    time.sleep(EVENT_VISIBILITY_S + 0.2)
    assert event_queue.receive(10, wait_s=0.3) == []


def test_depth_counts_unread_events_and_purge_removes_them(event_queue: EventQueue) -> None:
    assert event_queue.depth() == 0
    event_queue.send([event(i) for i in range(4)])
    assert event_queue.depth() == 4
    event_queue.purge()
    assert event_queue.depth() == 0
    assert event_queue.exists()
    event_queue.send([event(99)])  # the queue still works after a purge
    assert [e.event["task_id"] for e in drain(event_queue, 1)] == ["t99"]


def test_an_event_that_is_not_json_is_refused(queue_kit: QueueKit, event_queue: EventQueue) -> None:
    if not queue_kit.checks_bodies:
        pytest.skip(f"the {queue_kit.kind} queues never serialize events")
    with pytest.raises(ProviderError):
        event_queue.send([{"bad": object()}])


def test_a_missing_event_queue_raises_queue_not_found(queue_kit: QueueKit) -> None:
    queue = queue_kit.make_events(f"{queue_kit.new_name()}-events")
    with pytest.raises(QueueNotFoundError, match=queue.name):
        queue.send([event(0)])
    with pytest.raises(QueueNotFoundError, match=queue.name):
        queue.receive(1)


def test_a_view_that_never_waits_shares_the_event_queue(
    queue_kit: QueueKit, event_queue: EventQueue
) -> None:
    view = event_queue.without_waiting()
    if view is None:
        pytest.skip(f"{queue_kit.kind}: no view that never waits")
    assert view.without_waiting() is view
    for _ in range(100):  # the view may decline a call now and then
        try:
            view.send([event(1), event(2)])
            break
        except QueueBusyError:
            time.sleep(0.01)
    got = drain(event_queue, 2)
    assert [e.event["task_id"] for e in got] == ["t1", "t2"]
    with pytest.raises(QueueBusyError):
        view.receive(1, wait_s=5.0)
