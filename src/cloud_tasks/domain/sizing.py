"""Pool sizing (SPEC §6): how many instances to run, within the limits, the work and the budget.

Three decisions, each a pure function the pool manager calls at every scaling check:

1. :func:`target_pool_size`: the largest count allowed by every :class:`PoolLimits` maximum,
   never more than the remaining work needs.
2. :func:`apply_cost_cap`: which running instances to keep and how many to start so that the
   projected spend stays within ``max_total_cost``.
3. :func:`idle_instances_to_terminate`: which instances have been idle long enough to stop.

The minimum limits (``min_instances``, ``min_total_cpus``, ``min_simultaneous_tasks``,
``min_total_price_per_hour``) are consistency checks, not extra instances: because the target
is already the largest count the maximums allow, a minimum can only conflict with a maximum
(which is a :class:`~cloud_tasks.exceptions.ConfigError`, reported against the chosen instance
type) or ask for more instances than the remaining work needs (the work wins: idle instances
bought to satisfy a minimum would only cost money). ``max_total_cost`` wins over every minimum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.selection import Candidate
from cloud_tasks.exceptions import ConfigError

__all__ = [
    "CostCapDecision",
    "PoolTarget",
    "apply_cost_cap",
    "cost_horizon_s",
    "idle_instances_to_terminate",
    "pool_size_bounds",
    "target_pool_size",
]

_EPS: Final = 1e-9
#: Default time an instance keeps billing after the manager decides to stop it: the stop call,
#: the shutdown, and the one-minute minimum both AWS and GCP bill for a started instance.
STOP_ALLOWANCE_S: Final = 60.0


@attrs.frozen
class PoolTarget:
    """How many instances the pool should have, and which limit decided it.

    ``limited_by`` is the name of the binding limit (``max_instances``, ``max_total_cpus``,
    ``max_simultaneous_tasks``, ``max_total_price_per_hour``) or ``remaining_tasks``.
    """

    count: int
    limited_by: str


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _describe(candidate: Candidate) -> str:
    return (
        f"{candidate.name} ({candidate.vcpus} vCPUs, {candidate.tasks_per_instance} task slots, "
        f"{candidate.price_per_hour_usd:.4f} USD/h)"
    )


def pool_size_bounds(candidate: Candidate, limits: PoolLimits) -> tuple[int, int, str]:
    """The smallest and largest instance counts of ``candidate`` that ``limits`` allow.

    Returns ``(floor, ceiling, limited_by)`` where ``limited_by`` names the maximum that set the
    ceiling.

    Raises:
        ConfigError: a minimum cannot be met without breaking a maximum, with this type.
    """
    vcpus = candidate.vcpus
    slots = candidate.tasks_per_instance
    price = candidate.price_per_hour_usd
    if slots <= 0 or vcpus <= 0:
        raise ConfigError(f"{candidate.name}: an instance type with no task slots cannot be sized")
    ceilings: list[tuple[int, str]] = [(max(limits.max_instances, 0), "max_instances")]
    if limits.max_total_cpus is not None:
        ceilings.append((max(limits.max_total_cpus, 0) // vcpus, "max_total_cpus"))
    if limits.max_simultaneous_tasks is not None:
        ceilings.append((max(limits.max_simultaneous_tasks, 0) // slots, "max_simultaneous_tasks"))
    if limits.max_total_price_per_hour is not None and price > 0:
        allowed = math.floor(limits.max_total_price_per_hour / price + _EPS)
        # The tolerance must never let the pool's price cross the limit.
        if allowed * price > limits.max_total_price_per_hour + _EPS:
            allowed -= 1
        ceilings.append((max(allowed, 0), "max_total_price_per_hour"))
    ceiling, limited_by = min(ceilings, key=lambda item: item[0])

    floors: list[tuple[int, str]] = [
        (max(limits.min_instances, 0), f"min_instances={limits.min_instances}")
    ]
    if limits.min_total_cpus is not None:
        floors.append(
            (math.ceil(limits.min_total_cpus / vcpus), f"min_total_cpus={limits.min_total_cpus}")
        )
    if limits.min_simultaneous_tasks is not None:
        floors.append(
            (
                math.ceil(limits.min_simultaneous_tasks / slots),
                f"min_simultaneous_tasks={limits.min_simultaneous_tasks}",
            )
        )
    if limits.min_total_price_per_hour is not None and limits.min_total_price_per_hour > 0:
        what = f"min_total_price_per_hour={_fmt(limits.min_total_price_per_hour)}"
        if price <= 0:
            raise ConfigError(
                f"{what} cannot be reached with {_describe(candidate)}: it costs nothing; "
                "remove min_total_price_per_hour"
            )
        floors.append((math.ceil(limits.min_total_price_per_hour / price - _EPS), what))
    floor, floor_reason = max(floors, key=lambda item: item[0])
    if floor > ceiling:
        ceiling_value = getattr(limits, limited_by)
        floor_name = floor_reason.split("=")[0]
        raise ConfigError(
            f"{floor_reason} needs {floor} instances of {_describe(candidate)} but "
            f"{limited_by}={_fmt(ceiling_value)} allows {ceiling}; lower {floor_name} "
            f"or raise {limited_by}"
        )
    return floor, ceiling, limited_by


def target_pool_size(candidate: Candidate, limits: PoolLimits, remaining_tasks: int) -> PoolTarget:
    """The number of ``candidate`` instances the pool should run now.

    The largest count within every maximum of ``limits`` and at most
    ``ceil(remaining_tasks / tasks_per_instance)``; 0 when no work remains. ``remaining_tasks``
    counts tasks not yet terminal (queued or running).

    Raises:
        ConfigError: the minimum limits conflict with the maximums for this type, or the
            maximums allow no instance while work remains.
    """
    _, ceiling, limited_by = pool_size_bounds(candidate, limits)
    remaining = max(remaining_tasks, 0)
    needed = -(-remaining // candidate.tasks_per_instance)
    if remaining > 0 and ceiling == 0:
        raise ConfigError(
            f"{limited_by}={_fmt(getattr(limits, limited_by))} allows no instance of "
            f"{_describe(candidate)}; raise {limited_by}"
        )
    if needed < ceiling:
        return PoolTarget(needed, "remaining_tasks")
    return PoolTarget(ceiling, limited_by)


def cost_horizon_s(
    scaling_check_interval_s: float, stop_allowance_s: float = STOP_ALLOWANCE_S
) -> float:
    """How long each instance kept or started now may bill before the manager can stop it.

    A decision holds until the next scaling check (``scaling_check_interval_s``); an instance
    told to stop then keeps billing for ``stop_allowance_s`` (stop latency and the providers'
    one-minute billing minimum).
    """
    return max(scaling_check_interval_s, 0.0) + max(stop_allowance_s, 0.0)


@attrs.frozen
class CostCapDecision:
    """What the cost cap allows for the next interval.

    ``keep`` and ``stop`` are indices into the running instances passed in; ``start`` is how
    many new instances may start. ``projected_spend_usd`` is spend so far plus every kept and
    started instance billing for the whole horizon. ``at_cap`` is true when the cap forced the
    pool below what was asked: the manager should stop starting instances and drain.
    """

    keep: tuple[int, ...]
    stop: tuple[int, ...]
    start: int
    projected_spend_usd: float
    at_cap: bool


def apply_cost_cap(
    *,
    target_count: int,
    running_prices_per_hour_usd: Sequence[float],
    new_price_per_hour_usd: float,
    spent_usd: float,
    max_total_cost_usd: float | None,
    horizon_s: float,
) -> CostCapDecision:
    """Keep and start instances only while ``spent + Σ price * horizon`` stays within the cap.

    Running instances come first (they are already booted): the cheapest are kept while the
    budget lasts, ties going to the earlier index, so a caller that lists busy instances first
    keeps those. New instances (``target_count`` minus the running ones) start only when every
    running instance is kept and the budget still covers them. With no cap, everything running
    is kept and the shortfall is started. Once ``spent_usd`` reaches the cap nothing is kept.

    Prices are per hour in USD, ``horizon_s`` in seconds (see :func:`cost_horizon_s`).
    """
    hours = max(horizon_s, 0.0) / 3600.0
    running = len(running_prices_per_hour_usd)
    wanted_new = max(target_count - running, 0)
    if max_total_cost_usd is None:
        projected = spent_usd + hours * (
            math.fsum(running_prices_per_hour_usd) + wanted_new * new_price_per_hour_usd
        )
        return CostCapDecision(tuple(range(running)), (), wanted_new, projected, False)

    cap = max_total_cost_usd
    projected = spent_usd
    keep: list[int] = []
    order = sorted(range(running), key=lambda index: (running_prices_per_hour_usd[index], index))
    if spent_usd < cap:
        for index in order:
            next_projected = projected + running_prices_per_hour_usd[index] * hours
            if next_projected > cap:
                break
            keep.append(index)
            projected = next_projected
    start = 0
    if len(keep) == running:
        per_instance = new_price_per_hour_usd * hours
        while start < wanted_new and spent_usd < cap:
            next_projected = projected + per_instance
            if next_projected > cap:
                break
            start += 1
            projected = next_projected
    kept = tuple(sorted(keep))
    kept_set = set(kept)
    stop = tuple(index for index in range(running) if index not in kept_set)
    at_cap = bool(stop) or start < wanted_new or spent_usd >= cap
    return CostCapDecision(kept, stop, start, projected, at_cap)


def idle_instances_to_terminate(
    *,
    now_s: float,
    last_busy_s: Mapping[str, float],
    termination_delay_s: float,
    keep_at_least: int = 0,
) -> tuple[str, ...]:
    """Instances idle for at least ``termination_delay_s``, longest idle first.

    ``last_busy_s`` maps instance id to when it last ran a task (its boot time if it never
    has), on the same clock as ``now_s``. At most ``len(last_busy_s) - keep_at_least`` are
    returned, so the pool never shrinks below ``keep_at_least`` (pass the target size so that
    instances still needed are not stopped for a pause in the queue). Ties go to the id.
    """
    idle = sorted(
        (last, instance_id)
        for instance_id, last in last_busy_s.items()
        if now_s - last >= termination_delay_s
    )
    allowed = max(len(last_busy_s) - max(keep_at_least, 0), 0)
    return tuple(instance_id for _, instance_id in idle[:allowed])
