"""One queue contract, every adapter: memory, the simulator's compact queues, SQLite, SQS on
moto, Pub/Sub on the emulator.

``queue_kit`` hands each test factories for task and event queues of one adapter. Every call
of a factory builds a new adapter object, so two of them act like two processes sharing a
queue (the compact queues hold their messages in the object itself: their factories hand out
one object per name).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cloud_tasks.ports import EventQueue, TaskQueue

ADAPTERS = ["memory", "compact", "sqlite", "sqs", "pubsub"]

# A short lease for the event queue so tests can watch unacknowledged events come back.
EVENT_VISIBILITY_S = 1.0


@attrs.frozen
class QueueKit:
    """Factories for one adapter, plus what the contract may differ on."""

    kind: str
    #: The provider the adapter belongs to (the first part of a queue's address).
    provider: str
    make_tasks: Callable[[str], TaskQueue]
    make_events: Callable[[str], EventQueue]
    # Pub/Sub has no backlog API offline: its depth counts visible messages only (see
    # docs/queues.md). Every other adapter counts leased messages too.
    depth_counts_leased: bool = True
    # SQS standard queues and Pub/Sub deliver at least once: under concurrent receivers the same
    # message may, rarely, be handed out twice. SQLite and memory lease each message to one
    # receiver at a time.
    exclusive_leases: bool = True
    # The compact queues serve one thread driving a simulation on virtual time: receive never
    # waits, and nothing may call them from two threads.
    shared_across_threads: bool = True
    # The compact queues keep envelopes and events as the objects given and never serialize
    # them, so they refuse neither an oversized task nor an event that is not JSON: checking
    # would cost simulate seconds of CPU per million tasks.
    checks_bodies: bool = True
    # Pub/Sub accepts a new ack deadline for an acked message without an error, so ``extend``
    # cannot tell that a message is gone there (ports.Lease); every other adapter can.
    reports_gone: bool = True

    def new_name(self) -> str:
        return f"q{uuid.uuid4().hex[:10]}"


def _memory_kit() -> QueueKit:
    queue_module = pytest.importorskip(
        "cloud_tasks.adapters.memory.queue", reason="the in-memory queue is not built yet"
    )
    service = queue_module.InMemoryQueueService()
    return QueueKit(
        "memory",
        "memory",
        lambda name: queue_module.InMemoryTaskQueue(name, service=service),
        lambda name: queue_module.InMemoryEventQueue(
            name, service=service, visibility_timeout_s=EVENT_VISIBILITY_S
        ),
    )


def _compact_kit() -> QueueKit:
    from cloud_tasks.adapters.memory.compact_queue import CompactEventQueue, CompactTaskQueue

    tasks: dict[str, CompactTaskQueue] = {}
    events: dict[str, CompactEventQueue] = {}
    return QueueKit(
        "compact",
        "memory",
        lambda name: tasks.setdefault(name, CompactTaskQueue(name)),
        lambda name: events.setdefault(
            name, CompactEventQueue(name, visibility_timeout_s=EVENT_VISIBILITY_S)
        ),
        shared_across_threads=False,
        checks_bodies=False,
    )


def _sqlite_kit(path: Path) -> QueueKit:
    from cloud_tasks.adapters.local.sqlite_queue import SqliteEventQueue, SqliteTaskQueue

    return QueueKit(
        "sqlite",
        "local",
        lambda name: SqliteTaskQueue(path, name),
        lambda name: SqliteEventQueue(path, name, visibility_timeout_s=EVENT_VISIBILITY_S),
    )


def _sqs_kit() -> QueueKit:
    from cloud_tasks.adapters.aws.sqs import SqsEventQueue, SqsTaskQueue, build_sqs_client

    client = build_sqs_client("us-east-1")
    return QueueKit(
        "sqs",
        "aws",
        lambda name: SqsTaskQueue(name, client=client, region="us-east-1"),
        lambda name: SqsEventQueue(
            name, client=client, region="us-east-1", visibility_timeout_s=EVENT_VISIBILITY_S
        ),
        exclusive_leases=False,
    )


def _pubsub_kit(project_id: str) -> QueueKit:
    from cloud_tasks.adapters.gcp.pubsub import (
        PubSubEventQueue,
        PubSubTaskQueue,
        build_pubsub_clients,
    )

    publisher, subscriber = build_pubsub_clients()
    return QueueKit(
        "pubsub",
        "gcp",
        lambda name: PubSubTaskQueue(
            name, project_id=project_id, publisher=publisher, subscriber=subscriber
        ),
        lambda name: PubSubEventQueue(
            name,
            project_id=project_id,
            publisher=publisher,
            subscriber=subscriber,
            visibility_timeout_s=EVENT_VISIBILITY_S,
        ),
        depth_counts_leased=False,
        exclusive_leases=False,
        reports_gone=False,
    )


@pytest.fixture(params=ADAPTERS)
def queue_kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueKit]:
    kind: str = request.param
    if kind == "memory":
        yield _memory_kit()
    elif kind == "compact":
        yield _compact_kit()
    elif kind == "sqlite":
        yield _sqlite_kit(tmp_path / "queues.sqlite3")
    elif kind == "sqs":
        request.getfixturevalue("moto_server")
        yield _sqs_kit()
    else:
        emulator: Any = request.getfixturevalue("pubsub_emulator")
        yield _pubsub_kit(emulator.project_id)


@pytest.fixture
def task_queue(queue_kit: QueueKit) -> Iterator[TaskQueue]:
    """A freshly created task queue."""
    queue = queue_kit.make_tasks(queue_kit.new_name())
    queue.create()
    yield queue
    queue.delete()


@pytest.fixture
def event_queue(queue_kit: QueueKit) -> Iterator[EventQueue]:
    """A freshly created event queue."""
    queue = queue_kit.make_events(f"{queue_kit.new_name()}-events")
    queue.create()
    yield queue
    queue.delete()
