"""Simulated workers on simulated VMs, and a driver that runs the pool manager on virtual time.

``EventDrivenWorkers`` plays the worker runtime on every instance of an ``InMemoryCompute``: it
leases tasks from the task queue, "runs" each for a modelled duration, decides what happens
to its message with the worker's own rules (``domain.retry``: ``decide_outcome`` after an
attempt, ``admit_delivery`` before one, the preemption cap when a VM is lost), acts on the
decision (ack, requeue, release) and reports the worker's events (``task_completed``,
``task_exception``, ``task_exited``, ``task_timed_out``, ``task_dead_lettered``,
``task_released``, ``keep_alive``) to the event queue. It watches the compute (creations,
preemptions and terminations are pushed to it, never listed) and keeps one heap of timed
events (a task finishes, a VM is ready, is preempted, hangs, a keep-alive is due), so its work
is O(log n) per event and nothing per idle second.

``run_on_virtual_time`` runs a coroutine (the pool manager) against a ``VirtualClock``, moving
time forward whenever the coroutine is waiting on the clock, so hours of a job run in seconds:
by fixed ticks (``step`` plays the workers up to each tick), or (``tick_s=None``) straight to
the next moment the coroutine wakes up, with ``advance_to`` playing every worker event up to
then at its own time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import attrs

from cloud_tasks.adapters.memory.compute import ComputeChange, InMemoryCompute
from cloud_tasks.domain.events import (
    KEEP_ALIVE,
    TASK_COMPLETED,
    TASK_DEAD_LETTERED,
    TASK_EXCEPTION,
    TASK_EXITED,
    TASK_RELEASED,
    TASK_STARTED,
    TASK_TIMED_OUT,
)
from cloud_tasks.domain.option_schema import default
from cloud_tasks.domain.options import RetryPolicy
from cloud_tasks.domain.retry import (
    DeadLetter,
    Decision,
    OutcomeKind,
    Release,
    Requeue,
    admit_delivery,
    decide_outcome,
)
from cloud_tasks.exceptions import QueueNotFoundError
from cloud_tasks.ports import EventQueue, ReceivedTask, TaskQueue

_T = TypeVar("_T")

#: (task id, task data, attempt) → seconds the task takes.
DurationModel = Callable[[str, Mapping[str, Any], int], float]
#: (task id, task data, attempt) → how that attempt ends (never ``PREEMPTED``: preemptions
#: come from the compute).
OutcomeModel = Callable[[str, Mapping[str, Any], int], OutcomeKind]

_SUCCESS = OutcomeKind.SUCCESS
#: The event that reports an attempt that ended with each outcome (as the worker sends it).
_OUTCOME_EVENT = {
    OutcomeKind.SUCCESS: TASK_COMPLETED,
    OutcomeKind.RETRY_REQUESTED: TASK_COMPLETED,
    OutcomeKind.EXCEPTION: TASK_EXCEPTION,
    OutcomeKind.MEMORY: TASK_EXCEPTION,
    OutcomeKind.EXIT: TASK_EXITED,
    OutcomeKind.TIMEOUT: TASK_TIMED_OUT,
}
#: What a simulated failure reports, as the worker's event fields.
_FAILURE_FIELDS: dict[OutcomeKind, dict[str, Any]] = {
    OutcomeKind.RETRY_REQUESTED: {"success": False, "result": None},
    OutcomeKind.EXCEPTION: {"exception": "SimulatedFailure: the outcome model failed this try"},
    OutcomeKind.MEMORY: {"exception": "MemoryError: simulated"},
    OutcomeKind.EXIT: {"exit_code": 1},
}


class SteppableClock(Protocol):
    """A virtual clock: ``now``, ``sleep``, how many sleep, and a way to move time."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def set(self, now: float) -> None: ...

    @property
    def pending_sleepers(self) -> int: ...

    @property
    def next_deadline(self) -> float | None: ...


