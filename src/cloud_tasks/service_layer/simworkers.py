"""Simulated workers on simulated VMs, and a driver that runs the pool manager on virtual time.

``SimulatedWorkers`` plays the worker runtime on every running instance of an ``InMemoryCompute``
(or any ``Compute``): it leases tasks from the task queue, "runs" each for a modelled duration,
acknowledges it and reports events (``task_completed``, ``keep_alive``) to the event queue, as
the real worker would. A preempted or stopped instance's tasks go back to the queue. Work per
step is proportional to what changes (finishing tasks, free slots, keep-alives due), not to the
number of tasks: finishing times live in a heap.

``EventDrivenWorkers`` plays the same worker behaviour for simulations at scale: it watches an
``InMemoryCompute`` (creations, preemptions and terminations are pushed to it, never listed) and
keeps one heap of timed events (a task finishes, a VM is ready, a VM is preempted, a keep-alive
is due), so its work is O(log n) per event and nothing per idle second.

``run_on_virtual_time`` runs a coroutine (the pool manager) against a ``VirtualClock``, stepping
the workers and moving time forward whenever the coroutine is waiting on the clock, so hours of
a job run in seconds: by fixed ticks, or (``tick_s=None``) straight to the next moment the
coroutine wakes up, with ``advance_to`` playing every worker event up to then at its own time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar

import attrs

from cloud_tasks.adapters.memory.compute import ComputeChange, InMemoryCompute
from cloud_tasks.domain.events import KEEP_ALIVE, TASK_COMPLETED, TASK_RELEASED, TASK_STARTED
from cloud_tasks.domain.option_schema import default
from cloud_tasks.exceptions import QueueNotFoundError
from cloud_tasks.ports import (
    Compute,
    EventQueue,
    Instance,
    InstanceState,
    ReceivedTask,
    TaskQueue,
)

_T = TypeVar("_T")

#: (task id, task data, attempt) → seconds the task takes.
DurationModel = Callable[[str, Mapping[str, Any], int], float]
#: (task id, task data, attempt) → True when the task succeeds, False to ask for a retry.
OutcomeModel = Callable[[str, Mapping[str, Any], int], bool]


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


@attrs.define
class _Vm:
    instance_id: str
    slots: int
    next_keepalive: float
    booted_at: float
    running: dict[str, str] = attrs.field(factory=dict)  # receipt → task id


@attrs.define
class SimStats:
    """Counters of what the simulated workers did."""

    started: int = 0
    completed: int = 0
    retried: int = 0
    released: int = 0
    keepalives: int = 0


class SimulatedWorkers:
    """Worker behaviour for every running instance of ``job_id`` (see the module docstring).

    ``tasks_per_instance`` maps an instance type to its slots. ``startup_delay_s`` is the time
    from "running" until the worker starts (installing software); ``broken_startup`` makes every
    worker (or those whose instance id it accepts, when a predicate) never start at all, as a
    broken startup script or a bad VM would. ``silent_after_s`` makes a
    worker stop sending keep-alives (and working) that long after it started: a hung VM.
    """

    def __init__(
        self,
        *,
        job_id: str,
        compute: Compute,
        task_queue: TaskQueue,
        event_queue: EventQueue,
        clock: SteppableClock,
        tasks_per_instance: Callable[[str], int],
        duration: DurationModel,
        outcome: OutcomeModel | None = None,
        keepalive_interval_s: float = default("keepalive_interval"),
        startup_delay_s: float = 0.0,
        broken_startup: bool | Callable[[str], bool] = False,
        silent_after_s: float | None = None,
        visibility_timeout_s: float = 3600.0,
    ) -> None:
        self.job_id = job_id
        self.compute = compute
        self.task_queue = task_queue
        self.event_queue = event_queue
        self.clock = clock
        self.tasks_per_instance = tasks_per_instance
        self.duration = duration
        self.outcome = outcome
        self.keepalive_interval_s = keepalive_interval_s
        self.startup_delay_s = startup_delay_s
        self.broken_startup = broken_startup
        self.silent_after_s = silent_after_s
        self.visibility_timeout_s = visibility_timeout_s
        self.stats = SimStats()
        self._vms: dict[str, _Vm] = {}
        self._finishing: list[tuple[float, int, str, str]] = []  # (at, seq, vm, receipt)
        self._seq = itertools.count()
        self._messages: dict[str, ReceivedTask] = {}
        self._started_at: dict[str, float] = {}

    def step(self) -> None:
        """Advance every worker to ``clock.now()``."""
        now = self.clock.now()
        events: list[dict[str, Any]] = []
        self._sync_instances(now)
        while self._finishing and self._finishing[0][0] <= now:
            at, _, vm_id, receipt = heapq.heappop(self._finishing)
            vm = self._vms.get(vm_id)
            if vm is None or receipt not in vm.running:
                continue
            task_id = vm.running.pop(receipt)
            message = self._messages.pop(receipt)
            attempt = message.attempt
            success = True if self.outcome is None else self.outcome(task_id, message.data, attempt)
            if success:
                self.task_queue.ack(receipt)
                self.stats.completed += 1
            else:
                self.task_queue.requeue(message)
                self.stats.retried += 1
            events.append(
                self._event(
                    vm_id,
                    TASK_COMPLETED,
                    task_id=task_id,
                    success=success,
                    retry=not success,
                    attempt=attempt,
                    elapsed_time=at - self._started_at.pop(receipt, at),
                    result={} if success else None,
                )
            )
        for vm in self._vms.values():
            if not self._working(vm, now):
                continue
            free = vm.slots - len(vm.running)
            if free > 0:
                for message in self.task_queue.receive(free, self.visibility_timeout_s, 0.0):
                    seconds = max(
                        0.0, self.duration(message.task_id, message.data, message.attempt)
                    )
                    vm.running[message.receipt] = message.task_id
                    self._messages[message.receipt] = message
                    self._started_at[message.receipt] = now
                    heapq.heappush(
                        self._finishing,
                        (now + seconds, next(self._seq), vm.instance_id, message.receipt),
                    )
                    self.stats.started += 1
            if self.keepalive_interval_s > 0 and now >= vm.next_keepalive:
                events.append(
                    self._event(vm.instance_id, KEEP_ALIVE, running_tasks=len(vm.running))
                )
                vm.next_keepalive = now + self.keepalive_interval_s
                self.stats.keepalives += 1
        if events:
            self.event_queue.send(events)

    def _working(self, vm: _Vm, now: float) -> bool:
        broken = self.broken_startup
        if broken is True or (callable(broken) and broken(vm.instance_id)):
            return False
        if now < vm.booted_at + self.startup_delay_s:
            return False
        return self.silent_after_s is None or now < (
            vm.booted_at + self.startup_delay_s + self.silent_after_s
        )

    def _event(self, instance_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "timestamp": f"{self.clock.now():.3f}",
            "hostname": instance_id,
            "instance_id": instance_id,
            "event_type": kind,
            **fields,
        }

    def _sync_instances(self, now: float) -> None:
        listed: dict[str, Instance] = {
            i.instance_id: i for i in self.compute.list_instances(self.job_id)
        }
        for instance_id in list(self._vms):
            instance = listed.get(instance_id)
            if instance is None or instance.state is not InstanceState.RUNNING:
                self._lose(instance_id)
        for instance in listed.values():
            if instance.state is InstanceState.RUNNING and instance.instance_id not in self._vms:
                self._vms[instance.instance_id] = _Vm(
                    instance.instance_id,
                    max(1, self.tasks_per_instance(instance.instance_type)),
                    next_keepalive=now + self.startup_delay_s,
                    booted_at=now,
                )

    def _lose(self, instance_id: str) -> None:
        """A preempted or stopped VM: its unfinished tasks go back to the queue at once."""
        vm = self._vms.pop(instance_id)
        for receipt in vm.running:
            self._messages.pop(receipt, None)
            self._started_at.pop(receipt, None)
            self.task_queue.release(receipt)
            self.stats.released += 1

    @property
    def busy_instances(self) -> int:
        return sum(1 for vm in self._vms.values() if vm.running)


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

    With ``tick_s`` time moves by that step and ``step`` (e.g. ``SimulatedWorkers.step``) runs
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


_READY, _PREEMPT, _FINISH, _KEEPALIVE = range(4)
#: Leases the simulated worker holds: it extends them while a task runs, as the real one does.
_LEASE_S = 1e9


@attrs.define
class _Fleet:
    instance_id: str
    slots: int
    working: bool = False
    running: dict[str, tuple[ReceivedTask, float]] = attrs.field(factory=dict)
    #: how much slower than modelled this VM runs every task (slow instances)
    slowdown: float = 1.0


@attrs.define
class FleetStats(SimStats):
    """``SimStats`` plus what a simulation reports: busy and lost task-seconds, preemptions,
    and the pool as the provider saw it."""

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
    """Worker behaviour on every instance of an ``InMemoryCompute``, played event by event.

    Same behaviour as ``SimulatedWorkers`` (lease, run for the modelled duration, ack or
    requeue, report ``task_completed`` and ``keep_alive``; a preempted VM's tasks are released
    with a ``task_released`` event, as on a spot notice), but driven by a heap of timed events
    and by the compute's change notifications (see the module docstring).
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
        keepalive_interval_s: float = default("keepalive_interval"),
        startup_delay_s: float = 0.0,
        slowdown: Callable[[str], float] | None = None,
        report_starts: bool = False,
    ) -> None:
        """``slowdown(instance_id)`` makes some VMs run every task that many times slower;
        ``report_starts`` sends ``task_started`` events and never runs two copies of one task
        on the same VM (as the speculative re-runs of the pool manager need)."""
        self.slowdown = slowdown
        self.report_starts = report_starts
        self._bounced = False
        self._seen: set[str] = set()
        self.job_id = job_id
        self.task_queue = task_queue
        self.event_queue = event_queue
        self.clock = clock
        self.tasks_per_instance = tasks_per_instance
        self.duration = duration
        self.outcome = outcome
        self.keepalive_interval_s = keepalive_interval_s
        self.startup_delay_s = startup_delay_s
        self.stats = FleetStats()
        self._vms: dict[str, _Fleet] = {}
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

    def _on_change(self, change: ComputeChange) -> None:
        instance = change.instance
        if instance.job_id != self.job_id:
            return
        now = self.clock.now()
        instance_id = instance.instance_id
        if change.kind == "created":
            slots = max(1, self.tasks_per_instance(instance.instance_type))
            self._vms[instance_id] = _Fleet(
                instance_id, slots, slowdown=self.slowdown(instance_id) if self.slowdown else 1.0
            )
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
        """Play everything up to ``clock.now()``."""
        self.advance_to(self.clock.now())

    def advance_to(self, deadline: float) -> None:
        """Play every worker event due at or before ``deadline``, each at its own time."""
        heap = self._heap
        now = self.clock.now()
        self._dispatch_idle(now)
        while heap and heap[0][0] <= deadline:
            at, _, kind, instance_id, receipt = heapq.heappop(heap)
            vm = self._vms.get(instance_id)
            if vm is None:
                continue
            if at > now:
                self.clock.set(at)
                now = at
            if kind == _FINISH:
                if receipt in vm.running:
                    self._finish(vm, receipt, now)
                    self._fill(vm, now)
            elif kind == _KEEPALIVE:
                if vm.working:
                    self._keepalive(vm, now)
            elif kind == _READY:
                vm.working = True
                self._keepalive(vm, now)
                self._fill(vm, now)
            else:
                self.stats.preemptions += 1
                self._unlive(instance_id)
                self._lose(instance_id, now, "preempted")
                self._dispatch_idle(now)
        self._flush()

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

    def _keepalive(self, vm: _Fleet, now: float) -> None:
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

    def _finish(self, vm: _Fleet, receipt: str, now: float) -> None:
        message, started = vm.running.pop(receipt)
        envelope = message.envelope
        task = envelope.task
        attempt = envelope.failures + 1
        success = True if self.outcome is None else self.outcome(task.task_id, task.data, attempt)
        stats = self.stats
        if success:
            self.task_queue.ack(receipt)
            stats.completed += 1
        else:
            self.task_queue.requeue(message)
            stats.retried += 1
        elapsed = now - started
        stats.busy_s += elapsed
        instance_id = vm.instance_id
        self._events.append(
            {
                "timestamp": f"{now:.3f}",
                "hostname": instance_id,
                "instance_id": instance_id,
                "event_type": TASK_COMPLETED,
                "task_id": task.task_id,
                "success": success,
                "retry": not success,
                "attempt": attempt,
                "elapsed_time": elapsed,
                "result": {} if success else None,
            }
        )
        if not success:
            self._dispatch_idle(now)

    def _fill(self, vm: _Fleet, now: float) -> None:
        """Lease tasks for ``vm``'s free slots; remember it as idle when the queue ran dry."""
        running = vm.running
        free = vm.slots - len(running)
        if free > 0 and vm.working:
            duration = self.duration
            heap, seq, instance_id = self._heap, self._seq, vm.instance_id
            slowdown, report_starts = vm.slowdown, self.report_starts
            messages = self.task_queue.receive(free, _LEASE_S, 0.0)
            started = 0
            for message in messages:
                if report_starts and self._start_elsewhere(vm, message, now):
                    continue
                envelope = message.envelope
                task = envelope.task
                seconds = max(0.0, duration(task.task_id, task.data, envelope.failures + 1))
                seconds *= slowdown
                receipt = message.receipt
                running[receipt] = (message, now)
                heapq.heappush(heap, (now + seconds, next(seq), _FINISH, instance_id, receipt))
                started += 1
            self.stats.started += started
            free = vm.slots - len(running)
        if free > 0 and vm.working:
            self._idle[vm.instance_id] = None
        else:
            self._idle.pop(vm.instance_id, None)

    def _start_elsewhere(self, vm: _Fleet, message: ReceivedTask, now: float) -> bool:
        """Report the start; True (and the message released) when ``vm`` already runs it."""
        task_id = message.task_id
        if task_id not in self._seen:
            self._seen.add(task_id)  # a first run: it cannot be running here already
        elif message.delivery_count < 4 and any(
            running.task_id == task_id for running, _ in vm.running.values()
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

    def _lose(self, instance_id: str, now: float, reason: str) -> None:
        """A preempted or stopped VM: its unfinished tasks go back to the queue at once."""
        vm = self._vms.pop(instance_id)
        self._idle.pop(instance_id, None)
        for receipt, (message, started) in vm.running.items():
            self.stats.lost_s += now - started
            self.stats.released += 1
            if reason == "preempted":
                self.stats.preempted_runs += 1
                lost = self.stats.preempted_tasks
                lost[message.task_id] = lost.get(message.task_id, 0) + 1
            try:
                self.task_queue.release(receipt)
            except QueueNotFoundError:
                continue  # the job is over and its queues are gone
            self._event(
                instance_id,
                TASK_RELEASED,
                now,
                task_id=message.task_id,
                attempt=message.attempt,
                reason=reason,
            )

    @property
    def busy_instances(self) -> int:
        return sum(1 for vm in self._vms.values() if vm.running)


__all__ = [
    "EventDrivenWorkers",
    "FleetStats",
    "SimStats",
    "SimulatedWorkers",
    "run_on_virtual_time",
]
