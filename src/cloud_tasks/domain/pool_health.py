"""Pool health (SPEC §6, §12): which instances are lost, dead or stuck, and when the job's
startup script is probably broken.

The pool manager keeps one :class:`TrackedInstance` per instance it supervises and, at every
scaling check, asks these functions what to do: :func:`lost_instances` (the provider reports
them ended), :func:`unhealthy_instances` (no keep-alive in time), :func:`record_loss` and
:func:`broken_startup` (a crash loop of instances that never work),
:func:`outcomes_presumed_lost` (the queue is quiet while tasks still lack an outcome) and
:func:`slow_instances_to_replace` (instances observed to run tasks slowly, with speculative
re-runs). Times are seconds on the manager's clock, passed in as ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import attrs

#: Provider states of an instance that ended (``InstanceState`` values).
ENDED_STATES: Final = frozenset({"preempted", "failed", "terminated"})
#: The reason given for an instance the provider no longer lists.
GONE: Final = "gone"
PREEMPTED: Final = "preempted"
#: Startup failures (an instance lost before any keep-alive) tolerated while no instance has
#: ever worked, before the job stops as "startup script probably broken".
MAX_STARTUP_FAILURES: Final = 3
#: A queue that stays empty this long (and for three checks) while tasks still lack an outcome
#: means those outcomes were lost; the tasks are sent again rather than waited on forever.
LOST_OUTCOME_GRACE_S: Final = 30.0
#: At most this share of the pool is replaced as slow: when more of it looks slow, the
#: slowness belongs to the job (or its data), not to its hosts.
MAX_SLOW_SHARE: Final = 0.2


@attrs.define
class TrackedInstance:
    """What the pool manager knows about one instance it supervises (times on its clock)."""

    instance_id: str
    instance_type: str
    zone: str
    price_per_hour_usd: float
    launched_at: float
    tasks_per_instance: int
    first_alive: float | None = None
    last_alive: float | None = None
    last_busy: float = 0.0
    running_tasks: int = 0
    on_demand: bool = False
    #: Reported an event about a task (its worker took work), not only keep-alives.
    worked: bool = False


@attrs.frozen
class Lost:
    """An instance the provider reports ended (its state) or no longer lists (``GONE``)."""

    instance_id: str
    reason: str

    @property
    def preempted(self) -> bool:
        return self.reason == PREEMPTED


def lost_instances(tracked: Iterable[str], reported: Mapping[str, str]) -> list[Lost]:
    """The tracked instances that ended, in ``tracked`` order.

    ``reported`` maps each instance the provider lists to its state value; an instance in
    ``ENDED_STATES`` is lost with that state as the reason, one missing from ``reported`` is
    lost as ``GONE``. Pending, running and stopping instances are not lost.
    """
    lost: list[Lost] = []
    for instance_id in tracked:
        state = reported.get(instance_id)
        if state is None:
            lost.append(Lost(instance_id, GONE))
        elif state in ENDED_STATES:
            lost.append(Lost(instance_id, state))
    return lost


@attrs.frozen
class Unhealthy:
    """Instances to replace: ``never_alive`` sent no keep-alive within the startup timeout,
    ``silent`` sent some and then none for longer than the keep-alive timeout."""

    never_alive: tuple[str, ...] = ()
    silent: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.never_alive + self.silent


def unhealthy_instances(
    instances: Iterable[TrackedInstance],
    now: float,
    *,
    keepalive_interval_s: float,
    keepalive_startup_timeout_s: float,
    keepalive_timeout_s: float,
) -> Unhealthy:
    """The instances whose keep-alives stopped or never came, in ``instances`` order.

    Nothing is unhealthy when workers were told not to send keep-alives
    (``keepalive_interval_s <= 0``); a timeout of 0 turns its check off. An instance heard from
    within its timeout is never unhealthy.
    """
    if keepalive_interval_s <= 0:
        return Unhealthy()
    never: list[str] = []
    silent: list[str] = []
    for instance in instances:
        if instance.first_alive is None:
            if (
                keepalive_startup_timeout_s > 0
                and now - instance.launched_at > keepalive_startup_timeout_s
            ):
                never.append(instance.instance_id)
        elif (
            keepalive_timeout_s > 0
            and instance.last_alive is not None
            and now - instance.last_alive > keepalive_timeout_s
        ):
            silent.append(instance.instance_id)
    return Unhealthy(tuple(never), tuple(silent))


@attrs.frozen
class StartupHistory:
    """What the job's instances did so far, for telling a broken startup from bad luck."""

    #: Some instance sent a keep-alive (the startup script runs the worker).
    ever_alive: bool = False
    #: Some instance reported a task event (a worker took work).
    ever_worked: bool = False
    #: Instances that ended before sending any keep-alive.
    startup_failures: int = 0
    #: Instances that sent keep-alives, then ended (not preempted) before any task event.
    died_before_work: int = 0