async def run_on_virtual_time(
    clock: SteppableClock,
    main: Coroutine[Any, Any, _T],
    *,
    step: Callable[[], None] | None = None,
    tick_s: float | None = 1.0,
    max_virtual_s: float = 30 * 24 * 3600.0,
    advance_to: Callable[[float], None] | None = None,
) -> _T:
    """Run ``main`` to completion, moving ``clock`` forward whenever ``main`` waits on it.

    With ``tick_s`` time moves by that step and ``step`` (e.g. ``EventDrivenWorkers.step``) runs
    before each move. With ``tick_s=None`` time jumps to the earliest deadline ``main`` sleeps
    until; ``advance_to(deadline)`` (e.g. ``EventDrivenWorkers.advance_to``) first plays
    everything that happens before it. ``main`` must do its waiting through ``clock.sleep``;
    port calls should not be offloaded to threads.

    Raises:
        TimeoutError: ``main`` did not finish within ``max_virtual_s`` of virtual time.
    """
    task = asyncio.ensure_future(main)
    start = clock.now()
    try:
        while not task.done():
            for _ in range(100):
                await asyncio.sleep(0)
                if task.done() or clock.pending_sleepers > 0:
                    break
            if task.done():
                break
            if clock.pending_sleepers == 0:
                continue
            if tick_s is None:
                deadline = clock.next_deadline
                if deadline is None:
                    continue
                if advance_to is not None:
                    advance_to(deadline)
                clock.set(deadline)
                if step is not None:
                    step()
            else:
                if step is not None:
                    step()
                clock.advance(tick_s)
            if clock.now() - start > max_virtual_s:
                raise TimeoutError(f"not finished after {max_virtual_s:g} virtual seconds")
    finally:
        if not task.done():
            task.cancel()
    return task.result()


_READY, _PREEMPT, _FINISH, _KEEPALIVE, _HANG = range(5)
#: Leases the simulated worker holds: it extends them while a task runs, as the real one does.
_LEASE_S = math.inf
#: The result of every simulated success (shared: nothing changes a reported result).
_NO_RESULT: dict[str, Any] = {}


@attrs.define
class _Vm:
    instance_id: str
    slots: int
    working: bool = False
    #: the worker hung (``silent_after_s``): no keep-alives, no outcomes, no releases
    hung: bool = False
    #: receipt → (delivery, started at, how the attempt ends)
    running: dict[str, tuple[ReceivedTask, float, OutcomeKind]] = attrs.field(factory=dict)
    #: how much slower than modelled this VM runs every task (slow instances)
    slowdown: float = 1.0


@attrs.define
class SimStats:
    """What the simulated workers did, and what a simulation reports: busy and lost
    task-seconds, preemptions, and the pool as the provider saw it."""

    started: int = 0
    completed: int = 0
    #: attempts requeued for another try (``Requeue``)
    retried: int = 0
    #: attempts that failed for good (``Fail``) or were dead-lettered (``DeadLetter``)
    failed: int = 0
    dead_lettered: int = 0
    released: int = 0
    keepalives: int = 0
    preemptions: int = 0
    preempted_runs: int = 0
    busy_s: float = 0.0
    lost_s: float = 0.0
    peak_instances: int = 0
    peak_price_per_hour_usd: float = 0.0
    #: task id → runs lost to preemption (only tasks that lost one)
    preempted_tasks: dict[str, int] = attrs.field(factory=dict)
    #: instance id → [type, price per hour, slots, created at, ended at or None]
    lifetimes: dict[str, list[Any]] = attrs.field(factory=dict)


