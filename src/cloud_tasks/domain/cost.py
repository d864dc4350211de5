"""Cost arithmetic (SPEC §6): dry-run estimates, spend so far, and the lower bound on cost.

Prices are USD per hour, durations seconds, costs USD.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from cloud_tasks.domain.selection import Candidate

__all__ = [
    "Estimate",
    "InstanceUsage",
    "estimate_job",
    "lower_bound_cost_usd",
    "spend_usd",
    "total_spend_usd",
]


@attrs.frozen
class Estimate:
    """A dry-run plan: what runs, for how long, at what cost.

    ``count`` is the number of instances started and ``price_per_hour_usd`` what they cost
    together per hour while all run. ``waves`` is how many rounds of tasks each slot runs.
    """

    instance_type: str
    zone: str | None
    use_spot: bool
    count: int
    tasks_per_instance: int
    price_per_hour_usd: float
    waves: int
    makespan_s: float
    instance_hours: float
    total_cost_usd: float


def estimate_job(
    candidate: Candidate,
    count: int,
    num_tasks: int,
    task_duration_s: float,
    *,
    boot_s: float = 0.0,
    idle_tail_s: float = 0.0,
) -> Estimate:
    """Estimate makespan and cost of ``num_tasks`` tasks of ``task_duration_s`` each.

    The model: only ``min(count, ceil(num_tasks / tasks_per_instance))`` instances start, all
    at once, and take ``boot_s`` to boot. Every slot runs a task at a time, so the tasks run in
    ``waves = ceil(num_tasks / slots)`` rounds and ``makespan = boot_s + waves * duration``.
    Instances bill from start until ``idle_tail_s`` (``instance_termination_delay``) after their
    last task. Workers pull from one queue, so the ``r`` tasks of a partial last wave are
    assumed spread over ``min(instances, r)`` instances, each billing that last round in full;
    the other instances stop after the full waves. This is a little pessimistic for the last
    wave and ignores preemption; ``cloud_tasks simulate`` models both.

    Raises:
        ValueError: ``count`` or the candidate's task slots are 0 while there are tasks, or a
            duration is negative.
    """
    if task_duration_s < 0 or boot_s < 0 or idle_tail_s < 0:
        raise ValueError("durations must be non-negative")
    slots_per_instance = candidate.tasks_per_instance
    if num_tasks > 0 and (count <= 0 or slots_per_instance <= 0):
        raise ValueError(f"{num_tasks} tasks cannot run on {count} instances of {candidate.name}")
    tasks = max(num_tasks, 0)
    if tasks == 0:
        used = 0
        waves = 0
        instance_s = 0.0
        makespan_s = 0.0
    else:
        used = min(count, -(-tasks // slots_per_instance))
        slots = used * slots_per_instance
        full_waves, remainder = divmod(tasks, slots)
        waves = full_waves + (1 if remainder else 0)
        makespan_s = boot_s + waves * task_duration_s
        instance_s = used * (boot_s + full_waves * task_duration_s + idle_tail_s)
        instance_s += min(used, remainder) * task_duration_s
    price = candidate.price_per_hour_usd
    instance_hours = instance_s / 3600.0
    return Estimate(
        instance_type=candidate.name,
        zone=candidate.offer.zone,
        use_spot=candidate.use_spot,
        count=used,
        tasks_per_instance=slots_per_instance,
        price_per_hour_usd=price * used,
        waves=waves,
        makespan_s=makespan_s,
        instance_hours=instance_hours,
        total_cost_usd=price * instance_hours,
    )


def spend_usd(price_per_hour_usd: float, running_s: float) -> float:
    """What an instance costs for ``running_s`` seconds at ``price_per_hour_usd``."""
    return price_per_hour_usd * max(running_s, 0.0) / 3600.0


@attrs.frozen
class InstanceUsage:
    """One instance the manager started: its all-in price and when it ran (clock seconds).

    ``stopped_at_s`` is ``None`` while it still runs.
    """

    price_per_hour_usd: float
    started_at_s: float
    stopped_at_s: float | None = None


def total_spend_usd(usages: Iterable[InstanceUsage], now_s: float) -> float:
    """Spend so far: Σ price * running time over every instance, running ones up to ``now_s``."""
    return math.fsum(
        spend_usd(
            usage.price_per_hour_usd,
            (now_s if usage.stopped_at_s is None else min(usage.stopped_at_s, now_s))
            - usage.started_at_s,
        )
        for usage in usages
    )


def lower_bound_cost_usd(total_task_s: float, candidates: Iterable[Candidate]) -> float:
    """No schedule can cost less: all task-seconds at the cheapest slot price of any candidate.

    It ignores boot time, idle slots and the last partial wave, so a real run's
    ``cost / lower_bound`` ratio says how much those cost.

    Raises:
        ValueError: ``candidates`` is empty.
    """
    cheapest = min(
        (candidate.price_per_task_slot_hour_usd for candidate in candidates), default=None
    )
    if cheapest is None:
        raise ValueError("the lower bound needs at least one eligible instance type")
    return cheapest * max(total_task_s, 0.0) / 3600.0
