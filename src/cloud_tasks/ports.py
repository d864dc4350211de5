"""The ports: interfaces every adapter implements (SPEC §1, §2).

Ports are synchronous; SDK calls block. The worker and the pool manager own an asyncio loop and
call ports off-loop (``asyncio.to_thread``), except through a queue's ``without_waiting`` view,
whose calls never wait and so are made on the loop's thread. Every adapter translates its SDK's
errors into ``cloud_tasks.exceptions`` at the boundary. The contract suites in
``tests/contract/`` enforce the semantics stated here on every adapter.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Literal, Protocol, runtime_checkable

import attrs

from cloud_tasks.domain.offers import InstanceOffer
from cloud_tasks.domain.tasks import SQS_MAX_MESSAGE_BYTES, Envelope, Task
from cloud_tasks.domain.taskstate import IngestResult, InstanceRecord, TaskCounts
from cloud_tasks.locations import Location

#: The largest event (compact JSON, UTF-8) any ``EventQueue`` takes: the smallest limit of any
#: provider (SQS, 256 KiB), on every provider, so a worker behaves the same on all of them.
MAX_EVENT_BYTES = SQS_MAX_MESSAGE_BYTES


@attrs.frozen
class ReceivedTask:
    """A task as delivered by a queue.

    ``receipt`` identifies this delivery (not the task) for extend/ack/release/requeue.
    ``delivery_count`` counts deliveries of this message including this one; because an
    application failure re-sends the task as a new message (see ``TaskQueue.requeue``), it
    counts only deliveries lost to preemption, lost leases or shutdowns, plus one.
    ``envelope.failures`` counts application failures so far.
    """

    envelope: Envelope
    receipt: str
    delivery_count: int = 1

    @property
    def task_id(self) -> str:
        return self.envelope.task.task_id

    @property
    def data(self) -> Mapping[str, Any]:
        return self.envelope.task.data

    @property
    def attempt(self) -> int:
        """Application attempt number, 1 for the first try."""
        return self.envelope.failures + 1


class Lease(enum.Enum):
    """What ``TaskQueue.extend`` found when it tried to renew a lease."""

    #: The lease now runs from now (or the provider cannot tell that it does not: Pub/Sub).
    HELD = "held"
    #: The receipt is not the message's current lease (it lapsed, was released, or another
    #: delivery holds the message); nothing changed, and the message may be received again.
    LOST = "lost"
    #: The message was deleted: its task was settled through another delivery (a duplicate
    #: that acked first) or requeued; whoever runs this delivery runs a task finished elsewhere.
    GONE = "gone"


@runtime_checkable
class TaskQueue(Protocol):
    """A durable queue of tasks with at-least-once delivery and visibility timeouts.

    Semantics every adapter honours:

    - ``send`` is at-least-once: after it returns, every task is stored.
    - A received message is hidden from other receivers until its visibility timeout (lease)
      expires, then it is delivered again (``delivery_count`` + 1).
    - ``extend`` restarts the lease from now; a lease extended in time is never redelivered.
      It returns a ``Lease``: ``GONE`` once the message was deleted through any receipt (where
      the provider can tell: not Pub/Sub), ``LOST`` when the receipt no longer holds it.
    - ``ack`` removes the message; acking twice, or acking an expired receipt whose message was
      already acked, is not an error.
    - ``release`` makes the message visible again at once without touching ``failures``.
    - ``requeue`` records one application failure: it sends the task again with
      ``failures + 1`` and then acks the delivery (send first, so nothing is lost on a crash).
    - ``depth`` is approximate: visible plus leased messages.
    - ``send_once`` exists only where ``remembers_loads`` is true (the SQLite queue); elsewhere
      it raises ``NotSupportedError`` and a loader keeps its own record of loaded ids.
    - Operations on a queue that does not exist raise ``QueueNotFoundError``.
    - ``without_waiting`` is a view of the same queue for callers that must not wait (an
      event loop's thread), or ``None`` where the adapter has none (a queue over a network).
    """

    name: str
    max_message_bytes: int
    #: True when the queue itself records which task ids were ever loaded (``send_once``).
    remembers_loads: bool

    def create(self) -> None:
        """Create the queue if missing (idempotent)."""

    def exists(self) -> bool: ...

    def delete(self) -> None:
        """Delete the queue and everything in it (idempotent)."""

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Store every envelope; batches as the service allows."""

    def send_once(self, envelopes: Sequence[Envelope]) -> int:
        """Send only the tasks never loaded into this queue before; returns how many were sent.

        Raises:
            NotSupportedError: ``remembers_loads`` is false.
        """

    def address(self) -> str:
        """Where the queue lives: provider, endpoint, region/project or file, and name; two
        queues with the same address are the same queue (it keys a loader's record)."""

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        """Lease up to ``max_messages``; waits up to ``wait_s`` for the first one."""

    def extend(self, receipt: str, visibility_timeout_s: float) -> Lease:
        """Restart the lease of ``receipt`` from now; what was found (see ``Lease``)."""

    def ack(self, receipt: str) -> None: ...

    def release(self, receipt: str) -> None: ...

    def requeue(self, message: ReceivedTask) -> None: ...

    def depth(self) -> int: ...

    def purge(self) -> None: ...

    def without_waiting(self) -> TaskQueue | None:
        """This queue for a caller that must never wait, or ``None`` when the adapter has no
        such view (a cloud queue, whose every call is a request over a network).

        A call through the view never waits: where the queue would (another process holds
        its lock, ``receive`` finds nothing yet and ``wait_s`` asks to wait, or housekeeping
        that may sync the disk is due) the view does nothing and raises ``QueueBusyError``,
        and the caller makes the same call on the queue itself, off its loop. The view and the
        queue see the same messages and receipts.
        """


@attrs.frozen
class ReceivedEvent:
    """An event as delivered by an event queue; ``receipt`` is for ``ack``."""

    event: Mapping[str, Any]
    receipt: str


@runtime_checkable
class EventQueue(Protocol):
    """The ``<queue>-events`` queue workers report to (SPEC §10 events, as JSON objects).

    At-least-once like ``TaskQueue``; consumers must tolerate duplicates. ``send`` refuses
    (``ProviderError``, before any is sent) an event larger than ``MAX_EVENT_BYTES``. ``depth``
    is approximate (unread plus leased events); ``purge`` removes every event and keeps the
    queue. ``without_waiting`` is as for ``TaskQueue``.
    """

    name: str

    def create(self) -> None: ...

    def exists(self) -> bool: ...

    def delete(self) -> None: ...

    def send(self, events: Sequence[Mapping[str, Any]]) -> None: ...

    def receive(self, max_messages: int, wait_s: float = 0.0) -> list[ReceivedEvent]: ...

    def ack(self, receipts: Iterable[str]) -> None: ...

    def depth(self) -> int: ...

    def purge(self) -> None: ...

    def without_waiting(self) -> EventQueue | None:
        """This queue for a caller that must never wait, or ``None`` (see ``TaskQueue``)."""


class InstanceState(enum.Enum):
    """Lifecycle of a VM as the pool manager sees it."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    TERMINATED = "terminated"
    PREEMPTED = "preempted"
    FAILED = "failed"


@attrs.frozen
class InstanceSpec:
    """Everything needed to launch one instance of a job."""

    job_id: str
    instance_type: str
    zone: str
    image: str
    startup_script: str
    use_spot: bool
    boot_disk_gb: int
    boot_disk_type: str | None = None
    service_account: str | None = None
    #: The expected hourly price; recorded on the instance (tag/label) so listings can show it.
    price_per_hour_usd: float | None = None
    #: GPUs of the type (built in, or attached at launch when ``attach_gpus``, as GCP N1 needs).
    gpus: int = 0
    gpu_type: str | None = None
    attach_gpus: bool = False


@attrs.frozen
class Instance:
    """A VM (or local process group) started by Cloud Tasks and tagged with its job id."""

    instance_id: str
    name: str
    job_id: str
    instance_type: str
    zone: str
    state: InstanceState
    is_spot: bool = False
    price_per_hour_usd: float = 0.0
    launched_at: float = 0.0


@attrs.frozen
class Region:
    name: str
    zones: tuple[str, ...] = ()
    description: str = ""


@attrs.frozen
class Image:
    name: str
    architecture: str
    description: str = ""
    created: str = ""


class Compute(Protocol):
    """Starts, lists and stops a job's instances; every query is scoped by job tags/labels.

    ``create_instance(s)`` raise ``CapacityError`` (try another zone or type), ``QuotaError``,
    or ``RejectedError`` when the request can never succeed (an unknown image or type, an
    invalid network...; the message names the setting to fix). ``terminate`` is idempotent
    and also deletes preempted or failed instances.
    """

    provider: str

    def create_instance(self, spec: InstanceSpec) -> Instance: ...

    def create_instances(self, spec: InstanceSpec, count: int) -> list[Instance]:
        """Start up to ``count`` instances of ``spec`` in as few API calls as the provider
        allows (one ``RunInstances`` on EC2, one ``bulkInsert`` on Compute Engine).

        Returns the instances started: fewer than ``count`` (never none) when the provider had
        capacity for fewer. Raises like ``create_instance`` when none started, and
        ``ValueError`` when ``count`` is below 1.
        """

    def list_instances(self, job_id: str | None) -> list[Instance]:
        """This job's instances, or every managed instance when ``job_id`` is None."""

    def terminate(self, instance_ids: Sequence[str]) -> None: ...

    def list_regions(self) -> list[Region]: ...

    def list_images(self, architecture: str | None = None) -> list[Image]: ...

    def default_image(self, architecture: str) -> str: ...

    def startup_log_hint(self, instance_id: str) -> str | None:
        """Where to read an instance's startup script output (a command or a file), for the
        message about a broken script; ``None`` when there is nothing better than the console."""


CheckStatus = Literal["ok", "fail", "warn"]


@attrs.frozen
class CheckResult:
    """One preflight check: ``ok``, ``fail`` (the job cannot work as configured; ``fix``
    says what to change) or ``warn`` (it could not be verified, or may limit the job)."""

    name: str
    status: CheckStatus
    detail: str
    fix: str = ""


@attrs.frozen
class PreflightRequest:
    """What a job will ask of its provider, for ``Preflight.checks``."""

    region: str
    zone: str
    image: str
    architecture: str
    instance_type: str
    vcpus_per_instance: int
    instances: int
    use_spot: bool
    service_account: str | None = None


class Preflight(Protocol):
    """Checks, before anything is created, that the provider will accept the job: credentials,
    permissions, image, quotas, the workers' credentials. Never raises for a check that fails
    or cannot be verified: that is a ``fail`` or ``warn`` result."""

    def checks(self, request: PreflightRequest) -> list[CheckResult]: ...


class Pricing(Protocol):
    """Instance types with on-demand and spot prices for a region."""

    provider: str

    def offers(self, region: str, *, refresh: bool = False) -> list[InstanceOffer]:
        """Every offer in ``region``; per-zone offers where spot prices differ by zone."""

    def default_region(self) -> str:
        """The region a job uses when none is configured."""


class InstanceMetadata(Protocol):
    """What the VM knows about itself (IMDSv2 on AWS, the metadata server on GCP)."""

    def instance_id(self) -> str | None: ...

    def termination_notice(self) -> bool:
        """True once the provider has announced that this spot VM will be reclaimed."""


class Clock(Protocol):
    """Time, passed in so tests and ``simulate`` can run on virtual time."""

    def now(self) -> float:
        """Seconds since the epoch (or since the start of a simulation)."""

    async def sleep(self, seconds: float) -> None: ...


class CheckpointStore(Protocol):
    """Bytes by key in a folder or a bucket prefix, for task checkpoints.

    ``put`` replaces the whole value at once (a reader sees the old or the new bytes, never a
    mix); ``get`` returns None for a missing key; ``delete`` of a missing key is not an error.
    """

    location: str

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class TaskSource(Protocol):
    """Task files at one kind of location (a local path, S3, Cloud Storage, a web server).

    ``open`` makes the request at once, so a missing, forbidden or unreachable file fails before
    anything is read, and returns a read-only binary stream the caller reads chunk by chunk (a
    remote file is never held in memory whole); closing it releases every connection. Each call
    is one read of the file: a caller that needs the tasks twice keeps them itself. Failures,
    at open or while reading, are ``TaskFileError`` naming ``location.display``
    (``CredentialsError`` when no credentials exist, ``ProviderError`` when the cloud's SDK is
    not installed); no SDK exception escapes.
    """

    def open(self, location: Location) -> IO[bytes]: ...


class TaskStore(Protocol):
    """The task and instance bookkeeping the pool manager reads and writes (SPEC §13).

    ``TaskDatabase`` (SQLite, one row per task and every event) satisfies it for real runs,
    ``InMemoryTaskStore`` for simulations and dry runs; both apply ``domain.taskstate``.
    ``ingest`` takes events as they arrive (JSON objects, possibly forged or malformed) and
    refuses those ``domain.events.decode`` refuses (only a store built for ``simulate``'s
    in-process event queue, which nothing else can write to, is told to trust its events).
    """

    def counts(self) -> TaskCounts: ...

    def counts_with_running(self) -> TaskCounts: ...

    def spend_usd(self, now: float) -> float: ...

    def set_meta(self, **values: Any) -> None: ...

    def ingest(self, events: Sequence[Mapping[str, Any]], now: float) -> IngestResult: ...

    def instances(self, *, active_only: bool = False) -> list[InstanceRecord]: ...

    def record_instance(self, record: InstanceRecord) -> None: ...

    def end_instance(self, instance_id: str, ended_at: float, reason: str) -> None: ...

    def unfinished(self) -> list[tuple[Task, int]]: ...

    def states_of(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of ``task_ids`` the store knows (any number of ids)."""

    def mark_resent(self, task_ids: Iterable[str]) -> None: ...

    def fail_tasks(self, task_ids: Iterable[str], now: float, reason: str) -> int: ...

    def preempted_tasks(self, min_preemptions: int) -> int:
        """Unfinished tasks whose runs were lost to preemption at least ``min_preemptions``
        times since their last outcome."""


__all__ = [
    "CheckResult",
    "CheckStatus",
    "CheckpointStore",
    "Clock",
    "Compute",
    "EventQueue",
    "Image",
    "Instance",
    "InstanceMetadata",
    "InstanceSpec",
    "InstanceState",
    "Lease",
    "Preflight",
    "PreflightRequest",
    "Pricing",
    "ReceivedEvent",
    "ReceivedTask",
    "Region",
    "Task",
    "TaskQueue",
    "TaskSource",
    "TaskStore",
]
