"""The task-state rules (SPEC §7, §13): properties of ``decide`` and ``preemptions_after``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.events import (
    AttemptEnded,
    Event,
    TaskCompleted,
    TaskDeadLettered,
    TaskEvent,
    TaskExited,
    TaskReleased,
    TaskStarted,
)
from cloud_tasks.domain.taskstate import (
    COMPLETED,
    FAILED,
    PENDING,
    PREEMPTION_REASONS,
    RUNNING,
    STATES,
    TERMINAL_STATES,
    Complete,
    CompleteAgain,
    Fail,
    GiveUp,
    Ignore,
    Note,
    Start,
    decide,
    error_text,
    preemptions_after,
)
from tests.domain.event_strategies import any_event

states = st.sampled_from(STATES)
errors = st.none() | st.sampled_from(["boom", "process exited with code 3", ""])
attempt_counts = st.integers(0, 50)


def _outcome(event: Event) -> bool:
    return isinstance(event, TaskEvent) and not isinstance(event, TaskStarted | TaskReleased)


@given(state=states, event=any_event, attempts=attempt_counts, error=errors)
def test_the_state_after_an_event_follows_the_rules(
    state: str, event: Event, attempts: int, error: str | None
) -> None:
    decision = decide(state, event, attempts=attempts, error=error)
    success = isinstance(event, TaskCompleted) and event.success
    if state == COMPLETED:
        # Completed is final: a second success is counted, nothing else changes anything.
        assert isinstance(decision, CompleteAgain if success else Ignore | Note)
    elif success:
        # A late success completes a failed task too.
        assert isinstance(decision, Complete)
    if isinstance(decision, Start):
        assert state in (PENDING, RUNNING) and isinstance(event, TaskStarted)
    if isinstance(decision, Fail):
        assert state in (PENDING, RUNNING) and _outcome(event) and not success
        assert decision.error is not None
        retried = isinstance(event, AttemptEnded) and event.retry is True
        assert decision.state == (PENDING if retried else FAILED)
    if isinstance(decision, GiveUp):
        assert state == FAILED and isinstance(event, TaskDeadLettered)
    if not isinstance(event, TaskEvent) or isinstance(event, TaskReleased):
        # Neither a keep-alive that names a task nor a release moves it.
        assert isinstance(decision, Note)
    if isinstance(decision, Start | Complete | Fail):
        # Attempts never go back, and an attempt that ran counts.
        event_attempt = event.attempt if isinstance(event, TaskEvent) else None
        assert decision.attempts == max(attempts, event_attempt or 0, 1)


@given(state=states, event=any_event, error=errors)
def test_a_dead_lettered_task_is_never_retried_and_keeps_its_last_error(
    state: str, event: Event, error: str | None
) -> None:
    if not isinstance(event, TaskDeadLettered):
        return
    decision = decide(state, event, error=error)
    if isinstance(decision, Fail):
        assert decision.state == FAILED and not decision.retry
    if isinstance(decision, Fail | GiveUp) and error:
        assert decision.error is not None and error in decision.error


@given(state=states, event=any_event, before=st.integers(0, 20))
def test_only_a_release_for_a_preemption_counts_and_an_outcome_ends_the_streak(
    state: str, event: Event, before: int
) -> None:
    after = preemptions_after(state, event, before)
    if _outcome(event):
        assert after == 0
    elif (
        isinstance(event, TaskReleased)
        and state not in TERMINAL_STATES
        and str(event.reason) in PREEMPTION_REASONS
    ):
        assert after == before + 1
    else:
        assert after == before


@given(event=any_event)
def test_error_text_is_there_for_a_failure_and_none_for_anything_else(event: Event) -> None:
    text = error_text(event)
    success = isinstance(event, TaskCompleted) and event.success
    if _outcome(event) and not success:
        assert text
    else:
        assert text is None


def test_named_examples() -> None:
    exited = TaskExited(task_id="t", attempt=2, retry=False, exit_code=3, elapsed_time=4)
    assert decide(RUNNING, exited, attempts=1) == Fail(FAILED, 2, "process exited with code 3", 4.0)
    dead = TaskDeadLettered(task_id="t", reason="max_attempts=5 reached")
    assert decide(FAILED, dead, error="process exited with code 3") == GiveUp(
        "dead-lettered: max_attempts=5 reached; last error: process exited with code 3"
    )
    retry = TaskCompleted(task_id="t", success=False, retry=True)
    assert decide(RUNNING, retry) == Fail(
        PENDING, 1, "process_task returned False (retry requested)", None
    )
    assert decide(FAILED, TaskStarted(task_id="t")) == Ignore()
    assert preemptions_after(RUNNING, TaskReleased(task_id="t"), 2) == 3
    assert preemptions_after(RUNNING, TaskReleased(task_id="t", reason="shutdown"), 2) == 2
