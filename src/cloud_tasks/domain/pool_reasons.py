"""Why the pool is not larger (SPEC §6): the limits that bound one scaling decision, in words.

The pool manager sizes its pool from the limits, the remaining work and the budget
(``domain.sizing``); this module turns one such decision into the reasons a user reads on the
dashboard: the price cap, the cost cap, capacity errors, quota, or simply the work left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from cloud_tasks.domain.options import PoolLimits

#: Reason kinds, each a short name the dashboard can colour.
REMAINING_WORK: Final = "remaining_work"
PRICE_CAP: Final = "price_cap"
COST_CAP: Final = "cost_cap"
LIMIT: Final = "limit"
CAPACITY: Final = "capacity"
QUOTA: Final = "quota"


@attrs.frozen
class Reason:
    """One thing that keeps the pool from growing: its kind and a sentence."""

    kind: str
    text: str


@attrs.frozen
class LaunchFailure:
    """A launch the provider refused since the previous decision (capacity or quota)."""

    kind: str
    instance_type: str
    zone: str
    message: str


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def why_not_larger(
    *,
    instance_type: str,
    tasks_per_instance: int,
    price_per_hour_usd: float,
    target: int,
    limited_by: str,
    running: int,
    starting: int,
    remaining_tasks: int,
    spent_usd: float,
    projected_usd: float,
    at_cost_cap: bool,
    limits: PoolLimits,
    failures: Sequence[LaunchFailure] = (),
) -> tuple[Reason, ...]:
    """The reasons one scaling decision did not make the pool larger, most binding first.

    ``target`` and ``limited_by`` come from ``target_pool_size``; ``starting`` and
    ``at_cost_cap`` from ``apply_cost_cap``; ``failures`` are the launches refused since the
    previous decision.
    """
    reasons: list[Reason] = []
    if limited_by == "remaining_tasks":
        reasons.append(
            Reason(
                REMAINING_WORK,
                f"{remaining_tasks} unfinished tasks need {target} instance"
                f"{'' if target == 1 else 's'} of {instance_type} "
                f"({tasks_per_instance} tasks each)",
            )
        )
    elif limited_by == "max_total_price_per_hour":
        cap = limits.max_total_price_per_hour or 0.0
        reasons.append(
            Reason(
                PRICE_CAP,
                f"max_total_price_per_hour={_money(cap)}/h allows {target} instances of "
                f"{instance_type} at {_money(price_per_hour_usd)}/h",
            )
        )
    else:
        value = getattr(limits, limited_by, None)
        shown = value if value is not None else "?"
        reasons.append(Reason(LIMIT, f"{limited_by}={shown} allows {target} instances"))
    if at_cost_cap and limits.max_total_cost is not None:
        reasons.append(
            Reason(
                COST_CAP,
                f"max_total_cost={_money(limits.max_total_cost)}: spent {_money(spent_usd)}, "
                f"projected {_money(projected_usd)} with {running + starting} instances "
                f"(of {target} wanted)",
            )
        )
    for failure in failures:
        where = f" in {failure.zone}" if failure.zone else ""
        reasons.append(Reason(failure.kind, f"{failure.instance_type}{where}: {failure.message}"))
    return tuple(reasons)


__all__ = [
    "CAPACITY",
    "COST_CAP",
    "LIMIT",
    "PRICE_CAP",
    "QUOTA",
    "REMAINING_WORK",
    "LaunchFailure",
    "Reason",
    "why_not_larger",
]
