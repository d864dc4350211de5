"""Slow instances (SPEC §6, speculation): which are judged slow and which are replaced."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.pool_health import (
    MAX_SLOW_SHARE,
    TrackedInstance,
    slow_instances_to_replace,
)
from cloud_tasks.domain.speculation import SpeculationPolicy, host_slowness, slow_hosts

PROPERTY = settings(max_examples=200, deadline=None)


def _pool(count: int, slots: int = 4) -> list[TrackedInstance]:
    return [
        TrackedInstance(f"i-{index}", "m6a.xlarge", "us-east-1a", 0.05, 0.0, slots)
        for index in range(count)
    ]


def test_host_slowness_is_the_mean_over_the_median_after_enough_tasks() -> None:
    policy = SpeculationPolicy(median_factor=3.0)  # slow at 2x the median, after 5 tasks
    seen = {
        "fast": (40, 40 * 60.0),
        "slow": (5, 5 * 240.0),
        "slow-but-new": (4, 4 * 600.0),
        "borderline": (10, 10 * 119.0),
    }
    assert host_slowness(policy, seen, 60.0) == {"slow": 4.0}
    assert slow_hosts(policy, seen, 60.0) == {"slow"}
    assert host_slowness(policy, seen, None) == {}


def test_slowest_replaced_first_while_a_round_of_work_waits() -> None:
    pool = _pool(10)  # 40 slots
    slowness = {"i-3": 2.5, "i-7": 4.0, "gone": 9.0}
    assert slow_instances_to_replace(pool, slowness, waiting_tasks=40) == ("i-7", "i-3")
    # Too little work left for a new instance: the tail is left to speculative re-runs.
    assert slow_instances_to_replace(pool, slowness, waiting_tasks=39) == ()
    assert slow_instances_to_replace([], slowness, waiting_tasks=1000) == ()


def test_when_much_of_the_pool_looks_slow_only_a_share_goes() -> None:
    pool = _pool(10)
    slowness = {f"i-{index}": 2.0 + index for index in range(6)}
    assert slow_instances_to_replace(pool, slowness, waiting_tasks=100) == ("i-5", "i-4")
    assert slow_instances_to_replace(pool[:2], slowness, waiting_tasks=100) == ("i-1",)


@PROPERTY
@given(
    count=st.integers(0, 60),
    slots=st.integers(1, 16),
    slow=st.dictionaries(st.integers(0, 80), st.floats(2.0, 50.0), max_size=40),
    waiting=st.integers(0, 2000),
)
def test_replacement_properties(
    count: int, slots: int, slow: dict[int, float], waiting: int
) -> None:
    pool = _pool(count, slots)
    slowness = {f"i-{index}": factor for index, factor in slow.items()}
    chosen = slow_instances_to_replace(pool, slowness, waiting_tasks=waiting)
    ids = {instance.instance_id for instance in pool}
    # Only tracked instances judged slow, each once, never more than the share (or one).
    assert set(chosen) <= ids & set(slowness)
    assert len(set(chosen)) == len(chosen)
    assert len(chosen) <= max(1, int(MAX_SLOW_SHARE * count))
    # Nothing while less than a round of work for the pool waits in the queue.
    if waiting < count * slots:
        assert chosen == ()
    # Slowest first, and no slower instance is left for a faster one.
    factors = [slowness[instance_id] for instance_id in chosen]
    assert factors == sorted(factors, reverse=True)
    left = [slowness[i] for i in ids & set(slowness) if i not in chosen]
    if chosen and left:
        assert max(left) <= min(factors)
