"""The pool manager (SPEC §6, §12): starts, watches, replaces and stops a job's instances.

One asyncio loop, every wait on the injected ``Clock`` so that tests and ``simulate`` run it on
virtual time. Every event-poll interval it moves worker events from the event queue into the task
database; every ``scaling_check_interval`` it reconciles the pool with the provider:

- instances the provider reports preempted, failed or gone are deleted and replaced;
- an instance that never sent a keep-alive within ``keepalive_startup_timeout``, or went silent
  for ``keepalive_timeout``, is replaced; when no instance ever sent one the job stops with
  "the startup script is probably broken";
- the target size comes from the domain (limits, remaining work, ``max_total_cost``);
- new instances use the best launch option; a capacity error moves to the next zone, then to
  the next instance type;
- idle instances beyond the target are stopped after ``instance_termination_delay``.

When every task is terminal it stops every instance and deletes the queues.

The rules are pure functions the manager acts on: instance health and broken-startup verdicts
in ``domain.pool_health``, the scaling plan, on-demand and launch-error rules in
``domain.replacement``, and the re-send of tasks whose outcome was lost in ``domain.retry``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, ParamSpec, TypeVar

import attrs

from cloud_tasks.domain.events import KEEP_ALIVE
from cloud_tasks.domain.option_schema import default
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.pool_health import (
    GONE,
    LOST_OUTCOME_GRACE_S,
    BrokenStartup,
    StartupHistory,
    TrackedInstance,
    broken_startup,
    lost_instances,
    outcomes_presumed_lost,
    record_loss,
    silent_startup,
    slow_instances_to_replace,
    unhealthy_instances,
)
from cloud_tasks.domain.replacement import (
    PERMANENT_ERRORS,
    PROVIDER_OUTAGE_LIMIT_S,
    fits_price_cap,
    instances_needed,
    launch_error_rank,
    on_demand_room,
    on_demand_wanted,
    outage_outlasted,
    plan_scaling,
)
from cloud_tasks.domain.retry import MAX_RESENDS, tasks_to_resend
from cloud_tasks.domain.selection import Candidate
from cloud_tasks.domain.speculation import SpeculationPolicy
from cloud_tasks.domain.spread import SpreadPool, eligible_pools, spread_launches
from cloud_tasks.domain.tasks import Envelope
from cloud_tasks.domain.taskstate import InstanceRecord, TaskCounts
from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import (
    CapacityError,
    CloudTasksError,
    ConfigError,
    CredentialsError,
    ProviderError,
    QueueNotFoundError,
    QuotaError,
    RejectedError,
    TaskStoreBusyError,
)
from cloud_tasks.ports import (
    Clock,
    Compute,
    EventQueue,
    Instance,
    InstanceSpec,
    InstanceState,
    TaskQueue,
    TaskStore,
)
from cloud_tasks.service_layer.deliveries import LiveDeliveries
from cloud_tasks.service_layer.insight import DecisionRecorder
from cloud_tasks.service_layer.speculation import Speculator

_P = ParamSpec("_P")
_T = TypeVar("_T")

logger = logging.getLogger("cloud_tasks.manager")

#: Fields of a ``keep_alive`` event that may say how many tasks the worker is running.
_BUSY_FIELDS = ("running_tasks", "tasks_running", "in_flight", "active_tasks")
#: The step name under which a locked task database is timed (see ``_wait_for_store``).
_STORE_STEP = "task database"
#: Instances asked for in one launch call, and launch calls in flight at once. EC2 and Compute
#: Engine throttle mutating calls per second; a few large calls stay far inside those limits.
LAUNCH_BATCH = 100
LAUNCH_CONCURRENCY = 10

Status = Literal["completed", "broken_startup", "cost_cap", "stopped"]


@attrs.frozen
class LaunchOption:
    """One instance type in one zone, with its generated startup script."""

    candidate: Candidate
    zone: str
    startup_script: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.candidate.name, self.zone)


@attrs.frozen
class PoolSettings:
    """What the pool manager needs from the run options. Times in seconds."""

    job_id: str
    image: str
    limits: PoolLimits = attrs.field(factory=PoolLimits)
    scaling_check_interval_s: float = default("scaling_check_interval")
    instance_termination_delay_s: float = default("instance_termination_delay")
    keepalive_interval_s: float = default("keepalive_interval")
    keepalive_startup_timeout_s: float = default("keepalive_startup_timeout")
    keepalive_timeout_s: float = default("keepalive_timeout")
    event_poll_interval_s: float = 1.0
    service_account: str | None = None
    #: Run port calls in a worker thread (real providers block); off for in-memory adapters.
    offload: bool = True
    #: Delete the task and event queues when every task is terminal.
    delete_queues: bool = True
    #: Every task is recorded in the database (``run``); otherwise (``manage_pool``) the job is
    #: done when the queue is empty and every task seen in an event is terminal.
    tasks_known: bool = True
    #: Spot pools: once a task lost this many runs to preemption, new instances start
    #: on-demand (from ``PoolManager(on_demand_options=...)``) until no such task is left;
    #: 0 = never.
    on_demand_after_preemptions: int = 0
    #: Speculative re-runs of stragglers once the queue is empty (None = off); workers must
    #: send ``task_started`` events (``RMS_CLOUD_TASKS_REPORT_TASK_STARTS``).
    speculation: SpeculationPolicy | None = None
    #: Spot pools: spread new instances over every launch option with the best option's tasks
    #: per instance whose price per task slot is within this fraction of it; 0 = best only.
    spot_spread_tolerance: float = 0.0


@attrs.frozen
class JobOutcome:
    """How the manager's run ended."""

    status: Status
    message: str
    counts: TaskCounts
    spend_usd: float

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@attrs.frozen
class PoolSnapshot:
    """What the live display shows, refreshed every event poll."""

    counts: TaskCounts
    instances: int
    spend_usd: float
    now: float


