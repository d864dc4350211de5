"""Pool sizing (SPEC §6): limits, remaining work, the cost cap and idle termination."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.constraints import InstanceConstraints
from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.selection import Candidate, select_instance_type
from cloud_tasks.domain.sizing import (
    apply_cost_cap,
    cost_horizon_s,
    idle_instances_to_terminate,
    pool_size_bounds,
    target_pool_size,
)
from cloud_tasks.exceptions import ConfigError
from tests.domain.strategies import candidates, pool_limits, prices
from tests.domain.test_selection import CATALOG, quickstart_constraints

TOL = 1e-9
PROPERTY = settings(max_examples=200, deadline=None)


def within_limits(n: int, cand: Candidate, limits: PoolLimits) -> bool:
    """Whether ``n`` instances of ``cand`` respect every maximum of ``limits``."""
    return (
        n <= limits.max_instances
        and (limits.max_total_cpus is None or n * cand.vcpus <= limits.max_total_cpus)
        and (
            limits.max_simultaneous_tasks is None
            or n * cand.tasks_per_instance <= limits.max_simultaneous_tasks
        )
        and (
            limits.max_total_price_per_hour is None
            or n * cand.price_per_hour_usd <= limits.max_total_price_per_hour + TOL
        )
    )


def meets_minimums(n: int, cand: Candidate, limits: PoolLimits) -> bool:
    return (
        n >= limits.min_instances
        and (limits.min_total_cpus is None or n * cand.vcpus >= limits.min_total_cpus)
        and (
            limits.min_simultaneous_tasks is None
            or n * cand.tasks_per_instance >= limits.min_simultaneous_tasks
        )
        and (
            not limits.min_total_price_per_hour
            or n * cand.price_per_hour_usd >= limits.min_total_price_per_hour - TOL
        )
    )


@PROPERTY
@given(candidates, pool_limits, st.integers(0, 5000))
def test_pool_size_is_the_largest_count_within_every_limit_and_the_work(
    cand: Candidate, limits: PoolLimits, remaining: int
) -> None:
    needed = math.ceil(remaining / cand.tasks_per_instance)
    # Every count the maximums allow, searched directly (a pool never exceeds 50 instances here).
    allowed = [n for n in range(0, 51) if within_limits(n, cand, limits)]
    ceiling = max(allowed)
    consistent = any(meets_minimums(n, cand, limits) for n in allowed)
    if not consistent or (remaining > 0 and ceiling == 0):
        with pytest.raises(ConfigError):
            target_pool_size(cand, limits, remaining)
        return
    target = target_pool_size(cand, limits, remaining)
    assert within_limits(target.count, cand, limits)
    assert target.count <= needed
    assert target.count == min(ceiling, needed)
    if target.limited_by == "remaining_tasks":
        assert target.count == needed
    else:
        assert not within_limits(target.count + 1, cand, limits)
        assert f"{target.limited_by}" in {
            "max_instances",
            "max_total_cpus",
            "max_simultaneous_tasks",
            "max_total_price_per_hour",
        }
    floor, top, _ = pool_size_bounds(cand, limits)
    assert floor <= top == ceiling


running_prices = st.lists(prices(2000), max_size=12)


@PROPERTY
@given(
    st.integers(0, 30),
    running_prices,
    prices(2000),
    st.integers(0, 20000).map(lambda n: n / 100),
    st.one_of(st.none(), st.integers(0, 20000).map(lambda n: n / 100)),
    st.sampled_from((0.0, 60.0, 120.0, 600.0, 3600.0)),
)
def test_projected_spend_never_exceeds_the_cost_cap(
    target: int,
    running: list[float],
    new_price: float,
    spent: float,
    cap: float | None,
    horizon_s: float,
) -> None:
    decision = apply_cost_cap(
        target_count=target,
        running_prices_per_hour_usd=running,
        new_price_per_hour_usd=new_price,
        spent_usd=spent,
        max_total_cost_usd=cap,
        horizon_s=horizon_s,
    )
    assert sorted(decision.keep + decision.stop) == list(range(len(running)))
    assert not set(decision.keep) & set(decision.stop)
    wanted = max(target - len(running), 0)
    assert 0 <= decision.start <= wanted
    hours = horizon_s / 3600
    projected = spent + hours * (
        math.fsum(running[i] for i in decision.keep) + decision.start * new_price
    )
    assert decision.projected_spend_usd == pytest.approx(projected)
    if cap is None:
        assert decision.keep == tuple(range(len(running)))
        assert decision.start == wanted
        assert not decision.at_cap
        return
    if spent >= cap:
        assert decision.keep == () and decision.start == 0 and decision.at_cap
        return
    assert projected <= cap + TOL
    # Nothing was given up that the budget could still pay for.
    if decision.stop:
        cheapest_stopped = min(running[i] for i in decision.stop)
        assert projected + cheapest_stopped * hours > cap - TOL
        assert decision.start == 0
    elif decision.start < wanted:
        assert projected + new_price * hours > cap - TOL
    assert decision.at_cap == bool(decision.stop or decision.start < wanted)


@PROPERTY
@given(
    st.dictionaries(st.sampled_from([f"i-{n}" for n in range(10)]), st.integers(0, 1000)),
    st.integers(0, 1200),
    st.sampled_from((0.0, 60.0, 300.0)),
    st.integers(0, 12),
)
def test_idle_termination_respects_the_delay_and_the_floor(
    last_busy: dict[str, int], now: int, delay: float, keep_at_least: int
) -> None:
    last = {key: float(value) for key, value in last_busy.items()}
    chosen = idle_instances_to_terminate(
        now_s=float(now), last_busy_s=last, termination_delay_s=delay, keep_at_least=keep_at_least
    )
    expired = {key for key, value in last.items() if now - value >= delay}
    assert set(chosen) <= expired
    assert len(chosen) == len(set(chosen))
    assert len(last) - len(chosen) >= min(keep_at_least, len(last))
    assert len(chosen) == min(len(expired), max(len(last) - keep_at_least, 0))
    assert [last[key] for key in chosen] == sorted(last[key] for key in chosen)
    if chosen:
        # The ones kept among the expired were idle no longer than any one stopped.
        kept_expired = expired - set(chosen)
        assert all(last[key] >= max(last[k] for k in chosen) for key in kept_expired)


# --- named examples --------------------------------------------------------------------------


def n2_standard_8() -> Candidate:
    return select_instance_type(CATALOG, quickstart_constraints())


def test_quickstart_limits_allow_two_n2_standard_8_within_one_dollar_an_hour() -> None:
    limits = PoolLimits(max_instances=5, max_total_price_per_hour=1.0)
    target = target_pool_size(n2_standard_8(), limits, remaining_tasks=100)
    assert (target.count, target.limited_by) == (2, "max_total_price_per_hour")


def test_the_pool_shrinks_with_the_remaining_work() -> None:
    limits = PoolLimits(max_instances=5, max_total_price_per_hour=None)
    cand = n2_standard_8()
    assert target_pool_size(cand, limits, 100).count == 5
    assert target_pool_size(cand, limits, 17) == attrs.evolve(
        target_pool_size(cand, limits, 17), count=3, limited_by="remaining_tasks"
    )
    assert target_pool_size(cand, limits, 8).count == 1
    assert target_pool_size(cand, limits, 0).count == 0


def test_each_maximum_can_be_the_binding_one() -> None:
    cand = n2_standard_8()
    free = PoolLimits(max_instances=50, max_total_price_per_hour=None)
    assert target_pool_size(cand, attrs.evolve(free, max_total_cpus=20), 1000).count == 2
    assert target_pool_size(
        cand, attrs.evolve(free, max_simultaneous_tasks=33), 1000
    ).limited_by == ("max_simultaneous_tasks")


def test_a_minimum_the_maximums_cannot_meet_is_a_clear_error() -> None:
    limits = PoolLimits(min_instances=3, max_instances=5, max_total_price_per_hour=1.0)
    with pytest.raises(ConfigError) as caught:
        target_pool_size(n2_standard_8(), limits, 100)
    assert str(caught.value) == (
        "min_instances=3 needs 3 instances of n2-standard-8 (8 vCPUs, 8 task slots, 0.3890 USD/h)"
        " but max_total_price_per_hour=1 allows 2; lower min_instances or raise "
        "max_total_price_per_hour"
    )


def test_maximums_that_allow_no_instance_while_work_remains_are_an_error() -> None:
    limits = PoolLimits(max_simultaneous_tasks=4)
    with pytest.raises(ConfigError, match="max_simultaneous_tasks=4 allows no instance of n2-st"):
        target_pool_size(n2_standard_8(), limits, 10)
    assert target_pool_size(n2_standard_8(), limits, 0).count == 0


def test_a_minimum_price_on_a_free_instance_type_is_an_error() -> None:
    local = select_instance_type(
        [attrs.evolve(CATALOG[2], price_per_hour_usd=0.0, boot_disks=())],
        InstanceConstraints(),
    )
    with pytest.raises(ConfigError, match="min_total_price_per_hour=1 cannot be reached"):
        target_pool_size(local, PoolLimits(min_total_price_per_hour=1.0), 10)
    assert target_pool_size(local, PoolLimits(max_instances=4), 100).count == 4


def test_the_cost_cap_keeps_the_cheapest_running_instances_and_starts_none_past_it() -> None:
    # 10 USD spent, cap 11 USD, one hour ahead: 1 USD left for the next hour.
    decision = apply_cost_cap(
        target_count=5,
        running_prices_per_hour_usd=[0.5, 0.3, 0.4],
        new_price_per_hour_usd=0.1,
        spent_usd=10.0,
        max_total_cost_usd=11.0,
        horizon_s=3600.0,
    )
    assert (decision.keep, decision.stop, decision.start) == ((1, 2), (0,), 0)
    assert decision.projected_spend_usd == pytest.approx(10.7)
    assert decision.at_cap


def test_the_cost_cap_starts_what_the_budget_covers() -> None:
    decision = apply_cost_cap(
        target_count=10,
        running_prices_per_hour_usd=[0.4],
        new_price_per_hour_usd=0.4,
        spent_usd=1.0,
        max_total_cost_usd=2.0,
        horizon_s=cost_horizon_s(scaling_check_interval_s=1800.0, stop_allowance_s=1800.0),
    )
    assert (decision.keep, decision.start, decision.at_cap) == ((0,), 1, True)
    unlimited = apply_cost_cap(
        target_count=10,
        running_prices_per_hour_usd=[0.4],
        new_price_per_hour_usd=0.4,
        spent_usd=1.0,
        max_total_cost_usd=None,
        horizon_s=3600.0,
    )
    assert (unlimited.start, unlimited.at_cap) == (9, False)


def test_cost_horizon_is_the_check_interval_plus_the_stop_allowance() -> None:
    assert cost_horizon_s(60.0) == 120.0
    assert cost_horizon_s(30.0, stop_allowance_s=0.0) == 30.0


def test_only_instances_idle_past_the_delay_are_terminated_longest_idle_first() -> None:
    last_busy = {"i-a": 100.0, "i-b": 30.0, "i-c": 50.0, "i-d": 200.0}
    assert idle_instances_to_terminate(
        now_s=200.0, last_busy_s=last_busy, termination_delay_s=60.0
    ) == ("i-b", "i-c", "i-a")
    assert idle_instances_to_terminate(
        now_s=200.0, last_busy_s=last_busy, termination_delay_s=60.0, keep_at_least=2
    ) == ("i-b", "i-c")
    assert (
        idle_instances_to_terminate(now_s=200.0, last_busy_s=last_busy, termination_delay_s=600.0)
        == ()
    )
