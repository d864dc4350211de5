"""Spreading a spot pool over several capacity pools (one type in one zone).

A spot reclaim wave hits one capacity pool (one type in one zone) at a time; a pool spread over
several loses only part of itself. Pools qualify when they run the same number of tasks per
instance as the best one and cost at most ``tolerance`` more per task slot; new instances go
where the pool is furthest below its share, and cheaper pools get larger shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from cloud_tasks.domain.selection import Candidate


@attrs.frozen
class SpreadPool:
    """One capacity pool: its price per task slot and how many instances it already has."""

    key: tuple[str, str]
    price_per_task_slot_hour_usd: float
    tasks_per_instance: int
    running: int = 0


def eligible_pools(
    best: SpreadPool, pools: Sequence[SpreadPool], tolerance: float
) -> list[SpreadPool]:
    """``best`` and every pool with its tasks per instance whose price per task slot is within
    ``tolerance`` (a fraction) of it, in the given order, without duplicates."""
    if tolerance <= 0:
        return [best]
    ceiling = best.price_per_task_slot_hour_usd * (1.0 + tolerance) + 1e-12
    chosen = [best]
    seen = {best.key}
    for pool in pools:
        if pool.key in seen or pool.tasks_per_instance != best.tasks_per_instance:
            continue
        if pool.price_per_task_slot_hour_usd <= ceiling:
            chosen.append(pool)
            seen.add(pool.key)
    return chosen


def shares(pools: Sequence[SpreadPool]) -> list[float]:
    """Each pool's share of the instances: proportional to the best price over its price."""
    if not pools:
        return []
    best = min(p.price_per_task_slot_hour_usd for p in pools)
    weights = [
        best / p.price_per_task_slot_hour_usd if p.price_per_task_slot_hour_usd > 0 else 1.0
        for p in pools
    ]
    total = sum(weights)
    return [w / total for w in weights]


def spread_launches(count: int, pools: Sequence[SpreadPool]) -> list[int]:
    """How many of ``count`` new instances each pool gets, so that running + new comes as close
    as it can to each pool's share of the whole (never taking an instance away). Ties go to the
    earlier (cheaper) pool."""
    if not pools or count <= 0:
        return [0] * len(pools)
    fractions = shares(pools)
    counts = [p.running for p in pools]
    new = [0] * len(pools)
    total = sum(counts)
    for _ in range(count):
        total += 1
        gaps = [fractions[i] * total - counts[i] for i in range(len(pools))]
        pick = max(range(len(pools)), key=lambda i: (gaps[i], -i))
        counts[pick] += 1
        new[pick] += 1
    return new


def candidate_shares(
    ranked: Sequence[Candidate], tolerance: float, max_types: int
) -> dict[tuple[str, str], float]:
    """(type, zone or "") → share of a new spot pool, for ranked candidates (best first) of
    which the first ``max_types`` types are launch options; {} when not spreading."""
    if not ranked or not ranked[0].use_spot or tolerance <= 0:
        return {}
    types: list[str] = []
    pools = []
    for c in ranked:
        if c.name not in types:
            if len(types) >= max_types:
                continue
            types.append(c.name)
        pools.append(
            SpreadPool(
                (c.name, c.offer.zone or ""), c.price_per_task_slot_hour_usd, c.tasks_per_instance
            )
        )
    chosen = eligible_pools(pools[0], pools, tolerance)
    return {p.key: share for p, share in zip(chosen, shares(chosen), strict=True)}


__all__ = ["SpreadPool", "candidate_shares", "eligible_pools", "shares", "spread_launches"]