def record_loss(
    history: StartupHistory, instance: TrackedInstance, *, preempted: bool
) -> StartupHistory:
    """The history once ``instance`` ended (lost, or replaced as unhealthy).

    Before any keep-alive it is a startup failure; after keep-alives but before any task event
    it died before work, unless it was preempted (the provider took it back: not the
    worker's fault).
    """
    if instance.first_alive is None:
        return attrs.evolve(history, startup_failures=history.startup_failures + 1)
    if not preempted and not instance.worked:
        return attrs.evolve(history, died_before_work=history.died_before_work + 1)
    return history


@attrs.frozen
class BrokenStartup:
    """The job should stop: its startup script (or worker) is probably broken.

    ``what`` says what was seen; ``crash_loop`` is true when workers start and then die (which
    a ``cloud_tasks stop`` ending the instances can also look like).
    """

    what: str
    crash_loop: bool = False


def broken_startup(
    history: StartupHistory, max_failures: int = MAX_STARTUP_FAILURES
) -> BrokenStartup | None:
    """Whether ended instances show a broken startup; only while no instance ever worked.

    No instance ever sent a keep-alive and ``max_failures`` ended before sending one; or none
    ever reported a task and ``max_failures`` ended before that, some after keep-alives (the
    worker starts, then dies).
    """
    if not history.ever_alive and history.startup_failures >= max_failures:
        return BrokenStartup(
            f"{history.startup_failures} instances ended before sending any keep-alive"
        )
    if history.ever_worked or history.died_before_work == 0:
        return None
    ended = history.startup_failures + history.died_before_work
    if ended < max_failures:
        return None
    return BrokenStartup(
        f"{ended} instances ended before reporting any task ({history.died_before_work} of "
        "them after a keep-alive: the worker starts, then dies)",
        crash_loop=True,
    )


def silent_startup(
    unhealthy: Unhealthy, history: StartupHistory, keepalive_startup_timeout_s: float
) -> BrokenStartup | None:
    """No instance ever sent a keep-alive and one already outlived the startup timeout."""
    if not unhealthy.never_alive or history.ever_alive:
        return None
    return BrokenStartup(
        "no instance sent a keep-alive within keepalive_startup_timeout="
        f"{keepalive_startup_timeout_s:g}s"
    )


def outcomes_presumed_lost(
    *,
    now: float,
    empty_since: float | None,
    empty_checks: int,
    last_task_event: float,
    busy_reported_at: float,
    running_tasks: Iterable[int],
    scaling_check_interval_s: float,
    grace_s: float = LOST_OUTCOME_GRACE_S,
) -> bool:
    """The queue has been empty, and no worker busy or reporting, for long enough that tasks
    still without an outcome lost it (their worker died between taking and reporting them).

    Queue depths are approximate (and lag on some providers), so an empty queue alone is not
    trusted: three checks in a row, a grace period (at least three check intervals), no task
    event and no keep-alive reporting running tasks during it, and no instance running tasks.
    """
    grace = max(grace_s, 3 * scaling_check_interval_s)
    return (
        empty_since is not None
        and empty_checks >= 3
        and now - empty_since >= grace
        and now - last_task_event >= grace
        and now - busy_reported_at >= grace
        and all(running == 0 for running in running_tasks)
    )


def slow_instances_to_replace(
    instances: Iterable[TrackedInstance],
    slowness: Mapping[str, float],
    *,
    waiting_tasks: int,
    max_share: float = MAX_SLOW_SHARE,
) -> tuple[str, ...]:
    """Slow instances to stop now, so that the pool replaces them, slowest first.

    ``slowness`` maps an instance judged slow to how many times slower than the job's its
    finished tasks ran (see ``cloud_tasks.domain.speculation.host_slowness``). An instance is
    replaced only while ``waiting_tasks`` (in the queue, not running) would keep every slot of
    the pool busy for a round more: then its replacement still finds work, and the tasks it
    was running go back to the queue. Later, in the tail of the job, speculative re-runs copy
    its tasks instead. At most ``max_share`` of the pool (and at least one instance) goes at
    once.
    """
    pool = list(instances)
    slots = sum(max(instance.tasks_per_instance, 1) for instance in pool)
    if not pool or waiting_tasks < slots:
        return ()
    slow = sorted(
        (-slowness[instance.instance_id], instance.instance_id)
        for instance in pool
        if instance.instance_id in slowness
    )
    limit = max(1, int(max_share * len(pool)))
    return tuple(instance_id for _factor, instance_id in slow[:limit])


__all__ = [
    "ENDED_STATES",
    "GONE",
    "LOST_OUTCOME_GRACE_S",
    "MAX_SLOW_SHARE",
    "MAX_STARTUP_FAILURES",
    "PREEMPTED",
    "BrokenStartup",
    "Lost",
    "StartupHistory",
    "TrackedInstance",
    "Unhealthy",
    "broken_startup",
    "lost_instances",
    "outcomes_presumed_lost",
    "record_loss",
    "silent_startup",
    "slow_instances_to_replace",
    "unhealthy_instances",
]
