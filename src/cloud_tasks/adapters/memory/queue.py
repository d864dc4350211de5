"""In-process task and event queues (SPEC §9) implementing the ``TaskQueue``/``EventQueue`` ports.

Thread-safe; visibility timeouts run on an injected ``Clock`` (virtual in simulations). Queues
live in an ``InMemoryQueueService`` so that two adapter objects with the same name see the same
messages, as two processes see one SQS queue; each adapter gets a private service by default.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from cloud_tasks.adapters._bodies import encode_envelopes, encode_events
from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.domain.tasks import SQS_MAX_MESSAGE_BYTES, Envelope
from cloud_tasks.exceptions import NotSupportedError, ProviderError, QueueNotFoundError
from cloud_tasks.ports import Clock, Lease, ReceivedEvent, ReceivedTask


@attrs.define
class _Message:
    message_id: int
    body: str
    visible_at: float = 0.0
    delivery_count: int = 0
    receipt: str | None = None


@attrs.define
class _Store:
    messages: dict[int, _Message] = attrs.field(factory=dict)


class InMemoryQueueService:
    """The named queues of one simulated provider, shared by every adapter given it."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.stores: dict[str, _Store] = {}
        self.ids = itertools.count(1)


class _MemoryQueueBase:
    """Shared storage, leases and waiting for the task and event queues."""

    def __init__(self, name: str, clock: Clock | None, service: InMemoryQueueService | None):
        self.name = name
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._service = service if service is not None else InMemoryQueueService()
        self._cond = self._service.lock

    def create(self) -> None:
        """Create the queue if missing (idempotent)."""
        with self._cond:
            self._service.stores.setdefault(self.name, _Store())

    def exists(self) -> bool:
        with self._cond:
            return self.name in self._service.stores

    def delete(self) -> None:
        """Delete the queue and everything in it (idempotent)."""
        with self._cond:
            self._service.stores.pop(self.name, None)

    def depth(self) -> int:
        """Messages not yet acknowledged: visible plus leased (exact)."""
        with self._cond:
            return len(self._store().messages)

    def purge(self) -> None:
        with self._cond:
            self._store().messages.clear()

    def without_waiting(self) -> None:
        """None: it stands in for a cloud queue, so callers use it as they use one."""
        return None

    def _store(self) -> _Store:
        store = self._service.stores.get(self.name)
        if store is None:
            raise QueueNotFoundError(f"queue {self.name!r} does not exist; create it first")
        return store

    def _put(self, bodies: Sequence[str]) -> None:
        with self._cond:
            store = self._store()
            for body in bodies:
                message_id = next(self._service.ids)
                store.messages[message_id] = _Message(message_id, body)
            self._cond.notify_all()

    def _lease(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float
    ) -> list[_Message]:
        # Waiting is in real time (a receive call blocks a real thread); leases use the clock.
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._cond:
            while True:
                store = self._store()
                now = self._clock.now()
                leased: list[_Message] = []
                for message in store.messages.values():
                    if len(leased) >= max_messages:
                        break
                    if message.visible_at <= now:
                        message.delivery_count += 1
                        message.visible_at = now + max(0.0, visibility_timeout_s)
                        message.receipt = (
                            f"{self.name}:{message.message_id}:{message.delivery_count}"
                        )
                        leased.append(message)
                if leased or max_messages <= 0:
                    return leased
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                # Wake up now and then so leases expiring on the clock are noticed.
                self._cond.wait(min(remaining, 0.05))

    def _find(self, receipt: str) -> _Message | None:
        """The message ``receipt`` was issued for, or None when it is gone."""
        try:
            _, message_id, _ = receipt.rsplit(":", 2)
            key = int(message_id)
        except ValueError as exc:
            raise ProviderError(f"queue {self.name!r}: malformed receipt {receipt!r}") from exc
        return self._store().messages.get(key)

    def _ack(self, receipt: str) -> None:
        with self._cond:
            message = self._find(receipt)
            if message is not None:
                # Like SQS, an older receipt of a message still deletes it: it was processed.
                del self._store().messages[message.message_id]

    def _current(self, receipt: str) -> _Message | None:
        """The message only if ``receipt`` is its current, unexpired lease."""
        message = self._find(receipt)
        if message is None or message.receipt != receipt:
            return None
        if message.visible_at <= self._clock.now():
            return None
        return message


