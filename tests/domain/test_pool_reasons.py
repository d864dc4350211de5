"""Why the pool is not larger: the binding limit first, the cost cap and refused launches after."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.options import PoolLimits
from cloud_tasks.domain.pool_reasons import (
    CAPACITY,
    COST_CAP,
    LIMIT,
    PRICE_CAP,
    QUOTA,
    REMAINING_WORK,
    LaunchFailure,
    why_not_larger,
)

_FIRST = {
    "remaining_tasks": REMAINING_WORK,
    "max_total_price_per_hour": PRICE_CAP,
    "max_instances": LIMIT,
    "max_total_cpus": LIMIT,
    "max_simultaneous_tasks": LIMIT,
}


@given(
    limited_by=st.sampled_from(sorted(_FIRST)),
    at_cost_cap=st.booleans(),
    cost_cap=st.none() | st.floats(0.01, 1000),
    failures=st.lists(
        st.builds(
            LaunchFailure,
            st.sampled_from([CAPACITY, QUOTA]),
            st.sampled_from(["m7i.large", "n2-standard-4"]),
            st.sampled_from(["", "us-east-1a"]),
            st.text(min_size=1, max_size=30),
        ),
        max_size=4,
    ),
)
def test_the_reasons_follow_the_decision(
    limited_by: str, at_cost_cap: bool, cost_cap: float | None, failures: list[LaunchFailure]
) -> None:
    reasons = why_not_larger(
        instance_type="m7i.large",
        tasks_per_instance=2,
        price_per_hour_usd=0.05,
        target=3,
        limited_by=limited_by,
        running=3,
        starting=0,
        remaining_tasks=6,
        spent_usd=1.0,
        projected_usd=1.2,
        at_cost_cap=at_cost_cap,
        limits=PoolLimits(max_instances=3, max_total_cost=cost_cap),
        failures=failures,
    )
    kinds = [reason.kind for reason in reasons]
    assert kinds[0] == _FIRST[limited_by]
    assert (COST_CAP in kinds) == (at_cost_cap and cost_cap is not None)
    assert kinds[len(kinds) - len(failures) :] == [f.kind for f in failures]
    for failure, reason in zip(failures, reasons[len(reasons) - len(failures) :], strict=True):
        assert failure.instance_type in reason.text and failure.message in reason.text


def test_named_examples() -> None:
    (work,) = why_not_larger(
        instance_type="m7i.large",
        tasks_per_instance=2,
        price_per_hour_usd=0.05,
        target=2,
        limited_by="remaining_tasks",
        running=2,
        starting=0,
        remaining_tasks=3,
        spent_usd=0.0,
        projected_usd=0.0,
        at_cost_cap=False,
        limits=PoolLimits(),
    )
    assert work.text == "3 unfinished tasks need 2 instances of m7i.large (2 tasks each)"
    price, cost = why_not_larger(
        instance_type="m7i.large",
        tasks_per_instance=2,
        price_per_hour_usd=0.05,
        target=4,
        limited_by="max_total_price_per_hour",
        running=2,
        starting=1,
        remaining_tasks=100,
        spent_usd=8.5,
        projected_usd=9.9,
        at_cost_cap=True,
        limits=PoolLimits(max_instances=50, max_total_price_per_hour=0.2, max_total_cost=10.0),
    )
    assert price.text == (
        "max_total_price_per_hour=$0.2000/h allows 4 instances of m7i.large at $0.0500/h"
    )
    assert (
        cost.text
        == "max_total_cost=$10.00: spent $8.50, projected $9.90 with 3 instances (of 4 wanted)"
    )
