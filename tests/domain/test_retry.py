"""Retry decisions (SPEC §7): properties of ``decide_outcome`` and the preemption budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_tasks.domain.options import RetryPolicy
from cloud_tasks.domain.retry import (
    Complete,
    DeadLetter,
    Fail,
    OutcomeKind,
    Release,
    Requeue,
    admit_delivery,
    decide_outcome,
    retry_due,
)

policies = st.builds(
    RetryPolicy,
    retry_on_exit=st.booleans(),
    retry_on_exception=st.booleans(),
    retry_on_timeout=st.booleans(),
    max_attempts=st.integers(0, 50),
    max_preemptions=st.integers(0, 50),
)
kinds = st.sampled_from(list(OutcomeKind))


@given(policies, st.integers(0, 100), st.integers(1, 100))
def test_a_preemption_never_consumes_an_application_attempt(
    policy: RetryPolicy, failures: int, deliveries: int
) -> None:
    decision = decide_outcome(
        OutcomeKind.PREEMPTED, policy, failures=failures, delivery_count=deliveries
    )
    assert isinstance(decision, Release | DeadLetter)
    assert not isinstance(decision, Requeue)  # requeue is what adds a failure
    if isinstance(decision, DeadLetter):
        assert "max_preemptions" in decision.reason


@given(policies, st.integers(0, 100), st.integers(1, 100))
def test_memory_errors_are_never_retried(
    policy: RetryPolicy, failures: int, deliveries: int
) -> None:
    decision = decide_outcome(
        OutcomeKind.MEMORY, policy, failures=failures, delivery_count=deliveries
    )
    assert isinstance(decision, Fail)


@given(policies.filter(lambda p: p.max_attempts > 0), kinds)
def test_max_attempts_terminates_a_task_that_always_fails(
    policy: RetryPolicy, kind: OutcomeKind
) -> None:
    failures = 0
    for _ in range(policy.max_attempts + 1):
        decision = decide_outcome(kind, policy, failures=failures)
        if not isinstance(decision, Requeue):
            break
        failures += 1
    else:
        raise AssertionError("still retrying after max_attempts")
    assert failures < policy.max_attempts


@given(policies.filter(lambda p: p.max_preemptions > 0), st.integers(0, 10))
def test_the_preemption_budget_terminates_a_task_that_is_always_preempted(
    policy: RetryPolicy, failures: int
) -> None:
    deliveries = 1
    while True:
        rejected = admit_delivery(deliveries, policy)
        if rejected is not None:
            break
        decision = decide_outcome(
            OutcomeKind.PREEMPTED, policy, failures=failures, delivery_count=deliveries
        )
        if isinstance(decision, DeadLetter):
            break
        assert isinstance(decision, Release)
        deliveries += 1
        assert deliveries <= policy.max_preemptions + 2


@given(policies, st.integers(0, 100))
def test_a_requested_retry_is_retried_until_the_cap(policy: RetryPolicy, failures: int) -> None:
    decision = decide_outcome(OutcomeKind.RETRY_REQUESTED, policy, failures=failures)
    below_cap = policy.max_attempts == 0 or failures + 1 < policy.max_attempts
    assert isinstance(decision, Requeue) == below_cap
    assert isinstance(decision, Requeue | DeadLetter)


@given(policies, kinds, st.integers(0, 100))
def test_success_completes_and_flags_gate_failures(
    policy: RetryPolicy, kind: OutcomeKind, failures: int
) -> None:
    decision = decide_outcome(kind, policy, failures=failures)
    if kind is OutcomeKind.SUCCESS:
        assert decision == Complete()
    elif kind is not OutcomeKind.PREEMPTED and not retry_due(kind, policy):
        assert isinstance(decision, Fail)


def test_named_examples() -> None:
    policy = RetryPolicy()
    assert decide_outcome(OutcomeKind.EXCEPTION, policy, failures=0) == Fail(
        "exception (retry_on_exception is off)"
    )
    assert decide_outcome(OutcomeKind.RETRY_REQUESTED, policy, failures=3) == Requeue()
    assert isinstance(decide_outcome(OutcomeKind.RETRY_REQUESTED, policy, failures=4), DeadLetter)
    unlimited = RetryPolicy(max_attempts=0)
    assert decide_outcome(OutcomeKind.RETRY_REQUESTED, unlimited, failures=10_000) == Requeue()
    assert admit_delivery(21, policy) is None
    assert isinstance(admit_delivery(22, policy), DeadLetter)