class InMemoryTaskQueue(_MemoryQueueBase):
    """A ``TaskQueue`` held in memory, with visibility timeouts on a ``Clock``.

    ``extend`` and ``release`` on a receipt whose lease has expired (or was superseded by a
    newer delivery) do nothing: the message already belongs to whoever received it next.
    """

    def __init__(
        self,
        name: str = "tasks",
        *,
        clock: Clock | None = None,
        service: InMemoryQueueService | None = None,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__(name, clock, service)
        self.max_message_bytes = max_message_bytes
        self._failing_receives = 0

    #: Like the cloud queues it stands in for, it keeps no record of loaded task ids.
    remembers_loads = False

    def send(self, envelopes: Sequence[Envelope]) -> None:
        """Store every envelope (all or nothing when one is too large)."""
        self._put(encode_envelopes(self.name, envelopes, self.max_message_bytes))

    def send_once(self, envelopes: Sequence[Envelope]) -> int:
        """Not available (``remembers_loads`` is false)."""
        raise NotSupportedError(
            f"queue {self.name!r} keeps no record of loaded tasks; use send (memory provider)"
        )

    def address(self) -> str:
        """Unique within this process: the queue service and the name."""
        return f"memory||{id(self._service):x}|{self.name}"

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        """Lease up to ``max_messages`` in the order they were sent."""
        with self._cond:
            if self._failing_receives > 0:
                self._failing_receives -= 1
                raise ProviderError(
                    f"queue {self.name!r}: receive failed (a failure asked for with "
                    "fail_receives); the next calls may succeed"
                )
            return [
                ReceivedTask(Envelope.decode(m.body), m.receipt or "", m.delivery_count)
                for m in self._lease(max_messages, visibility_timeout_s, wait_s)
            ]

    def fail_receives(self, count: int) -> None:
        """Make the next ``count`` ``receive`` calls on this adapter raise ``ProviderError``, as
        a cloud queue does while its service has an outage (to try a worker's recovery)."""
        with self._cond:
            self._failing_receives = max(0, count)

    def extend(self, receipt: str, visibility_timeout_s: float) -> Lease:
        with self._cond:
            message = self._current(receipt)
            if message is None:
                return Lease.LOST if self._find(receipt) is not None else Lease.GONE
            message.visible_at = self._clock.now() + max(0.0, visibility_timeout_s)
            return Lease.HELD

    def ack(self, receipt: str) -> None:
        self._ack(receipt)

    def release(self, receipt: str) -> None:
        with self._cond:
            message = self._current(receipt)
            if message is not None:
                message.visible_at = self._clock.now()
                self._cond.notify_all()

    def requeue(self, message: ReceivedTask) -> None:
        envelope = attrs.evolve(message.envelope, failures=message.envelope.failures + 1)
        with self._cond:
            self.send([envelope])
            self._ack(message.receipt)

    def peek(self) -> list[Envelope]:
        """Every stored message (visible or leased) in send order, without leasing any."""
        with self._cond:
            return [Envelope.decode(m.body) for m in self._store().messages.values()]


class InMemoryEventQueue(_MemoryQueueBase):
    """An ``EventQueue`` held in memory; received events are redelivered unless acknowledged."""

    def __init__(
        self,
        name: str = "tasks-events",
        *,
        clock: Clock | None = None,
        service: InMemoryQueueService | None = None,
        visibility_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(name, clock, service)
        self.visibility_timeout_s = visibility_timeout_s
        self._failing_sends = 0

    def fail_sends(self, count: int) -> None:
        """Make the next ``count`` ``send`` calls on this adapter raise ``ProviderError`` and
        store nothing (to try a worker's recovery from an event queue outage)."""
        with self._cond:
            self._failing_sends = max(0, count)

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Store every event; each must be a JSON object."""
        with self._cond:
            if self._failing_sends > 0:
                self._failing_sends -= 1
                raise ProviderError(
                    f"queue {self.name!r}: send failed (a failure asked for with fail_sends); "
                    "the next calls may succeed"
                )
        self._put(encode_events(self.name, events))

    def receive(self, max_messages: int, wait_s: float = 0.0) -> list[ReceivedEvent]:
        with self._cond:
            return [
                ReceivedEvent(json.loads(m.body), m.receipt or "")
                for m in self._lease(max_messages, self.visibility_timeout_s, wait_s)
            ]

    def ack(self, receipts: Iterable[str]) -> None:
        for receipt in receipts:
            self._ack(receipt)

    def peek(self) -> list[dict[str, Any]]:
        """Every stored event in send order, without leasing any."""
        with self._cond:
            return [json.loads(m.body) for m in self._store().messages.values()]


__all__ = ["InMemoryEventQueue", "InMemoryQueueService", "InMemoryTaskQueue"]
