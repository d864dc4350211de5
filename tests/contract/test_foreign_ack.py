"""Acking a delivery from another client (ports.TaskQueue), on every adapter.

The pool manager stops the losing run of a task run twice by acking that run's delivery with
the receipt the worker reported (service_layer.deliveries): the ack comes from the manager's
client, not the worker's, and may race with the winner's own ack of the same message.
SQS gets a second boto3 client and Pub/Sub a second subscriber client, as the manager has.
"""

from __future__ import annotations

import time

import pytest

from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.ports import Lease, TaskQueue
from tests.contract.conftest import QueueKit
from tests.contract.test_task_queue import LONG_LEASE_S, QUIET_WAIT_S, drain

pytestmark = pytest.mark.filterwarnings("ignore:.*return_immediately:DeprecationWarning")

SHORT_LEASE_S = 1.0


@pytest.fixture
def manager_client(request: pytest.FixtureRequest, queue_kit: QueueKit, task_queue: TaskQueue):
    """The task queue as a second process sees it, through a client of its own."""
    if queue_kit.kind == "sqs":
        from cloud_tasks.adapters.aws.sqs import SqsTaskQueue, build_sqs_client

        return SqsTaskQueue(
            task_queue.name, client=build_sqs_client("us-east-1"), region="us-east-1"
        )
    if queue_kit.kind == "pubsub":
        from cloud_tasks.adapters.gcp.pubsub import PubSubTaskQueue, build_pubsub_clients

        publisher, subscriber = build_pubsub_clients()
        return PubSubTaskQueue(
            task_queue.name,
            project_id=request.getfixturevalue("pubsub_emulator").project_id,
            publisher=publisher,
            subscriber=subscriber,
        )
    return queue_kit.make_tasks(task_queue.name)


def test_a_delivery_acked_by_another_client_is_gone_and_never_delivered_again(
    queue_kit: QueueKit, task_queue: TaskQueue, manager_client: TaskQueue
) -> None:
    task_queue.send([Envelope(Task("t", {"n": 1}))])
    (run,) = drain(task_queue, 1, visibility_s=SHORT_LEASE_S)
    manager_client.ack(run.receipt)
    found = task_queue.extend(run.receipt, SHORT_LEASE_S)
    # Pub/Sub takes a new deadline for an acked message: its loser is not told (ports.Lease).
    assert found is (Lease.GONE if queue_kit.reports_gone else Lease.HELD)
    time.sleep(SHORT_LEASE_S + 0.2)  # past any lease the extend may have set
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []


def test_the_loser_of_two_copies_is_acked_and_the_winner_keeps_its_lease(
    queue_kit: QueueKit, task_queue: TaskQueue, manager_client: TaskQueue
) -> None:
    task_queue.send([Envelope(Task("t", {})), Envelope(Task("t", {}))])  # a task and its copy
    winner, loser = drain(task_queue, 2)
    assert winner.task_id == loser.task_id == "t" and winner.receipt != loser.receipt
    manager_client.ack(loser.receipt)
    assert task_queue.extend(winner.receipt, LONG_LEASE_S) is Lease.HELD
    if queue_kit.reports_gone:
        assert task_queue.extend(loser.receipt, LONG_LEASE_S) is Lease.GONE
    task_queue.ack(winner.receipt)
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []


@pytest.mark.parametrize("first", ["worker", "manager"])
def test_the_winner_and_the_manager_may_both_ack_a_delivery_in_either_order(
    task_queue: TaskQueue, manager_client: TaskQueue, first: str
) -> None:
    task_queue.send([Envelope(Task("won", {})), Envelope(Task("other", {}))])
    got = {m.task_id: m for m in drain(task_queue, 2, visibility_s=SHORT_LEASE_S)}
    receipt = got["won"].receipt
    clients = [task_queue, manager_client] if first == "worker" else [manager_client, task_queue]
    for client in clients:
        client.ack(receipt)  # the second ack finds nothing to delete: no error
    time.sleep(SHORT_LEASE_S + 0.2)
    # Only the acked message is gone: the other one comes back when its lease lapses.
    assert [m.task_id for m in drain(task_queue, 1)] == ["other"]
    assert task_queue.receive(10, LONG_LEASE_S, wait_s=QUIET_WAIT_S) == []
