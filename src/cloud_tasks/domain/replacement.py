"""Replacing and resizing the pool (SPEC §6, §12): how many instances to start or stop at one
scaling check, on-demand instances for tasks that keep losing their runs to preemption, which
launch error to act on, and when to give up on a failing provider.

The pool manager calls :func:`plan_scaling` at every scaling check and acts on the
:class:`ScalingPlan`; the sizing rules themselves are in :mod:`cloud_tasks.domain.sizing`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import attrs

from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.pool_health import TrackedInstance
from cloud_tasks.domain.selection import Candidate
from cloud_tasks.domain.sizing import (
    CostCapDecision,
    PoolTarget,
    apply_cost_cap,
    cost_horizon_s,
    idle_instances_to_terminate,
    target_pool_size,
)
from cloud_tasks.exceptions import (
    CapacityError,
    CloudTasksError,
    ConfigError,
    CredentialsError,
    QueueNotFoundError,
    RejectedError,
)

#: How long the manager keeps retrying while the provider fails (throttling, outages) before it
#: gives up; the queue, the task database and the instances are kept for ``run --continue``.
PROVIDER_OUTAGE_LIMIT_S: Final = 900.0
#: Errors no retry can fix: the run stops what it started and ends with the error's line
#: (which names the setting to change). A queue deleted under the run ends it the same way.
PERMANENT_ERRORS: Final = (RejectedError, CredentialsError, ConfigError, QueueNotFoundError)
#: Slack when comparing prices per hour with a cap (float sums).
_EPS: Final = 1e-9


def instances_needed(remaining_tasks: int, tasks_per_instance: int) -> int:
    """Instances needed to run every remaining task at once."""
    return math.ceil(max(remaining_tasks, 0) / max(tasks_per_instance, 1))


@attrs.frozen
class ScalingPlan:
    """What one scaling check does, in this order.

    ``stop_for_cost`` are stopped to stay within ``max_total_cost``; when
    ``cost_cap_reached`` the run ends there (the cap left no instance while work remains).
    Otherwise ``stop_idle`` are stopped (idle beyond the target) and ``launch`` new instances
    are started. ``target`` and ``cost`` are the sizing decisions behind it (for the
    dashboard), ``running`` the instances the check started from.
    """

    target: PoolTarget
    cost: CostCapDecision
    running: int
    stop_for_cost: tuple[str, ...] = ()
    cost_cap_reached: bool = False
    stop_idle: tuple[str, ...] = ()
    launch: int = 0


def plan_scaling(
    *,
    candidate: Candidate,
    limits: PoolLimits,
    remaining_tasks: int,
    instances: Sequence[TrackedInstance],
    spent_usd: float,
    now: float,
    scaling_check_interval_s: float,
    termination_delay_s: float,
) -> ScalingPlan:
    """Size the pool of ``candidate`` instances for the work left and the budget.

    The target comes from the limits and ``remaining_tasks``; the cost cap keeps the busiest
    instances first (latest ``last_busy``) and may stop some; idle instances beyond the target
    are stopped once idle for ``termination_delay_s``; new instances start only while work
    remains. The pool never grows above the target (so never above ``max_instances``).
    """
    target = target_pool_size(candidate, limits, remaining_tasks)
    # Busy instances first, so the cost cap keeps those that are working.
    active = sorted(instances, key=lambda t: -t.last_busy)
    decision = apply_cost_cap(
        target_count=target.count,
        running_prices_per_hour_usd=[t.price_per_hour_usd for t in active],
        new_price_per_hour_usd=candidate.price_per_hour_usd,
        spent_usd=spent_usd,
        max_total_cost_usd=limits.max_total_cost,
        horizon_s=cost_horizon_s(scaling_check_interval_s),
    )
    stop_for_cost = tuple(active[index].instance_id for index in decision.stop)
    plan = ScalingPlan(target, decision, len(active), stop_for_cost)
    if (
        decision.at_cap
        and not decision.keep
        and decision.start == 0
        and remaining_tasks > 0
        and limits.max_total_cost is not None
    ):
        return attrs.evolve(plan, cost_cap_reached=True)
    stopped = set(stop_for_cost)
    left = [t for t in instances if t.instance_id not in stopped]
    idle: tuple[str, ...] = ()
    if len(left) > target.count:
        idle = idle_instances_to_terminate(
            now_s=now,
            last_busy_s={t.instance_id: t.last_busy for t in left},
            termination_delay_s=termination_delay_s,
            keep_at_least=target.count,
        )
    launch = decision.start if remaining_tasks > 0 else 0
    return attrs.evolve(plan, stop_idle=idle, launch=max(launch, 0))


def on_demand_wanted(stuck_tasks: int, tasks_per_instance: int, on_demand_running: int) -> int:
    """On-demand instances to start so that every task stuck on preemptions has a slot on one
    (``on_demand_running`` already run); never negative."""
    if stuck_tasks <= 0:
        return 0
    return max(instances_needed(stuck_tasks, tasks_per_instance) - on_demand_running, 0)


def fits_price_cap(
    pool_price_per_hour_usd: float, price_per_hour_usd: float, cap: float | None
) -> bool:
    """Whether one more instance at ``price_per_hour_usd`` keeps the pool within ``cap``."""
    return cap is None or pool_price_per_hour_usd + price_per_hour_usd <= cap + _EPS


def on_demand_room(
    pool_price_per_hour_usd: float, price_per_hour_usd: float, cap: float | None
) -> int:
    """How many instances at ``price_per_hour_usd`` fit under the pool's price ``cap`` (at
    least one: the caller checked :func:`fits_price_cap` for the first)."""
    if cap is None or price_per_hour_usd <= 0:
        return 1 << 30
    return max(1, int((cap - pool_price_per_hour_usd + _EPS) // price_per_hour_usd))


def launch_error_rank(error: CloudTasksError) -> int:
    """Which launch error to act on first: a rejection, then a transient failure, then a
    capacity error (which only moves the launch to the next option)."""
    if isinstance(error, PERMANENT_ERRORS):
        return 0
    if isinstance(error, CapacityError):
        return 2
    return 1


def outage_outlasted(
    failing_since: float, now: float, limit_s: float = PROVIDER_OUTAGE_LIMIT_S
) -> bool:
    """Whether a step failing since ``failing_since`` has failed for longer than ``limit_s``:
    the manager stops retrying it and ends the run."""
    return now - failing_since > limit_s


__all__ = [
    "PERMANENT_ERRORS",
    "PROVIDER_OUTAGE_LIMIT_S",
    "ScalingPlan",
    "fits_price_cap",
    "instances_needed",
    "launch_error_rank",
    "on_demand_room",
    "on_demand_wanted",
    "outage_outlasted",
    "plan_scaling",
]