class EventDrivenWorkers:
    """Worker behaviour on every instance of an ``InMemoryCompute`` (see the module docstring).

    ``tasks_per_instance`` maps an instance type to its slots. ``outcome`` says how each
    attempt ends (default: every attempt succeeds); ``retry`` is the worker's retry policy and
    ``max_runtime_s`` how long a timed-out attempt ran. ``startup_delay_s`` is the time from
    "running" until the worker starts (installing software); ``broken_startup`` makes every
    worker (or those whose instance id it accepts, when a predicate) never start at all, as a
    broken startup script or a bad VM would. ``silent_after_s`` makes a worker hang that long
    after it started: no more keep-alives or outcomes, and the leases of its tasks lapse
    ``visibility_timeout_s`` later. ``slowdown(instance_id)`` makes some VMs run every task
    that many times slower; ``report_starts`` sends ``task_started`` events and never runs two
    copies of one task on the same VM (as the speculative re-runs of the pool manager need).
    A preempted or stopped VM's tasks are released with a ``task_released`` event, as on a
    spot notice or a shutdown.
    """

    def __init__(
        self,
        *,
        job_id: str,
        compute: InMemoryCompute,
        task_queue: TaskQueue,
        event_queue: EventQueue,
        clock: SteppableClock,
        tasks_per_instance: Callable[[str], int],
        duration: DurationModel,
        outcome: OutcomeModel | None = None,
        retry: RetryPolicy | None = None,
        max_runtime_s: float = default("max_runtime"),
        keepalive_interval_s: float = default("keepalive_interval"),
        startup_delay_s: float = 0.0,
        broken_startup: bool | Callable[[str], bool] = False,
        silent_after_s: float | None = None,
        visibility_timeout_s: float = 3600.0,
        slowdown: Callable[[str], float] | None = None,
        report_starts: bool = False,
    ) -> None:
        self.job_id = job_id
        self.task_queue = task_queue
        self.event_queue = event_queue
        self.clock = clock
        self.tasks_per_instance = tasks_per_instance
        self.duration = duration
        self.outcome = outcome
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_runtime_s = max_runtime_s
        self.keepalive_interval_s = keepalive_interval_s
        self.startup_delay_s = startup_delay_s
        self.broken_startup = broken_startup
        self.silent_after_s = silent_after_s
        self.visibility_timeout_s = visibility_timeout_s
        self.slowdown = slowdown
        self.report_starts = report_starts
        self.stats = SimStats()
        self._bounced = False
        self._seen: set[str] = set()
        self._vms: dict[str, _Vm] = {}
        self._idle: dict[str, None] = {}  # working VMs with a free slot, in arrival order
        self._heap: list[tuple[float, int, int, str, str]] = []
        self._seq = itertools.count()
        self._events: list[dict[str, Any]] = []
        self._live_price = 0.0
        self._live: dict[str, float] = {}
        compute.watch(self._on_change)

    # -- what the compute tells us ----------------------------------------------------------

    def _push(self, at: float, kind: int, instance_id: str, receipt: str = "") -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, instance_id, receipt))

    def _broken(self, instance_id: str) -> bool:
        broken = self.broken_startup
        return broken is True or (callable(broken) and broken(instance_id))

    def _on_change(self, change: ComputeChange) -> None:
        instance = change.instance
        if instance.job_id != self.job_id:
            return
        now = self.clock.now()
        instance_id = instance.instance_id
        if change.kind == "created":
            slots = max(1, self.tasks_per_instance(instance.instance_type))
            self._vms[instance_id] = _Vm(
                instance_id, slots, slowdown=self.slowdown(instance_id) if self.slowdown else 1.0
            )
            if not self._broken(instance_id):
                self._push(max(change.ready_at, now) + self.startup_delay_s, _READY, instance_id)
            if change.preempt_at is not None:
                self._push(max(change.preempt_at, now), _PREEMPT, instance_id)
            self.stats.lifetimes[instance_id] = [
                instance.instance_type,
                instance.price_per_hour_usd,
                slots,
                now,
                None,
            ]
            self._live[instance_id] = instance.price_per_hour_usd
            self._live_price += instance.price_per_hour_usd
            self.stats.peak_instances = max(self.stats.peak_instances, len(self._live))
            self.stats.peak_price_per_hour_usd = max(
                self.stats.peak_price_per_hour_usd, self._live_price
            )
        elif change.kind == "preempted":
            self._push(now, _PREEMPT, instance_id)
        else:
            lifetime = self.stats.lifetimes.get(instance_id)
            if lifetime is not None and lifetime[4] is None:
                lifetime[4] = now
            self._unlive(instance_id)
            if instance_id in self._vms:
                self._lose(instance_id, now, "shutdown")
                self._dispatch_idle(now)
                self._flush()

    def _unlive(self, instance_id: str) -> None:
        price = self._live.pop(instance_id, None)
        if price is not None:
            self._live_price -= price

    # -- playing events ---------------------------------------------------------------------

    def step(self) -> None:
        """Play everything up to ``clock.now()`` (after the clock moved by a tick): first the
        events that fell due during the tick, in order, then idle workers poll the queue."""
        now = self.clock.now()
        self._play(now)
        self.advance_to(now)

    def advance_to(self, deadline: float) -> None:
        """Idle workers poll the queue, then every worker event due at or before ``deadline``
        is played, each at its own time."""
        self._dispatch_idle(self.clock.now())
        self._play(deadline)
        self._flush()

    def _play(self, deadline: float) -> None:
        heap = self._heap
        vms = self._vms
        clock = self.clock
        pop = heapq.heappop
        now = clock.now()
        while heap and heap[0][0] <= deadline:
            at, _, kind, instance_id, receipt = pop(heap)
            vm = vms.get(instance_id)
            if vm is None:
                continue
            if at > now:
                clock.set(at)
                now = at
            if kind == _FINISH:
                entry = None if vm.hung else vm.running.pop(receipt, None)
                if entry is not None:
                    self._finish(vm, receipt, entry, now)
                    self._fill(vm, now)
            elif kind == _KEEPALIVE:
                if vm.working:
                    self._keepalive(vm, now)
            elif kind == _READY:
                vm.working = True
                if self.silent_after_s is not None:
                    self._push(now + self.silent_after_s, _HANG, instance_id)
                self._keepalive(vm, now)
                self._fill(vm, now)
            elif kind == _HANG:
                self._hang(vm, now)
            else:
                self.stats.preemptions += 1
                self._unlive(instance_id)
                self._lose(instance_id, now, "preempted")
                self._dispatch_idle(now)

    def _flush(self) -> None:
        if self._events:
            events, self._events = self._events, []
            # After the job the queues are gone; nothing is left to report to.
            with contextlib.suppress(QueueNotFoundError):
                self.event_queue.send(events)

    def _event(self, instance_id: str, kind: str, now: float, **fields: Any) -> None:
        self._events.append(
            {
                "timestamp": f"{now:.3f}",
                "hostname": instance_id,
                "instance_id": instance_id,
                "event_type": kind,
                **fields,
            }
        )

    def _keepalive(self, vm: _Vm, now: float) -> None:
        if self.keepalive_interval_s <= 0:
            return
        # Built inline (not through _event): a simulation sends millions of these.
        instance_id = vm.instance_id
        self._events.append(
            {
                "timestamp": f"{now:.3f}",
                "hostname": instance_id,
                "instance_id": instance_id,
                "event_type": KEEP_ALIVE,
                "running_tasks": len(vm.running),
            }
        )
        self.stats.keepalives += 1
        heapq.heappush(
            self._heap,
            (now + self.keepalive_interval_s, next(self._seq), _KEEPALIVE, instance_id, ""),
        )

    def _finish(
        self, vm: _Vm, receipt: str, entry: tuple[ReceivedTask, float, OutcomeKind], now: float
    ) -> None:
        """Report and settle the attempt ``entry`` (taken out of ``vm.running``)."""
        message, started, kind = entry
        envelope = message.envelope
        task = envelope.task
        attempt = envelope.failures + 1
        stats = self.stats
        elapsed = now - started
        stats.busy_s += elapsed
        instance_id = vm.instance_id
        if kind is _SUCCESS:
            # decide_outcome(SUCCESS, ...) is always Complete: acknowledge, inline (the
            # common case, millions of times).
            self._events.append(
                {
                    "timestamp": f"{now:.3f}",
                    "hostname": instance_id,
                    "instance_id": instance_id,
                    "event_type": TASK_COMPLETED,
                    "task_id": task.task_id,
                    "success": True,
                    "retry": False,
                    "attempt": attempt,
                    "elapsed_time": elapsed,
                    "outcome": "success",
                    "result": _NO_RESULT,
                }
            )
            self.task_queue.ack(receipt)
            stats.completed += 1
            return
        decision = decide_outcome(
            kind, self.retry, failures=envelope.failures, delivery_count=message.delivery_count
        )
        fields: dict[str, Any] = {
            "task_id": task.task_id,
            "attempt": attempt,
            "elapsed_time": elapsed,
            "retry": isinstance(decision, Requeue),
            "outcome": kind.value,
            **_FAILURE_FIELDS.get(kind, {}),
        }
        if kind is OutcomeKind.TIMEOUT:
            fields["max_runtime"] = self.max_runtime_s
        self._event(instance_id, _OUTCOME_EVENT[kind], now, **fields)
        self._settle(instance_id, message, decision, now, error=kind.value)

    def _settle(
        self, instance_id: str, message: ReceivedTask, decision: Decision, now: float, error: str
    ) -> None:
        """Act on a decision about a finished (or refused) delivery, as the worker does."""
        stats = self.stats
        if isinstance(decision, Requeue):
            self.task_queue.requeue(message)
            stats.retried += 1
            self._dispatch_idle(now)
            return
        if isinstance(decision, Release):
            self.task_queue.release(message.receipt)
            return
        if isinstance(decision, DeadLetter):
            self._event(
                instance_id,
                TASK_DEAD_LETTERED,
                now,
                task_id=message.task_id,
                attempt=message.attempt,
                retry=False,
                reason=decision.reason,
                error=error,
            )
            stats.dead_lettered += 1
        stats.failed += 1
        self.task_queue.ack(message.receipt)

    def _fill(self, vm: _Vm, now: float) -> None:
        """Lease tasks for ``vm``'s free slots; remember it as idle when the queue ran dry."""
        running = vm.running
        free = vm.slots - len(running)
        working = vm.working
        if free > 0 and working:
            instance_id = vm.instance_id
            messages = self.task_queue.receive(free, _LEASE_S, 0.0)
            if not messages:
                self._idle[instance_id] = None
                return
            duration = self.duration
            heap, seq = self._heap, self._seq
            slowdown, report_starts = vm.slowdown, self.report_starts
            outcome = self.outcome
            push = heapq.heappush
            started = 0
            for message in messages:
                if message.delivery_count > 1 and self._refused(vm, message, now):
                    continue
                if report_starts and self._start_elsewhere(vm, message, now):
                    continue
                envelope = message.envelope
                task = envelope.task
                attempt = envelope.failures + 1
                kind = _SUCCESS if outcome is None else outcome(task.task_id, task.data, attempt)
                if kind is OutcomeKind.TIMEOUT:
                    # The worker kills a task at max_runtime, on any host.
                    seconds = self.max_runtime_s
                else:
                    seconds = duration(task.task_id, task.data, attempt)
                    # max(0.0, seconds) without the call (the same for NaN and -0.0)
                    seconds = (seconds if seconds > 0.0 else 0.0) * slowdown
                receipt = message.receipt
                running[receipt] = (message, now, kind)
                push(heap, (now + seconds, next(seq), _FINISH, instance_id, receipt))
                started += 1
            self.stats.started += started
            free = vm.slots - len(running)
        if free > 0 and working:
            self._idle[vm.instance_id] = None
        else:
            self._idle.pop(vm.instance_id, None)

    def _refused(self, vm: _Vm, message: ReceivedTask, now: float) -> bool:
        """The worker's check of a redelivery against ``max_preemptions``; True when refused."""
        rejected = admit_delivery(message.delivery_count, self.retry)
        if rejected is None:
            return False
        self._settle(vm.instance_id, message, rejected, now, error="preempted")
        return True

    def _start_elsewhere(self, vm: _Vm, message: ReceivedTask, now: float) -> bool:
        """Report the start; True (and the message released) when ``vm`` already runs it."""
        task_id = message.task_id
        if task_id not in self._seen:
            self._seen.add(task_id)  # a first run: it cannot be running here already
        elif message.delivery_count < 4 and any(
            running.task_id == task_id for running, _, _ in vm.running.values()
        ):
            # As the worker does: a copy of a task running here is handed back a few times.
            self.task_queue.release(message.receipt)
            self._bounced = True
            return True
        self._event(vm.instance_id, TASK_STARTED, now, task_id=task_id, attempt=message.attempt)
        return False

    def _dispatch_idle(self, now: float) -> None:
        """Idle workers poll the queue: released or re-sent tasks start at once."""
        for instance_id in list(self._idle):
            vm = self._vms.get(instance_id)
            if vm is None:
                self._idle.pop(instance_id, None)
                continue
            before = len(vm.running)
            self._bounced = False
            self._fill(vm, now)
            if len(vm.running) == before and not self._bounced:
                break  # the queue is empty

    def _hang(self, vm: _Vm, now: float) -> None:
        """The worker stops: its tasks stay leased until their leases lapse."""
        vm.working = False
        vm.hung = True
        self._idle.pop(vm.instance_id, None)
        for receipt in vm.running:
            with contextlib.suppress(QueueNotFoundError):
                self.task_queue.extend(receipt, self.visibility_timeout_s)

    def _lose(self, instance_id: str, now: float, reason: str) -> None:
        """A preempted or stopped VM: its unfinished tasks go back to the queue at once."""
        vm = self._vms.pop(instance_id)
        self._idle.pop(instance_id, None)
        stats = self.stats
        for message, started, _ in vm.running.values():
            stats.lost_s += now - started
            if vm.hung:
                continue  # nothing is left to hand them back; their leases lapse
            stats.released += 1
            if reason == "preempted":
                stats.preempted_runs += 1
                lost = stats.preempted_tasks
                lost[message.task_id] = lost.get(message.task_id, 0) + 1
            decision = decide_outcome(
                OutcomeKind.PREEMPTED,
                self.retry,
                failures=message.envelope.failures,
                delivery_count=message.delivery_count,
            )
            try:
                if isinstance(decision, Release):
                    self.task_queue.release(message.receipt)
                    self._event(
                        instance_id,
                        TASK_RELEASED,
                        now,
                        task_id=message.task_id,
                        attempt=message.attempt,
                        reason=reason,
                    )
                else:
                    self._settle(instance_id, message, decision, now, error=reason)
            except QueueNotFoundError:
                continue  # the job is over and its queues are gone

    @property
    def busy_instances(self) -> int:
        return sum(1 for vm in self._vms.values() if vm.running)


__all__ = [
    "DurationModel",
    "EventDrivenWorkers",
    "OutcomeModel",
    "SimStats",
    "run_on_virtual_time",
]
