"""Re-sending tasks whose outcome was lost (SPEC §7, §12): the preemption rule of retry.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.options import RetryPolicy
from cloud_tasks.domain.retry import (
    MAX_RESENDS,
    DeadLetter,
    OutcomeKind,
    Release,
    decide_lost_outcome,
    decide_outcome,
    tasks_to_resend,
)
from cloud_tasks.domain.tasks import Task

unfinished = st.lists(st.integers(0, 8), max_size=30).map(
    lambda counts: [(Task(f"t{i}", {}), resent) for i, resent in enumerate(counts)]
)


@given(st.integers(0, 50), st.integers(0, 20), st.integers(0, 100))
def test_a_lost_outcome_is_decided_as_a_lost_delivery_and_never_uses_an_attempt(
    resent: int, max_resends: int, failures: int
) -> None:
    decision = decide_lost_outcome(resent, max_resends)
    assert isinstance(decision, Release | DeadLetter)
    same = decide_outcome(
        OutcomeKind.PREEMPTED,
        RetryPolicy(max_preemptions=max_resends),
        failures=failures,
        delivery_count=resent + 1,
    )
    assert type(decision) is type(same)


@given(unfinished, st.integers(1, 6))
def test_each_task_is_either_sent_again_or_failed_once_its_resends_are_spent(
    tasks: list[tuple[Task, int]], max_resends: int
) -> None:
    plan = tasks_to_resend(tasks, max_resends)
    assert [t.task_id for t in plan.resend] == [t.task_id for t, r in tasks if r < max_resends]
    assert list(plan.give_up) == [t.task_id for t, r in tasks if r >= max_resends]


def test_named_example_the_fourth_lost_run_fails_the_task() -> None:
    assert isinstance(decide_lost_outcome(MAX_RESENDS - 1), Release)
    decision = decide_lost_outcome(MAX_RESENDS)
    assert isinstance(decision, DeadLetter)
    assert decision.reason == "no outcome event after 4 runs (the outcome was lost each time)"
