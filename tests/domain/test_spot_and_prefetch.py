"""Spot notice deadlines and the worker's delivery reserve (domain.spot, domain.prefetch)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.prefetch import tasks_to_prefetch, updated_mean
from cloud_tasks.domain.spot import release_deadline_s, watches_for_notices


def test_the_release_deadline_is_the_requested_delay_else_the_providers() -> None:
    assert release_deadline_s("aws") == 100.0
    assert release_deadline_s("gcp") == 20.0
    assert release_deadline_s("local") == release_deadline_s(None) == 20.0
    assert release_deadline_s("aws", 0.0) == 0.0


def test_notices_are_watched_on_spot_instances_or_with_supplied_metadata() -> None:
    assert watches_for_notices(is_spot=True, metadata_supplied=False)
    assert watches_for_notices(is_spot=False, metadata_supplied=True)
    assert not watches_for_notices(is_spot=False, metadata_supplied=False)


slots = st.integers(min_value=1, max_value=10_000)
task_s = st.floats(min_value=0.0, max_value=1e7, allow_nan=False)


@given(slots, task_s)
def test_the_reserve_is_at_most_one_per_slot(n: int, mean_s: float) -> None:
    assert 0 <= tasks_to_prefetch(n, mean_s) <= n


@given(slots)
def test_nothing_is_held_until_the_task_time_is_known(n: int) -> None:
    assert tasks_to_prefetch(n, None) == 0


@given(slots, task_s, task_s)
def test_longer_tasks_never_get_a_larger_reserve(n: int, a: float, b: float) -> None:
    shorter, longer = sorted((a, b))
    assert tasks_to_prefetch(n, longer) <= tasks_to_prefetch(n, shorter)


@given(slots, st.floats(min_value=2.0, max_value=1e7))
def test_tasks_longer_than_the_window_times_the_slots_get_no_reserve(n: int, factor: float) -> None:
    # A reserve of long tasks would leave other workers idle at the end of a job.
    assert tasks_to_prefetch(n, 0.5 * n * factor) == 0


def test_short_tasks_get_a_full_reserve_and_the_mean_follows_new_times() -> None:
    assert tasks_to_prefetch(4, 0.01) == 4
    mean = None
    for _ in range(100):
        mean = updated_mean(mean, 0.01)
    assert mean is not None and abs(mean - 0.01) < 1e-9
    assert updated_mean(1.0, 2.0) > 1.0
