"""Replacing and resizing the pool (SPEC §6, §12): the scaling plan, on-demand instances,
launch-error order and the provider-outage limit."""

from __future__ import annotations

import attrs
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.pool_health import TrackedInstance
from cloud_tasks.domain.replacement import (
    PROVIDER_OUTAGE_LIMIT_S,
    ScalingPlan,
    fits_price_cap,
    instances_needed,
    launch_error_rank,
    on_demand_room,
    on_demand_wanted,
    outage_outlasted,
    plan_scaling,
)
from cloud_tasks.domain.selection import Candidate
from cloud_tasks.exceptions import (
    CapacityError,
    ConfigError,
    CredentialsError,
    ProviderError,
    QuotaError,
    RejectedError,
)
from tests.domain.strategies import _candidate, candidates, pool_limits, prices

PROPERTY = settings(max_examples=100, deadline=None)


@st.composite
def running_pools(draw: st.DrawFn) -> list[TrackedInstance]:
    count = draw(st.integers(0, 15))
    return [
        TrackedInstance(
            f"i-{index}",
            "n2-standard-2",
            "us-central1-a",
            draw(prices(3000)),
            0.0,
            2,
            last_busy=float(draw(st.integers(0, 600))),
        )
        for index in range(count)
    ]


def _plan(
    candidate: Candidate,
    limits: PoolLimits,
    remaining: int,
    pool: list[TrackedInstance],
    spent: float,
) -> ScalingPlan:
    try:
        return plan_scaling(
            candidate=candidate,
            limits=limits,
            remaining_tasks=remaining,
            instances=pool,
            spent_usd=spent,
            now=600.0,
            scaling_check_interval_s=60.0,
            termination_delay_s=120.0,
        )
    except ConfigError:
        assume(False)  # limits that contradict each other are refused before any launch
        raise


@PROPERTY
@given(candidates, pool_limits, st.integers(0, 500), running_pools(), prices(50000))
def test_never_launch_above_max_instances_nor_without_work(
    candidate: Candidate,
    limits: PoolLimits,
    remaining: int,
    pool: list[TrackedInstance],
    spent: float,
) -> None:
    plan = _plan(candidate, limits, remaining, pool, spent)
    assert plan.launch >= 0
    if plan.launch:
        assert remaining > 0
        assert len(pool) + plan.launch <= limits.max_instances
        assert len(pool) + plan.launch <= plan.target.count
        assert not plan.stop_for_cost and not plan.stop_idle
    assert plan.running == len(pool)


@PROPERTY
@given(candidates, pool_limits, st.integers(0, 500), running_pools(), prices(50000))
def test_only_running_instances_are_stopped_and_idle_ones_never_below_the_target(
    candidate: Candidate,
    limits: PoolLimits,
    remaining: int,
    pool: list[TrackedInstance],
    spent: float,
) -> None:
    plan = _plan(candidate, limits, remaining, pool, spent)
    ids = {t.instance_id for t in pool}
    assert set(plan.stop_for_cost) <= ids and set(plan.stop_idle) <= ids
    assert set(plan.stop_for_cost).isdisjoint(plan.stop_idle)
    left = len(pool) - len(plan.stop_for_cost)
    assert left - len(plan.stop_idle) >= min(plan.target.count, left)
    busy = {t.instance_id: t.last_busy for t in pool}
    assert all(600.0 - busy[i] >= 120.0 for i in plan.stop_idle)
    if plan.cost_cap_reached:
        assert remaining > 0 and limits.max_total_cost is not None
        assert plan.launch == 0 and plan.stop_idle == ()


@PROPERTY
@given(candidates, pool_limits, prices(5000), st.integers(1, 500), running_pools())
def test_the_cost_cap_keeps_the_busiest_instances(
    candidate: Candidate,
    limits: PoolLimits,
    cap: float,
    remaining: int,
    pool: list[TrackedInstance],
) -> None:
    limits = attrs.evolve(limits, max_total_cost=cap)
    plan = _plan(candidate, limits, remaining, pool, spent=0.0)
    stopped = set(plan.stop_for_cost)
    kept = [t for t in pool if t.instance_id not in stopped]
    for gone in (t for t in pool if t.instance_id in stopped):
        # Every kept instance is cheaper, or as cheap and at least as busy.
        assert all(
            k.price_per_hour_usd < gone.price_per_hour_usd
            or (k.price_per_hour_usd == gone.price_per_hour_usd and k.last_busy >= gone.last_busy)
            for k in kept
        )


def test_a_spent_budget_with_work_left_ends_the_run() -> None:
    candidate = _one_candidate()
    pool = [TrackedInstance("i-0", "t", "z", 1.0, 0.0, 2)]
    limits = PoolLimits(max_total_cost=5.0)
    plan = _plan(candidate, limits, 10, pool, spent=5.0)
    assert plan.cost_cap_reached and plan.stop_for_cost == ("i-0",) and plan.launch == 0
    assert not _plan(candidate, limits, 0, pool, spent=5.0).cost_cap_reached


def _one_candidate() -> Candidate:
    return _candidate(2, 1.0, 1.0, use_spot=True)


@given(st.integers(-5, 200), st.integers(1, 16), st.integers(0, 50))
def test_on_demand_instances_cover_every_stuck_task(
    stuck: int, tasks_per_instance: int, running: int
) -> None:
    wanted = on_demand_wanted(stuck, tasks_per_instance, running)
    assert wanted >= 0
    assert (running + wanted) * tasks_per_instance >= max(stuck, 0)
    if wanted:
        assert running + wanted == instances_needed(stuck, tasks_per_instance)


@given(prices(20000), prices(3000), st.one_of(st.none(), prices(20000)))
def test_on_demand_room_stays_under_the_price_cap(
    pool: float, price: float, cap: float | None
) -> None:
    room = on_demand_room(pool, price, cap)
    assert room >= 1
    if cap is not None and fits_price_cap(pool, price, cap):
        assert pool + room * price <= cap + 1e-6
    assert fits_price_cap(pool, price, None)


def test_launch_errors_are_acted_on_rejection_first_capacity_last() -> None:
    errors = [
        CapacityError("no room"),
        ProviderError("throttled"),
        QuotaError("quota"),
        RejectedError("bad image", setting="image"),
        CredentialsError("expired"),
    ]
    ranked = sorted(errors, key=launch_error_rank)
    assert isinstance(ranked[0], RejectedError | CredentialsError)
    assert isinstance(ranked[2], ProviderError) and not isinstance(ranked[2], CapacityError)
    assert all(isinstance(e, CapacityError) for e in ranked[3:])


@given(st.floats(0, 1e5), st.floats(0, 1e5))
def test_the_outage_limit_is_passed_only_after_it_elapsed(since: float, now: float) -> None:
    assert outage_outlasted(since, now) == (now - since > PROVIDER_OUTAGE_LIMIT_S)
    assert not outage_outlasted(now, now)


def test_named_example_a_new_job_starts_what_the_work_needs() -> None:
    plan = _plan(_one_candidate(), PoolLimits(max_instances=10), 7, [], 0.0)
    assert (plan.target.count, plan.launch) == (4, 4)  # 7 tasks, 2 per instance
    assert plan.stop_for_cost == plan.stop_idle == ()
