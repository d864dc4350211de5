"""Slow instances (SPEC §6, speculation): which are judged slow and which are replaced."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.pool_health import (
    MAX_SLOW_SHARE,
    TrackedInstance,
    slow_instances_to_replace,
)
from cloud_tasks.domain.speculation import (
    NO_TIMES,
    LogTimes,
    SpeculationPolicy,
    add_log_time,
    host_slowness,
    slow_hosts,
)

PROPERTY = settings(max_examples=200, deadline=None)


def _pool(count: int, slots: int = 4) -> list[TrackedInstance]:
    return [
        TrackedInstance(f"i-{index}", "m6a.xlarge", "us-east-1a", 0.05, 0.0, slots)
        for index in range(count)
    ]


def _times(*seconds: float) -> LogTimes:
    out = NO_TIMES
    for value in seconds:
        out = add_log_time(out, value)
    return out


def test_a_host_is_slow_when_its_typical_task_time_is_well_above_the_jobs() -> None:
    policy = SpeculationPolicy(median_factor=3.0)  # twice the job's, after 5 tasks
    fast = [50.0, 60.0, 70.0] * 100
    hosts = {
        "fast": _times(*fast),
        "slow": _times(240.0, 240.0, 240.0, 240.0, 240.0),
        "slow-but-new": _times(600.0, 600.0, 600.0, 600.0),
        "a-bit-slow": _times(*[110.0] * 10),
    }
    job = _times(*fast, *([240.0] * 5), *([600.0] * 4), *([110.0] * 10))
    slowness = host_slowness(policy, hosts, job)
    assert set(slowness) == {"slow"}
    assert slowness["slow"] == pytest.approx(240.0 / math.exp(job[1] / job[0]))
    assert slow_hosts(policy, hosts, job) == {"slow"}
    assert host_slowness(policy, hosts, NO_TIMES) == {}


def test_long_tasks_are_no_evidence_when_task_times_spread_widely() -> None:
    """With a wide spread (lognormal sigma 1.5) a few long tasks on one host prove nothing;
    many slow tasks do."""
    rng = random.Random(7)
    policy = SpeculationPolicy(median_factor=3.0)
    job_seconds = [rng.lognormvariate(4.0, 1.5) for _ in range(5000)]
    job = _times(*job_seconds)
    # Five long tasks, 2.4x the job's typical time.
    unlucky = _times(*sorted(job_seconds)[-2500:][::500])
    assert host_slowness(policy, {"unlucky": unlucky}, job) == {}
    slow = _times(*(4 * rng.lognormvariate(4.0, 1.5) for _ in range(60)))
    assert set(host_slowness(policy, {"slow": slow}, job)) == {"slow"}


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
