"""Cost arithmetic (SPEC §6): estimates, spend so far and the lower bound."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.cost import (
    InstanceUsage,
    estimate_job,
    lower_bound_cost_usd,
    spend_usd,
    total_spend_usd,
)
from cloud_tasks.domain.selection import Candidate, rank_offers, select_instance_type
from tests.domain.strategies import candidates
from tests.domain.test_selection import CATALOG, quickstart_constraints

PROPERTY = settings(max_examples=200, deadline=None)


def test_estimate_for_the_quickstart_plan() -> None:
    cand = select_instance_type(CATALOG, quickstart_constraints())  # 8 slots, 0.388972 USD/h
    estimate = estimate_job(cand, count=2, num_tasks=40, task_duration_s=600.0)
    # 16 slots: 40 tasks run in 3 waves (16, 16, 8); the 8 of the last wave land on both.
    assert estimate.instance_type == "n2-standard-8"
    assert (estimate.count, estimate.tasks_per_instance, estimate.waves) == (2, 8, 3)
    assert estimate.makespan_s == 1800.0
    assert estimate.price_per_hour_usd == pytest.approx(2 * 0.388972)
    assert estimate.instance_hours == pytest.approx(1.0)
    assert estimate.total_cost_usd == pytest.approx(0.388972)


def test_estimate_starts_only_the_instances_the_work_needs_and_bills_boot_and_tail() -> None:
    cand = select_instance_type(CATALOG, quickstart_constraints())
    estimate = estimate_job(
        cand, count=5, num_tasks=10, task_duration_s=3600.0, boot_s=60.0, idle_tail_s=60.0
    )
    assert estimate.count == 2
    assert estimate.waves == 1
    assert estimate.makespan_s == 3660.0
    assert estimate.instance_hours == pytest.approx(2 * (3600 + 120) / 3600)
    nothing = estimate_job(cand, count=5, num_tasks=0, task_duration_s=10.0)
    assert (nothing.count, nothing.makespan_s, nothing.total_cost_usd) == (0, 0.0, 0.0)
    with pytest.raises(ValueError, match="10 tasks cannot run on 0 instances"):
        estimate_job(cand, count=0, num_tasks=10, task_duration_s=1.0)


@PROPERTY
@given(
    candidates,
    st.integers(1, 40),
    st.integers(0, 5000),
    st.sampled_from((0.5, 30.0, 600.0, 3600.0)),
    st.sampled_from((0.0, 90.0)),
    st.sampled_from((0.0, 60.0)),
)
def test_estimates_sit_between_the_lower_bound_and_the_whole_pool_for_the_whole_makespan(
    cand: Candidate, count: int, num_tasks: int, duration: float, boot_s: float, tail_s: float
) -> None:

    estimate = estimate_job(cand, count, num_tasks, duration, boot_s=boot_s, idle_tail_s=tail_s)
    slots = cand.tasks_per_instance
    assert estimate.count == min(count, math.ceil(num_tasks / slots))
    if num_tasks:
        assert estimate.waves == math.ceil(num_tasks / (estimate.count * slots))
        assert estimate.makespan_s == pytest.approx(boot_s + estimate.waves * duration)
    lower = lower_bound_cost_usd(num_tasks * duration, [cand])
    assert estimate.total_cost_usd >= lower - 1e-9
    whole = estimate.price_per_hour_usd * (estimate.makespan_s + tail_s) / 3600
    assert estimate.total_cost_usd <= whole + 1e-9


def test_spend_accumulates_price_times_running_time() -> None:
    assert spend_usd(0.36, 600.0) == pytest.approx(0.06)
    assert spend_usd(1.0, -5.0) == 0.0
    usages = [
        InstanceUsage(price_per_hour_usd=0.36, started_at_s=0.0, stopped_at_s=600.0),
        InstanceUsage(price_per_hour_usd=0.72, started_at_s=300.0),
        InstanceUsage(price_per_hour_usd=0.72, started_at_s=100.0, stopped_at_s=5000.0),
    ]
    # The last one stops in the future: it is billed up to now.
    assert total_spend_usd(usages, now_s=1200.0) == pytest.approx(0.06 + 0.18 + 0.22)
    assert total_spend_usd([], now_s=1200.0) == 0.0


def test_lower_bound_uses_the_cheapest_slot_price_of_all_eligible_types() -> None:
    ranked = rank_offers(CATALOG, quickstart_constraints())
    cheapest = ranked[0].price_per_task_slot_hour_usd
    assert lower_bound_cost_usd(7200.0, ranked) == pytest.approx(2 * cheapest)
    assert lower_bound_cost_usd(7200.0, reversed(ranked)) == pytest.approx(2 * cheapest)
    with pytest.raises(ValueError, match="at least one eligible instance type"):
        lower_bound_cost_usd(10.0, [])
