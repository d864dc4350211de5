"""Pool health (SPEC §6, §12): lost and unhealthy instances, and broken-startup verdicts."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain.pool_health import (
    ENDED_STATES,
    GONE,
    BrokenStartup,
    StartupHistory,
    TrackedInstance,
    broken_startup,
    lost_instances,
    outcomes_presumed_lost,
    record_loss,
    silent_startup,
    unhealthy_instances,
)

PROPERTY = settings(max_examples=200, deadline=None)
STATES = ("pending", "running", "stopping", "terminated", "preempted", "failed")
times = st.integers(0, 2000).map(float)
timeouts = st.sampled_from((0.0, 30.0, 300.0, 600.0))


@st.composite
def instances(draw: st.DrawFn, index: int = 0) -> TrackedInstance:
    launched = draw(times)
    first = draw(st.one_of(st.none(), times.map(lambda t: launched + t)))
    last = None if first is None else first + draw(times)
    return TrackedInstance(
        f"i-{index}",
        "n2-standard-2",
        "us-central1-a",
        0.1,
        launched,
        2,
        first_alive=first,
        last_alive=last,
        worked=draw(st.booleans()),
    )


pools = st.integers(0, 8).flatmap(lambda n: st.tuples(*(instances(i) for i in range(n))))
histories = st.builds(
    StartupHistory,
    ever_alive=st.booleans(),
    ever_worked=st.booleans(),
    startup_failures=st.integers(0, 6),
    died_before_work=st.integers(0, 6),
)


@PROPERTY
@given(pools, st.integers(0, 6000).map(float), timeouts, timeouts)
def test_an_instance_heard_from_within_the_timeout_is_never_declared_dead(
    pool: tuple[TrackedInstance, ...], now: float, startup_timeout: float, timeout: float
) -> None:
    unhealthy = unhealthy_instances(
        pool,
        now,
        keepalive_interval_s=60.0,
        keepalive_startup_timeout_s=startup_timeout,
        keepalive_timeout_s=timeout,
    )
    by_id = {t.instance_id: t for t in pool}
    assert set(unhealthy.never_alive).isdisjoint(unhealthy.silent)
    for instance_id in unhealthy.silent:
        last = by_id[instance_id].last_alive
        assert last is not None and timeout > 0 and now - last > timeout
    for instance_id in unhealthy.never_alive:
        instance = by_id[instance_id]
        assert instance.first_alive is None
        assert startup_timeout > 0 and now - instance.launched_at > startup_timeout
    # And every instance past its timeout is caught.
    for instance in pool:
        if instance.last_alive is not None and timeout > 0 and now - instance.last_alive > timeout:
            assert instance.instance_id in unhealthy.silent


@given(pools, st.integers(0, 6000).map(float))
def test_without_keepalives_no_instance_is_unhealthy(
    pool: tuple[TrackedInstance, ...], now: float
) -> None:
    unhealthy = unhealthy_instances(
        pool,
        now,
        keepalive_interval_s=0.0,
        keepalive_startup_timeout_s=1.0,
        keepalive_timeout_s=1.0,
    )
    assert unhealthy.all == ()


@given(
    st.lists(st.integers(0, 20).map(lambda n: f"i-{n}"), unique=True),
    st.dictionaries(st.integers(0, 20).map(lambda n: f"i-{n}"), st.sampled_from(STATES)),
)
def test_only_ended_or_unlisted_instances_are_lost(
    tracked: list[str], reported: dict[str, str]
) -> None:
    lost = lost_instances(tracked, reported)
    assert [loss.instance_id for loss in lost] == [
        i for i in tracked if i not in reported or reported[i] in ENDED_STATES
    ]
    for loss in lost:
        assert loss.reason == reported.get(loss.instance_id, GONE)
        assert loss.preempted == (reported.get(loss.instance_id) == "preempted")


@given(histories, instances(), st.booleans())
def test_a_preemption_after_a_keepalive_never_counts_towards_a_broken_startup(
    history: StartupHistory, instance: TrackedInstance, preempted: bool
) -> None:
    after = record_loss(history, instance, preempted=preempted)
    ended_after = after.startup_failures + after.died_before_work
    ended_before = history.startup_failures + history.died_before_work
    if instance.first_alive is None:
        assert after.startup_failures == history.startup_failures + 1
    elif preempted or instance.worked:
        assert after == history
    else:
        assert after.died_before_work == history.died_before_work + 1
    assert ended_after - ended_before in (0, 1)
    assert (after.ever_alive, after.ever_worked) == (history.ever_alive, history.ever_worked)


@given(histories)
def test_a_job_whose_instances_worked_is_never_declared_broken(history: StartupHistory) -> None:
    worked = attrs.evolve(history, ever_alive=True, ever_worked=True)
    assert broken_startup(worked) is None


@given(histories, st.integers(1, 6))
def test_broken_startup_needs_enough_ended_instances(history: StartupHistory, limit: int) -> None:
    verdict = broken_startup(history, limit)
    if history.startup_failures + history.died_before_work < limit:
        assert verdict is None
    if verdict is not None:
        assert "instances ended before" in verdict.what
        assert verdict.crash_loop == (history.ever_alive or history.startup_failures < limit)


def test_named_examples_of_broken_startups() -> None:
    three_silent = StartupHistory(startup_failures=3)
    assert broken_startup(three_silent) == BrokenStartup(
        "3 instances ended before sending any keep-alive"
    )
    crash_loop = StartupHistory(ever_alive=True, startup_failures=1, died_before_work=2)
    verdict = broken_startup(crash_loop)
    assert verdict is not None and verdict.crash_loop
    assert "2 of them after a keep-alive" in verdict.what
    assert broken_startup(StartupHistory(ever_alive=True, startup_failures=5)) is None

    late = TrackedInstance("i-1", "t", "z", 0.1, 0.0, 1)
    unhealthy = unhealthy_instances(
        [late],
        700.0,
        keepalive_interval_s=60.0,
        keepalive_startup_timeout_s=600.0,
        keepalive_timeout_s=300.0,
    )
    assert unhealthy.never_alive == ("i-1",)
    verdict = silent_startup(unhealthy, StartupHistory(), 600.0)
    assert verdict is not None and "keepalive_startup_timeout=600s" in verdict.what
    assert silent_startup(unhealthy, StartupHistory(ever_alive=True), 600.0) is None


@given(
    now=st.integers(0, 1000).map(float),
    empty_since=st.one_of(st.none(), st.integers(0, 1000).map(float)),
    empty_checks=st.integers(0, 5),
    last_task_event=st.integers(0, 1000).map(float),
    busy_reported_at=st.integers(0, 1000).map(float),
    running=st.lists(st.integers(0, 2), max_size=4),
    interval=st.sampled_from((1.0, 10.0, 60.0)),
)
def test_outcomes_are_presumed_lost_only_after_a_quiet_grace_period(
    now: float,
    empty_since: float | None,
    empty_checks: int,
    last_task_event: float,
    busy_reported_at: float,
    running: list[int],
    interval: float,
) -> None:
    lost = outcomes_presumed_lost(
        now=now,
        empty_since=empty_since,
        empty_checks=empty_checks,
        last_task_event=last_task_event,
        busy_reported_at=busy_reported_at,
        running_tasks=running,
        scaling_check_interval_s=interval,
    )
    if lost:
        grace = max(30.0, 3 * interval)
        assert empty_since is not None and now - empty_since >= grace
        assert empty_checks >= 3 and not any(running)
        assert now - last_task_event >= grace and now - busy_reported_at >= grace