class _Abort(Exception):
    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status: Status = status
        self.message = message


class PoolManager:
    """Supervises one job's pool until every task is terminal (see the module docstring)."""

    def __init__(
        self,
        *,
        compute: Compute,
        task_queue: TaskQueue,
        event_queue: EventQueue,
        db: TaskStore,
        clock: Clock,
        options: Sequence[LaunchOption],
        settings: PoolSettings,
        on_update: Callable[[PoolSnapshot], None] | None = None,
        log: Callable[[str], None] | None = None,
        on_demand_options: Sequence[LaunchOption] = (),
        recorder: DecisionRecorder | None = None,
        stop_requested: Callable[[], str | None] | None = None,
    ) -> None:
        """``on_demand_options`` are on-demand twins of spot ``options`` (same type and zone,
        their own startup script), used by ``PoolSettings.on_demand_after_preemptions``;
        ``recorder`` is told every scaling decision (the dashboard shows them).

        ``stop_requested`` is asked at every scaling check; when it returns a message (someone
        ran ``cloud_tasks stop``) the run ends with status ``stopped`` and that message,
        replacing no instance."""
        if not options:
            raise CloudTasksError("the pool manager needs at least one instance type to launch")
        self.compute = compute
        self.task_queue = task_queue
        self.event_queue = event_queue
        self.db = db
        self.clock = clock
        self.options = list(options)
        self.settings = settings
        self.on_update = on_update
        self.recorder = recorder
        self.log = log or logger.info
        self.stop_requested = stop_requested
        self.tracked: dict[str, TrackedInstance] = {}
        self.exhausted: set[tuple[str, str]] = set()
        self.ever_alive = False
        self.ever_worked = False
        self.startup_failures = 0
        #: Instances that sent keep-alives, then ended or went silent before any task event.
        self.died_before_work = 0
        self.replaced = 0
        self.launched = 0
        self.launched_on_demand = 0
        self._on_demand = {
            option.key: option for option in on_demand_options if not option.candidate.use_spot
        }
        self._empty_since: float | None = None
        self._empty_checks = 0
        self._next_check = 0.0
        self._depth = 0
        self._last_task_event = float("-inf")
        self._busy_reported_at = float("-inf")
        self._failing_since: dict[str, float] = {}  # step → when it began to fail
        self._option_by_type = {option.candidate.name: option for option in self.options}
        self.speculator = Speculator(settings.speculation) if settings.speculation else None
        #: Runs in progress by their delivery, to ack the loser of a task run twice.
        self.deliveries = LiveDeliveries()
        self._launch_threads: ThreadPoolExecutor | None = None

    # -- plumbing -------------------------------------------------------------------------

    async def _call(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self.settings.offload:
            return await asyncio.to_thread(func, *args, **kwargs)
        return func(*args, **kwargs)

    def _now(self) -> float:
        return self.clock.now()

    def current_option(self) -> LaunchOption | None:
        """The best launch option that has not hit a capacity error recently."""
        for option in self.options:
            if option.key not in self.exhausted:
                return option
        return None

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> JobOutcome:
        """Supervise until done; then stop every instance and (by default) delete the queues."""
        self._adopt_recorded()
        try:
            while True:
                try:
                    await self._tolerant("events", self.poll_events())
                    now = self._now()
                    if self._tasks_done():
                        break
                    if self.speculator is not None:
                        await self._tolerant("speculate", self._speculate(now))
                    if now >= self._next_check:
                        self._check_stop()
                        await self._tolerant("check", self.check(now))
                        self._next_check = now + self.settings.scaling_check_interval_s
                        if self._queue_drained():
                            break
                    self._publish(now)
                except TaskStoreBusyError as exc:
                    await self._wait_for_store(exc)
                    continue
                self._store_answers()
                await self.clock.sleep(self.settings.event_poll_interval_s)
        except _Abort as abort:
            await self.stop_all(reason=abort.status)
            counts = self.db.counts()
            return JobOutcome(abort.status, abort.message, counts, self.db.spend_usd(self._now()))
        except PERMANENT_ERRORS as exc:
            done = await self._stop_after_error()
            if not isinstance(exc, QueueNotFoundError):
                done += (
                    "; fix it, then resume with 'cloud_tasks run --continue' (the queue and "
                    "the task database are kept)"
                )
            exc.args = (f"{exc}; {done}",)
            raise
        await self._until_done("stop", lambda: self.stop_all(reason="job done"))
        await self._until_done("events", self.poll_events)
        if self.settings.delete_queues:
            await self._until_done("delete", lambda: self._call(self.task_queue.delete))
            await self._until_done("delete", lambda: self._call(self.event_queue.delete))
        now = self._now()
        counts = self.db.counts()
        self.db.set_meta(finished_at=now)
        self._publish(now)
        message = f"every task is done: {counts.completed} completed, {counts.failed} failed"
        return JobOutcome("completed", message, counts, self.db.spend_usd(now))

    async def _stop_after_error(self) -> str:
        """Stop every instance of the job after an error no retry can fix; says what was done."""
        try:
            stopped = await self.stop_all(reason="error")
        except CloudTasksError as exc:
            return (
                f"the job's instances could not be stopped ({exc}); stop them with "
                "'cloud_tasks stop'"
            )
        if not stopped:
            return "no instance was left running"
        return f"stopped the job's {len(stopped)} instance{'s' if len(stopped) > 1 else ''}"

    def _check_stop(self) -> None:
        """End the run when ``cloud_tasks stop`` was run for this job (see ``__init__``)."""
        stopped = self.stop_requested() if self.stop_requested is not None else None
        if stopped:
            raise _Abort("stopped", stopped)

    async def _tolerant(self, name: str, step: Awaitable[object]) -> bool:
        """Run one step of the loop; a provider failure that outlived the adapters' retries
        is logged and the step runs again later, while it has failed for less than
        ``PROVIDER_OUTAGE_LIMIT_S``. True when the step succeeded.

        The job's state lives in the task database and the queues, so nothing is lost while
        the provider is unreachable. Rejected credentials, a rejected launch and a deleted
        queue are not transient and end the run at once (``run`` stops the instances first).
        """
        try:
            await step
        except (CredentialsError, QueueNotFoundError, RejectedError):
            self._check_stop()  # 'stop --delete-queues' ran: the run ends as stopped
            raise
        except ProviderError as exc:
            now = self._now()
            since = self._failing_since.setdefault(name, now)
            if since == now:
                self.log(f"provider error, retrying: {exc}")
            elif outage_outlasted(since, now):
                raise
            return False
        if name in self._failing_since:
            since = self._failing_since.pop(name)
            self.log(f"the provider answers again after {self._now() - since:.0f} s")
        return True

    async def _wait_for_store(self, exc: TaskStoreBusyError) -> None:
        """Another program holds the task database: wait (events stay on their queue until
        they are recorded), up to ``PROVIDER_OUTAGE_LIMIT_S``; then stop every instance the job
        has, without the database, and end the run with one line."""
        now = self._now()
        since = self._failing_since.setdefault(_STORE_STEP, now)
        if since == now:
            self.log(f"{exc}; waiting for it")
        elif outage_outlasted(since, now):
            listed = await self._call(self.compute.list_instances, self.settings.job_id)
            ids = sorted({instance.instance_id for instance in listed} | set(self.tracked))
            if ids:
                await self._call(self.compute.terminate, ids)
            raise CloudTasksError(
                f"{exc} for more than {PROVIDER_OUTAGE_LIMIT_S / 60:.0f} minutes: stopped "
                f"{len(ids)} instances; the queues are kept. Resume with 'cloud_tasks run "
                "--continue' once the other program lets it go"
            ) from None
        await self.clock.sleep(max(self.settings.event_poll_interval_s, 1.0))

    def _store_answers(self) -> None:
        if _STORE_STEP in self._failing_since:
            since = self._failing_since.pop(_STORE_STEP)
            self.log(f"the task database answers again after {self._now() - since:.0f} s")

    async def _until_done(self, name: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run a step that must happen (the final teardown) until it succeeds."""
        while not await self._tolerant(name, step()):
            await self.clock.sleep(max(self.settings.scaling_check_interval_s, 1.0))

    def _publish(self, now: float) -> None:
        if self.on_update is not None:
            self.on_update(
                PoolSnapshot(
                    self.db.counts_with_running(),
                    len(self.tracked),
                    self.db.spend_usd(now),
                    now,
                )
            )

    def _tasks_done(self) -> bool:
        if not self.settings.tasks_known:
            return False
        counts = self.db.counts()
        return counts.total > 0 and counts.remaining == 0

    def _queue_drained(self) -> bool:
        """``manage_pool``: done once the queue stayed empty for two checks."""
        if self.settings.tasks_known:
            return False
        return (
            self._empty_checks >= 2
            and self.db.counts().remaining == 0
            and all(t.running_tasks == 0 for t in self.tracked.values())
        )

    def _adopt_recorded(self) -> None:
        """After a restart: resume tracking the instances the database says are running."""
        for record in self.db.instances(active_only=True):
            option = self._option_by_type.get(record.instance_type)
            tasks = option.candidate.tasks_per_instance if option else 1
            self.tracked[record.instance_id] = TrackedInstance(
                record.instance_id,
                record.instance_type,
                record.zone,
                record.price_per_hour_usd,
                record.launched_at,
                tasks,
                record.first_seen_alive,
                record.last_seen_alive,
                record.last_task_event or record.launched_at,
            )
            if record.first_seen_alive is not None:
                self.ever_alive = True
            if record.last_task_event is not None:
                self.ever_worked = True

    async def poll_events(self, max_batches: int = 50) -> int:
        """Move waiting events into the database (ingest, then ack: at least once); then ack
        the deliveries of runs whose task finished through another delivery."""
        total = 0
        for _ in range(max_batches):
            batch = await self._call(self.event_queue.receive, 500, 0.0)
            if not batch:
                break
            now = self._now()
            events = [received.event for received in batch]
            result = self.db.ingest(events, now)
            if self.speculator is not None:
                self.speculator.observe(events, now)
            await self._call(self.event_queue.ack, [received.receipt for received in batch])
            total += len(batch)
            if result.rejected:
                # Forged or malformed: acknowledged (never redelivered) but not applied.
                first = next(iter(result.rejected.values()))
                self.log(
                    f"dropped {len(result.rejected)} invalid event(s) from the event queue "
                    f"(first: {first})"
                )
                events = [e for i, e in enumerate(events) if i not in result.rejected]
            self.deliveries.observe(events)
            for instance_id, seen in result.alive.items():
                tracked = self.tracked.get(instance_id)
                if tracked is None:
                    continue
                if tracked.first_alive is None:
                    tracked.first_alive = seen
                tracked.last_alive = seen
            if result.alive:
                self.ever_alive = True
            for instance_id, seen in result.worked.items():
                self.ever_worked = True
                if instance_id in self.tracked:
                    self.tracked[instance_id].last_busy = seen
                    self.tracked[instance_id].worked = True
            anonymous = task_event = busy = False
            tracked_by = self.tracked
            # One pass, few lookups per event: simulations push millions through here.
            for event in events:
                get = event.get
                sender = get("instance_id")
                if not sender:
                    anonymous = True
                if get("task_id") is not None:
                    task_event = True
                    if not sender:
                        self.ever_worked = True
                if get("event_type") != KEEP_ALIVE:
                    continue
                running = get("running_tasks")
                if type(running) is not int:
                    running = max(
                        (event[f] for f in _BUSY_FIELDS if isinstance(get(f), int)), default=0
                    )
                if running > 0:
                    busy = True
                tracked = tracked_by.get(sender if type(sender) is str else str(sender))
                if tracked is not None:
                    tracked.running_tasks = running
                    if running > 0:
                        tracked.last_busy = now
            if task_event:
                self._last_task_event = now
            if busy:
                self._busy_reported_at = now
            if anonymous:
                # A worker that cannot name its instance (no metadata): its events still show
                # that the startup script works. Per-instance health then rests on the
                # provider's view of each instance.
                self.ever_alive = True
                for tracked in self.tracked.values():
                    if tracked.first_alive is None:
                        tracked.first_alive = now
                    tracked.last_alive = now
            if len(batch) < 500:
                break
        await self._stop_losers()
        return total

    async def _stop_losers(self) -> None:
        """Ack the deliveries of runs whose task ended through another delivery: each such
        worker stops the run at its next lease renewal (see ``service_layer.deliveries``).

        Best effort: a failed ack is logged, and that run goes on to its end as before.
        """
        deliveries = self.deliveries
        tasks = deliveries.to_look_up()
        if not tasks:
            return
        receipts = deliveries.losers(self.db.states_of(tasks))
        failed: list[CloudTasksError] = []
        for receipt in receipts:
            try:
                await self._call(self.task_queue.ack, receipt)
            except CloudTasksError as exc:
                failed.append(exc)
        if failed:
            self.log(
                f"could not stop {len(failed)} run(s) of tasks that finished elsewhere; they "
                f"run to their end (first error: {shown(str(failed[0]), 200)})"
            )
        if len(receipts) > len(failed):
            stopped = len(receipts) - len(failed)
            self.log(
                f"stopping {stopped} run{'s' if stopped > 1 else ''} of tasks that finished "
                "elsewhere (their deliveries were acknowledged)"
            )

    # -- one scaling check ----------------------------------------------------------------

    async def check(self, now: float) -> None:
        """Reconcile the pool with the provider, the work left and the budget."""
        listed = await self._call(self.compute.list_instances, self.settings.job_id)
        by_id = {instance.instance_id: instance for instance in listed}
        self._adopt_unknown(listed, now)
        await self._remove_lost(by_id, now)
        await self._remove_unhealthy(now)
        await self._track_queue(now)
        await self._replace_slow(now)
        await self._resize(now)

    def _adopt_unknown(self, listed: Sequence[Instance], now: float) -> None:
        for instance in listed:
            if instance.instance_id in self.tracked or instance.state not in (
                InstanceState.PENDING,
                InstanceState.RUNNING,
            ):
                continue
            option = self._option_by_type.get(instance.instance_type)
            launched = now
            self.tracked[instance.instance_id] = TrackedInstance(
                instance.instance_id,
                instance.instance_type,
                instance.zone,
                instance.price_per_hour_usd,
                launched,
                option.candidate.tasks_per_instance if option else 1,
                last_busy=launched,
            )
            self.db.record_instance(
                InstanceRecord(
                    instance.instance_id,
                    instance.name,
                    instance.instance_type,
                    instance.zone,
                    instance.is_spot,
                    instance.price_per_hour_usd,
                    launched,
                )
            )
            self.log(f"found running instance {instance.instance_id}; supervising it")

    async def _remove_lost(self, by_id: dict[str, Instance], now: float) -> None:
        reported = {instance_id: instance.state.value for instance_id, instance in by_id.items()}
        lost = lost_instances(list(self.tracked), reported)
        if not lost:
            return
        cleanup = [loss.instance_id for loss in lost if loss.reason != GONE]
        if cleanup:
            # Preempted and failed instances are deleted, not left behind.
            await self._call(self.compute.terminate, cleanup)
        self.deliveries.forget_instances(loss.instance_id for loss in lost)
        for loss in lost:
            tracked = self.tracked.pop(loss.instance_id)
            self.db.end_instance(loss.instance_id, now, loss.reason)
            self.replaced += 1
            self._record_loss(tracked, preempted=loss.preempted)
            self.log(
                f"instance {loss.instance_id} {loss.reason}; it will be replaced if work remains"
            )
        self._stop_if_broken(broken_startup(self._history()), lost[-1].instance_id)

    def _history(self) -> StartupHistory:
        return StartupHistory(
            self.ever_alive, self.ever_worked, self.startup_failures, self.died_before_work
        )

    def _record_loss(self, tracked: TrackedInstance, *, preempted: bool) -> None:
        history = record_loss(self._history(), tracked, preempted=preempted)
        self.startup_failures = history.startup_failures
        self.died_before_work = history.died_before_work

    def _stop_if_broken(self, verdict: BrokenStartup | None, instance_id: str) -> None:
        """End the run as ``broken_startup`` on the domain's verdict (see ``broken_startup``)."""
        if verdict is None:
            return
        if verdict.crash_loop:
            self._check_stop()  # instances ended by 'cloud_tasks stop' are not a crash loop
        raise _Abort("broken_startup", self._broken_message(instance_id, verdict.what))

    async def _remove_unhealthy(self, now: float) -> None:
        s = self.settings
        unhealthy = unhealthy_instances(
            self.tracked.values(),
            now,
            keepalive_interval_s=s.keepalive_interval_s,
            keepalive_startup_timeout_s=s.keepalive_startup_timeout_s,
            keepalive_timeout_s=s.keepalive_timeout_s,
        )
        if unhealthy.never_alive:
            verdict = silent_startup(unhealthy, self._history(), s.keepalive_startup_timeout_s)
            self._stop_if_broken(verdict, unhealthy.never_alive[0])
        for instance_id in unhealthy.never_alive:
            self.log(
                f"instance {instance_id} sent no keep-alive within "
                f"{s.keepalive_startup_timeout_s:g}s; replacing it"
            )
        for instance_id in unhealthy.silent:
            self.log(
                f"instance {instance_id} silent for more than {s.keepalive_timeout_s:g}s; "
                "replacing it"
            )
        bad = unhealthy.all
        if bad:
            for instance_id in bad:
                self._record_loss(self.tracked[instance_id], preempted=False)
            self.replaced += len(bad)
            await self._terminate(bad, now, "unhealthy")
            self._stop_if_broken(broken_startup(self._history()), bad[-1])

    def _broken_message(self, instance_id: str, what: str) -> str:
        where = self.compute.startup_log_hint(instance_id) or "the instance's console output"
        return (
            f"{what}: the startup script is probably broken. Look at {where}; fix the "
            "script, then resume with 'cloud_tasks run --continue' (the queue and the task "
            "database are kept)"
        )

    async def _track_queue(self, now: float) -> None:
        depth = await self._call(self.task_queue.depth)
        self._depth = depth
        if depth > 0:
            self._empty_since = None
            self._empty_checks = 0
            return
        if self._empty_since is None:
            self._empty_since = now
        self._empty_checks += 1
        counts = self.db.counts()
        if self.settings.tasks_known and counts.remaining > 0 and self._quiet_for(now):
            await self._resend_lost(now)

    async def _resend_lost(self, now: float) -> None:
        """Tasks that left the queue without an outcome run again (a few times), then fail.

        A worker killed between acknowledging a task and reporting it loses the outcome; the
        task may or may not have finished. Tasks are run at least once, so it is sent again.
        """
        plan = tasks_to_resend(self.db.unfinished(), MAX_RESENDS)
        resend, give_up = plan.resend, plan.give_up
        for start in range(0, len(resend), 500):
            chunk = resend[start : start + 500]
            await self._call(self.task_queue.send, [Envelope(task) for task in chunk])
        if resend:
            self.db.mark_resent(task.task_id for task in resend)
            self.log(
                f"{len(resend)} tasks left the queue without an outcome event (a worker died "
                "before reporting); sent them again"
            )
        if give_up:
            self.db.fail_tasks(
                list(give_up),
                now,
                f"no outcome event after {MAX_RESENDS + 1} runs (the outcome was lost each time)",
            )
            self.log(f"{len(give_up)} tasks never reported an outcome; marked failed")
        self._empty_since = None
        self._empty_checks = 0

    async def _speculate(self, now: float) -> None:
        """Start stragglers again on idle slots once the queue is empty (see speculation.py).

        Runs at every event poll; it reads the queue's depth only once the last scaling check
        saw fewer tasks waiting than the pool has slots (the depth counts leased messages too;
        the runs in progress are taken off).
        """
        speculator = self.speculator
        option = self.current_option() or self.options[0]
        if speculator is None:
            return
        alive = [t for t in self.tracked.values() if t.first_alive is not None]
        slots = sum(t.tasks_per_instance for t in alive)
        if self._depth - speculator.running_runs > slots:
            return
        chosen = speculator.choose(
            now=now,
            queue_depth=await self._call(self.task_queue.depth),
            slots=slots,
            slot_price_per_hour_usd=option.candidate.price_per_task_slot_hour_usd,
            spent_usd=self.db.spend_usd(now),
        )
        tasks = speculator.tasks_for(chosen, self.db.unfinished) if chosen else []
        if tasks:
            await self._call(self.task_queue.send, [Envelope(task) for task in tasks])
            self.log(
                f"speculative re-runs: started {len(tasks)} stragglers again "
                f"({speculator.policy.describe()}; {speculator.copies} so far)"
            )

    async def _replace_slow(self, now: float) -> None:
        """With speculative re-runs: stop instances observed to be slow while work waits."""
        speculator = self.speculator
        if speculator is None:
            return
        slowness = speculator.slow_instances()
        if not slowness:
            return
        slow = slow_instances_to_replace(
            self.tracked.values(),
            slowness,
            waiting_tasks=max(0, self._depth - speculator.running_runs),
        )
        if not slow:
            return
        for instance_id in slow:
            speculator.forget_instance(instance_id)
            self.log(
                f"instance {instance_id} runs tasks {slowness[instance_id]:.1f}x slower than "
                "the job's other instances; replacing it"
            )
        self.replaced += len(slow)
        await self._terminate(slow, now, "slow")

    def _quiet_for(self, now: float) -> bool:
        """Quiet long enough that tasks without an outcome lost it (``outcomes_presumed_lost``)."""
        return outcomes_presumed_lost(
            now=now,
            empty_since=self._empty_since,
            empty_checks=self._empty_checks,
            last_task_event=self._last_task_event,
            busy_reported_at=self._busy_reported_at,
            running_tasks=(t.running_tasks for t in self.tracked.values()),
            scaling_check_interval_s=self.settings.scaling_check_interval_s,
            grace_s=LOST_OUTCOME_GRACE_S,
        )

    def _remaining(self) -> int:
        counts = self.db.counts()
        if self.settings.tasks_known:
            return counts.remaining
        return max(self._depth, counts.running)

    async def _resize(self, now: float) -> None:
        remaining = self._remaining()
        option = self.current_option()
        if option is None:
            self.log("every instance type and zone hit a capacity error; retrying all of them")
            self.exhausted.clear()
            option = self.options[0]
        limits = self.settings.limits
        spent = self.db.spend_usd(now)
        plan = plan_scaling(
            candidate=option.candidate,
            limits=limits,
            remaining_tasks=remaining,
            instances=list(self.tracked.values()),
            spent_usd=spent,
            now=now,
            scaling_check_interval_s=self.settings.scaling_check_interval_s,
            termination_delay_s=self.settings.instance_termination_delay_s,
        )
        if self.recorder is not None:
            self.recorder.record_decision(
                now,
                candidate=option.candidate,
                target=plan.target,
                decision=plan.cost,
                running=plan.running,
                remaining_tasks=remaining,
                spent_usd=spent,
                limits=limits,
            )
        if plan.stop_for_cost:
            self.log(
                f"max_total_cost=${limits.max_total_cost:g}: stopping "
                f"{len(plan.stop_for_cost)} instances (spent ${spent:.4f})"
            )
            await self._terminate(plan.stop_for_cost, now, "cost cap")
        if plan.cost_cap_reached:
            raise _Abort(
                "cost_cap",
                f"max_total_cost=${limits.max_total_cost:g} reached (spent ${spent:.4f}) with "
                f"{remaining} tasks left; every instance was stopped. Raise max_total_cost and "
                "run 'cloud_tasks run --continue' to finish",
            )
        if plan.stop_idle:
            self.log(f"work is running out: stopping {len(plan.stop_idle)} idle instances")
            await self._terminate(plan.stop_idle, now, "idle")
        if plan.launch > 0:
            self._check_stop()  # 'stop' may have run during this check: replace nothing
            await self._launch(plan.launch, now, on_demand=self._on_demand_wanted())

    def _on_demand_wanted(self) -> int:
        """On-demand instances to start for tasks that keep losing their runs to preemption."""
        times = self.settings.on_demand_after_preemptions
        option = self.current_option()
        if times <= 0 or not self._on_demand or option is None:
            return 0
        stuck = self.db.preempted_tasks(times)
        have = sum(1 for t in self.tracked.values() if t.on_demand)
        wanted = on_demand_wanted(stuck, option.candidate.tasks_per_instance, have)
        if wanted > 0:
            self.log(
                f"{stuck} task{'s' if stuck > 1 else ''} lost {times}+ runs to preemption: "
                f"starting {wanted} on-demand instance{'s' if wanted > 1 else ''}"
            )
        return wanted

    def _on_demand_twin(self, option: LaunchOption) -> LaunchOption | None:
        """The on-demand twin of ``option`` when the pool's price limit leaves room for it."""
        twin = self._on_demand.get(option.key)
        if twin is None:
            return None
        pool = sum(t.price_per_hour_usd for t in self.tracked.values())
        cap = self.settings.limits.max_total_price_per_hour
        return twin if fits_price_cap(pool, twin.candidate.price_per_hour_usd, cap) else None

    async def _launch(self, count: int, now: float, *, on_demand: int = 0) -> None:
        """Start ``count`` instances: the best option first, in batches of ``LAUNCH_BATCH``
        sent ``LAUNCH_CONCURRENCY`` at a time; what an option lacks capacity for goes to the
        next option. A rejection (``RejectedError``, rejected credentials, a bad setting) is
        raised at once; so is a transient failure once the adapters' retries are spent (the
        loop tries again at the next check)."""
        started = 0
        quota: QuotaError | None = None
        only_quota = True
        gate = asyncio.Semaphore(LAUNCH_CONCURRENCY)
        while started < count:
            option = self.current_option()
            if option is None:
                if quota is not None and only_quota and not self.tracked:
                    raise RejectedError(
                        f"{quota}; the quota is too small for even one instance of the job: "
                        "raise it, or pick smaller instance types (instance_types, max_cpu)",
                        setting="quota",
                    )
                self.log("no capacity for any instance type in any zone; retrying next check")
                self.exhausted.clear()
                break
            want = count - started
            twin = self._on_demand_twin(option) if started < on_demand else None
            if twin is not None:
                plan = [(twin, min(want, on_demand - started, self._on_demand_room(twin)))]
            else:
                plan = self._spread(option, want)
            outcomes = await asyncio.gather(
                *(self._launch_batches(pool, n, gate) for pool, n in plan)
            )
            errors: list[ProviderError | ConfigError] = []
            for (pool, asked), (got, error) in zip(plan, outcomes, strict=True):
                started += got
                if twin is not None:
                    self.launched_on_demand += got
                if error is None and got == asked:
                    continue
                where = f"{pool.candidate.name} in {pool.zone or 'the region'}"
                if twin is not None:
                    self.log(f"{where} on-demand: {error or 'no capacity for more'}")
                    on_demand = 0
                    continue
                if error is not None and not isinstance(error, CapacityError):
                    errors.append(error)
                    continue
                if isinstance(error, QuotaError):
                    quota = error
                else:
                    only_quota = False
                self.exhausted.add(pool.key)
                following = self.current_option()
                nxt = (
                    f"trying {following.candidate.name} in {following.zone or 'the region'}"
                    if following
                    else "no other type or zone left"
                )
                reason = str(error) if error is not None else f"capacity for {got} of {asked} only"
                self.log(f"{where}: {reason}; {nxt}")
            if errors:
                raise min(errors, key=launch_error_rank)
        if started:
            self.log(
                f"started {started} instance{'s' if started > 1 else ''} "
                f"({len(self.tracked)} in the pool)"
            )

    def _on_demand_room(self, twin: LaunchOption) -> int:
        """How many on-demand ``twin`` instances fit under ``max_total_price_per_hour``."""
        pool = sum(t.price_per_hour_usd for t in self.tracked.values())
        cap = self.settings.limits.max_total_price_per_hour
        return on_demand_room(pool, twin.candidate.price_per_hour_usd, cap)

    def _spread(self, option: LaunchOption, count: int) -> list[tuple[LaunchOption, int]]:
        """``count`` new instances over ``option`` and the spot options within the spread
        tolerance of it, as (option, instances) with instances > 0."""
        pools = self._spread_pools(option)
        counts = spread_launches(count, [pool for _o, pool in pools])
        return [(o, n) for (o, _pool), n in zip(pools, counts, strict=True) if n]

    def _spread_pools(self, option: LaunchOption) -> list[tuple[LaunchOption, SpreadPool]]:
        running = collections.Counter((t.instance_type, t.zone) for t in self.tracked.values())

        def pool(o: LaunchOption) -> SpreadPool:
            c = o.candidate
            return SpreadPool(
                o.key, c.price_per_task_slot_hour_usd, c.tasks_per_instance, running[o.key]
            )

        tolerance = self.settings.spot_spread_tolerance
        if tolerance <= 0 or not option.candidate.use_spot:
            return [(option, pool(option))]
        region = option.candidate.offer.region
        # Other regions are a fallback (``regions``), never part of the spread.
        usable = {
            o.key: o
            for o in self.options
            if o.candidate.use_spot
            and o.key not in self.exhausted
            and o.candidate.offer.region == region
        }
        usable.setdefault(option.key, option)
        chosen = eligible_pools(pool(option), [pool(o) for o in usable.values()], tolerance)
        return [(usable[p.key], p) for p in chosen]

    async def _launch_batches(
        self, option: LaunchOption, count: int, gate: asyncio.Semaphore
    ) -> tuple[int, ProviderError | ConfigError | None]:
        """Start up to ``count`` instances of one option with concurrent batched calls.

        Returns how many started and the first error, the most permanent first (a rejection
        before a transient failure before a capacity error). Every started instance is
        tracked and recorded before this returns, whatever failed.
        """
        candidate = option.candidate
        spec = InstanceSpec(
            job_id=self.settings.job_id,
            instance_type=candidate.name,
            zone=option.zone,
            image=self.settings.image,
            startup_script=option.startup_script,
            use_spot=candidate.use_spot,
            boot_disk_gb=candidate.boot_disk_gb,
            boot_disk_type=candidate.boot_disk_type,
            service_account=self.settings.service_account,
            price_per_hour_usd=candidate.price_per_hour_usd,
            gpus=candidate.offer.gpus,
            gpu_type=candidate.offer.gpu_type or None,
            attach_gpus=candidate.offer.attach_gpus,
        )
        sizes = [min(LAUNCH_BATCH, count - first) for first in range(0, count, LAUNCH_BATCH)]

        async def one(size: int) -> list[Instance]:
            async with gate:
                if not self.settings.offload:
                    return self.compute.create_instances(spec, size)
                # Threads of their own: the default executor may have fewer than
                # LAUNCH_CONCURRENCY, and launches must not wait behind event polls.
                if self._launch_threads is None:
                    self._launch_threads = ThreadPoolExecutor(
                        LAUNCH_CONCURRENCY, thread_name_prefix="cloud-tasks-launch"
                    )
                return await asyncio.get_running_loop().run_in_executor(
                    self._launch_threads, self.compute.create_instances, spec, size
                )

        results = await asyncio.gather(*(one(size) for size in sizes), return_exceptions=True)
        started = 0
        errors: list[ProviderError | ConfigError] = []
        for result in results:
            if isinstance(result, ProviderError | ConfigError):
                errors.append(result)
                continue
            if isinstance(result, BaseException):
                raise result
            for instance in result:
                self._track_new(instance, option)
            started += len(result)
        errors.sort(key=launch_error_rank)
        return started, (errors[0] if errors else None)

    def _track_new(self, instance: Instance, option: LaunchOption) -> None:
        candidate = option.candidate
        launched = self._now()
        self.tracked[instance.instance_id] = TrackedInstance(
            instance.instance_id,
            candidate.name,
            option.zone,
            candidate.price_per_hour_usd,
            launched,
            candidate.tasks_per_instance,
            last_busy=launched,
            on_demand=not candidate.use_spot,
        )
        self.db.record_instance(
            InstanceRecord(
                instance.instance_id,
                instance.name,
                candidate.name,
                option.zone,
                candidate.use_spot,
                candidate.price_per_hour_usd,
                launched,
            )
        )
        self.launched += 1

    async def _terminate(self, instance_ids: Sequence[str], now: float, reason: str) -> None:
        if not instance_ids:
            return
        await self._call(self.compute.terminate, list(instance_ids))
        self.deliveries.forget_instances(instance_ids)
        for instance_id in instance_ids:
            self.tracked.pop(instance_id, None)
            self.db.end_instance(instance_id, now, reason)

    async def stop_all(self, reason: str) -> list[str]:
        """Stop every instance of the job, tracked or not (tag-scoped)."""
        listed = await self._call(self.compute.list_instances, self.settings.job_id)
        ids = sorted({instance.instance_id for instance in listed} | set(self.tracked))
        if ids:
            self.log(f"stopping {len(ids)} instances ({reason})")
        await self._terminate(ids, self._now(), reason)
        return ids


def describe(option: LaunchOption) -> dict[str, Any]:
    """A launch option as plain data (dry run, logs)."""
    c = option.candidate
    return {
        "instance_type": c.name,
        "zone": option.zone,
        "vcpus": c.vcpus,
        "memory_gib": c.offer.memory_gib,
        "tasks_per_instance": c.tasks_per_instance,
        "boot_disk_gb": c.boot_disk_gb,
        "boot_disk_type": c.boot_disk_type,
        "use_spot": c.use_spot,
        "price_per_hour_usd": c.price_per_hour_usd,
    }


__all__ = [
    "JobOutcome",
    "LaunchOption",
    "PoolManager",
    "PoolSettings",
    "PoolSnapshot",
    "describe",
    "instances_needed",
]
