"""Task and event queues for simulations of millions of tasks (SPEC §9).

Same ports and delivery rules as ``InMemoryTaskQueue``/``InMemoryEventQueue`` (leases on a
``Clock``, receive in send order, ``release``/``requeue``/``ack`` by receipt, unacknowledged
events delivered again), but nothing is serialized: envelopes and event mappings are kept as the
objects given, and every operation costs O(log n) through heaps instead of a scan of the queue.
Meant for one thread driving a simulation on virtual time: ``receive`` never waits.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from cloud_tasks.adapters.clock import SystemClock
from cloud_tasks.domain.tasks import SQS_MAX_MESSAGE_BYTES, Envelope
from cloud_tasks.exceptions import NotSupportedError, ProviderError, QueueNotFoundError
from cloud_tasks.ports import Clock, Lease, ReceivedEvent, ReceivedTask

#: A lease of ``math.inf`` seconds (a holder that keeps extending it) never lapses.
_FOREVER = math.inf


class _Message:
    __slots__ = ("deliveries", "envelope", "queued", "visible_at")

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self.deliveries = 0
        self.visible_at = 0.0
        self.queued = True  # its id is in the visible heap


class CompactTaskQueue:
    """A ``TaskQueue`` of envelope objects with heap-ordered visibility (see module docstring).

    Receipts are ``"<message>:<delivery>"``; ``extend``/``release`` of a receipt that is not
    the message's current, unexpired lease do nothing, and any receipt of a message acks it.
    """

    def __init__(
        self,
        name: str = "tasks",
        *,
        clock: Clock | None = None,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
    ) -> None:
        self.name = name
        self.max_message_bytes = max_message_bytes
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._exists = False
        self._messages: dict[int, _Message] = {}
        # Visible message ids, oldest first: never-delivered ones in a deque (ids only grow),
        # returned ones (released, lapsed) in a heap. Every returned id was taken from the
        # front of the deque before, so it is older than any id still in the deque: receive
        # drains the heap first, and sending and receiving fresh messages cost O(1).
        self._fresh: collections.deque[int] = collections.deque()
        self._visible: list[int] = []
        self._leases: list[tuple[float, int]] = []  # (visible again at, message id)
        self._ids = itertools.count(1)

    def create(self) -> None:
        self._exists = True

    def exists(self) -> bool:
        return self._exists

    def delete(self) -> None:
        self._exists = False
        self.purge_all()

    def _check(self) -> None:
        if not self._exists:
            raise QueueNotFoundError(f"queue {self.name!r} does not exist; create it first")

    def purge_all(self) -> None:
        self._messages.clear()
        self._fresh.clear()
        self._visible.clear()
        self._leases.clear()

    remembers_loads = False

    def send_once(self, envelopes: Sequence[Envelope]) -> int:
        """Not available (``remembers_loads`` is false)."""
        raise NotSupportedError(
            f"queue {self.name!r} keeps no record of loaded tasks; use send (memory provider)"
        )

    def address(self) -> str:
        """Unique within this process: every compact queue is a queue of its own."""
        return f"memory||{id(self):x}|{self.name}"

    def send(self, envelopes: Sequence[Envelope]) -> None:
        self._check()
        messages = self._messages
        fresh = self._fresh
        ids = self._ids
        for envelope in envelopes:
            message_id = next(ids)
            messages[message_id] = _Message(envelope)
            fresh.append(message_id)

    def _expire(self, now: float) -> None:
        leases = self._leases
        messages = self._messages
        while leases and leases[0][0] <= now:
            at, message_id = heapq.heappop(leases)
            message = messages.get(message_id)
            if message is not None and message.visible_at == at and not message.queued:
                message.queued = True
                heapq.heappush(self._visible, message_id)

    def receive(
        self, max_messages: int, visibility_timeout_s: float, wait_s: float = 0.0
    ) -> list[ReceivedTask]:
        """Lease up to ``max_messages`` visible messages, oldest first (never waits)."""
        if not self._exists:
            self._check()
        now = self._clock.now()
        leases = self._leases
        if leases and leases[0][0] <= now:
            self._expire(now)
        received: list[ReceivedTask] = []
        visible = self._visible
        fresh = self._fresh
        if not visible and not fresh:
            return received
        messages = self._messages
        lease_until = now + visibility_timeout_s if visibility_timeout_s > 0 else now
        pop, push, append = heapq.heappop, heapq.heappush, received.append
        popleft = fresh.popleft
        wanted = max_messages
        while wanted > 0 and (visible or fresh):
            message_id = pop(visible) if visible else popleft()
            message = messages.get(message_id)
            if message is None:
                continue
            message.queued = False
            deliveries = message.deliveries = message.deliveries + 1
            message.visible_at = lease_until
            if lease_until != _FOREVER:  # a lease that never lapses needs no expiry entry
                push(leases, (lease_until, message_id))
            append(ReceivedTask(message.envelope, f"{message_id}:{deliveries}", deliveries))
            wanted -= 1
        return received

    def _lookup(self, receipt: str) -> tuple[int, int]:
        try:
            message_id, delivery = receipt.split(":")
            return int(message_id), int(delivery)
        except ValueError:
            raise ProviderError(f"queue {self.name!r}: malformed receipt {receipt!r}") from None

    def _current(self, receipt: str) -> tuple[int, _Message] | None:
        message_id, delivery = self._lookup(receipt)
        message = self._messages.get(message_id)
        if (
            message is None
            or message.queued
            or message.deliveries != delivery
            or message.visible_at <= self._clock.now()
        ):
            return None
        return message_id, message

    def extend(self, receipt: str, visibility_timeout_s: float) -> Lease:
        self._check()
        current = self._current(receipt)
        if current is None:
            return Lease.LOST if self._lookup(receipt)[0] in self._messages else Lease.GONE
        message_id, message = current
        message.visible_at = self._clock.now() + max(0.0, visibility_timeout_s)
        heapq.heappush(self._leases, (message.visible_at, message_id))
        return Lease.HELD

    def ack(self, receipt: str) -> None:
        if not self._exists:
            self._check()
        # Like SQS, an older receipt of a message still deletes it: it was processed.
        message_id, colon, delivery = receipt.partition(":")
        if colon and message_id.isdigit() and delivery.isdigit():
            self._messages.pop(int(message_id), None)
        else:
            # Raises the malformed-receipt error, or reads what int() accepts (" 7:1").
            self._messages.pop(self._lookup(receipt)[0], None)

    def release(self, receipt: str) -> None:
        self._check()
        current = self._current(receipt)
        if current is not None:
            message_id, message = current
            message.visible_at = self._clock.now()
            message.queued = True
            heapq.heappush(self._visible, message_id)

    def requeue(self, message: ReceivedTask) -> None:
        envelope = attrs.evolve(message.envelope, failures=message.envelope.failures + 1)
        self.send([envelope])
        self.ack(message.receipt)

    def depth(self) -> int:
        """Visible plus leased messages."""
        self._check()
        return len(self._messages)

    def visible(self) -> int:
        """Messages that a ``receive`` now could return (an upper bound before expiry)."""
        return len(self._visible) + len(self._fresh)

    def purge(self) -> None:
        self._check()
        self.purge_all()

    def without_waiting(self) -> None:
        """None: the one thread driving a simulation makes every call itself."""
        return None


class CompactEventQueue:
    """An ``EventQueue`` holding event mappings as given; unacknowledged events come back
    after ``visibility_timeout_s``. A receipt is a number of its own per delivery (event ids
    and receipts are drawn from one counter)."""

    def __init__(
        self,
        name: str = "tasks-events",
        *,
        clock: Clock | None = None,
        visibility_timeout_s: float = 30.0,
    ) -> None:
        self.name = name
        self.visibility_timeout_s = visibility_timeout_s
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._exists = False
        self._waiting: collections.deque[tuple[int, Mapping[str, Any]]] = collections.deque()
        self._unacked: dict[str, tuple[float, int, Mapping[str, Any]]] = {}
        self._ids = itertools.count(1)

    def create(self) -> None:
        self._exists = True

    def exists(self) -> bool:
        return self._exists

    def delete(self) -> None:
        self._exists = False
        self._waiting.clear()
        self._unacked.clear()

    def _check(self) -> None:
        if not self._exists:
            raise QueueNotFoundError(f"queue {self.name!r} does not exist; create it first")

    def send(self, events: Sequence[Mapping[str, Any]]) -> None:
        self._check()
        ids = self._ids
        self._waiting.extend((next(ids), event) for event in events)

    def receive(self, max_messages: int, wait_s: float = 0.0) -> list[ReceivedEvent]:
        self._check()
        now = self._clock.now()
        received: list[ReceivedEvent] = []
        if self._unacked:
            for receipt, (deadline, event_id, event) in list(self._unacked.items()):
                if deadline <= now and len(received) < max_messages:
                    del self._unacked[receipt]
                    self._deliver(received, event_id, event, now)
        waiting = self._waiting
        count = min(len(waiting), max_messages - len(received))
        if count > 0:
            # _deliver inlined: simulations push millions of events through here.
            ids, unacked, popleft = self._ids, self._unacked, waiting.popleft
            deadline = now + self.visibility_timeout_s
            append = received.append
            for _ in range(count):
                event_id, event = popleft()
                receipt = str(next(ids))
                unacked[receipt] = (deadline, event_id, event)
                append(ReceivedEvent(event, receipt))
        return received

    def _deliver(
        self, received: list[ReceivedEvent], event_id: int, event: Mapping[str, Any], now: float
    ) -> None:
        receipt = str(next(self._ids))
        self._unacked[receipt] = (now + self.visibility_timeout_s, event_id, event)
        received.append(ReceivedEvent(event, receipt))

    def ack(self, receipts: Iterable[str]) -> None:
        self._check()
        unacked = self._unacked
        for receipt in receipts:
            unacked.pop(receipt, None)

    def depth(self) -> int:
        return len(self._waiting) + len(self._unacked)

    def purge(self) -> None:
        self._check()
        self._waiting.clear()
        self._unacked.clear()

    def without_waiting(self) -> None:
        """None: the one thread driving a simulation makes every call itself."""
        return None


__all__ = ["CompactEventQueue", "CompactTaskQueue"]
