"""Spreading a spot pool over capacity pools (type and zone) within a price tolerance."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.spread import SpreadPool, eligible_pools, shares, spread_launches

PROPERTY = settings(max_examples=200, deadline=None)

pools = st.lists(
    st.builds(
        SpreadPool,
        key=st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["z1", "z2", "z3"])),
        price_per_task_slot_hour_usd=st.floats(0.001, 1.0),
        tasks_per_instance=st.sampled_from([1, 2, 4]),
        running=st.integers(0, 50),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda p: p.key,
)


@PROPERTY
@given(pools, st.floats(0.0, 1.0))
def test_eligible_pools_are_within_the_tolerance_and_run_as_many_tasks(
    candidates: list[SpreadPool], tolerance: float
) -> None:
    best = candidates[0]
    chosen = eligible_pools(best, candidates, tolerance)
    assert chosen[0] == best and len({p.key for p in chosen}) == len(chosen)
    for pool in chosen:
        assert pool.tasks_per_instance == best.tasks_per_instance
        assert (
            pool.price_per_task_slot_hour_usd
            <= best.price_per_task_slot_hour_usd * (1 + tolerance) + 1e-9
        )
    if tolerance == 0:
        assert chosen == [best]


@PROPERTY
@given(pools, st.integers(0, 500))
def test_every_new_instance_goes_somewhere_and_shares_are_followed(
    chosen: list[SpreadPool], count: int
) -> None:
    new = spread_launches(count, chosen)
    assert sum(new) == count and all(n >= 0 for n in new)
    fractions = shares(chosen)
    assert abs(sum(fractions) - 1.0) < 1e-9
    if all(p.running == 0 for p in chosen):
        # From an empty pool each gets its share, give or take one instance.
        for n, fraction in zip(new, fractions, strict=True):
            assert abs(n - fraction * count) <= 1.0 + 1e-9


def test_cheaper_pools_get_more_and_a_shrunken_pool_is_refilled_first() -> None:
    cheap = SpreadPool(("a", "z1"), 0.010, 2)
    dear = SpreadPool(("b", "z2"), 0.011, 2)
    assert spread_launches(21, [cheap, dear]) == [11, 10]
    # A preemption wave emptied the cheap pool: the replacements go there.
    assert spread_launches(5, [SpreadPool(("a", "z1"), 0.010, 2, 0), attrs_running(dear, 10)]) == [
        5,
        0,
    ]


def attrs_running(pool: SpreadPool, running: int) -> SpreadPool:
    return SpreadPool(pool.key, pool.price_per_task_slot_hour_usd, pool.tasks_per_instance, running)
