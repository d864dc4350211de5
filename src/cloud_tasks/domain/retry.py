"""Task outcomes and what to do with the message afterwards (SPEC §7).

``decide_outcome`` is the one place that maps how a task attempt ended to what happens to its
queue message. Application failures (a requested retry, an exception, an exit, a timeout) count
against ``RetryPolicy.max_attempts``; deliveries lost to preemption, lost leases or worker
shutdowns never do, and are capped separately by ``RetryPolicy.max_preemptions``.
"""

from __future__ import annotations

import enum

import attrs

from cloud_tasks.domain.options import RetryPolicy


class OutcomeKind(enum.Enum):
    """How one attempt of a task ended."""

    SUCCESS = "success"
    RETRY_REQUESTED = "retry_requested"
    EXCEPTION = "exception"
    EXIT = "exit"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    PREEMPTED = "preempted"


APPLICATION_FAILURES: frozenset[OutcomeKind] = frozenset(
    {
        OutcomeKind.RETRY_REQUESTED,
        OutcomeKind.EXCEPTION,
        OutcomeKind.EXIT,
        OutcomeKind.TIMEOUT,
        OutcomeKind.MEMORY,
    }
)


@attrs.frozen
class Complete:
    """The task succeeded: acknowledge the message."""


@attrs.frozen
class Fail:
    """The task failed and is not retried: acknowledge and record it as failed."""

    reason: str


@attrs.frozen
class Requeue:
    """Retry: send the task again with one more application failure, then acknowledge."""


@attrs.frozen
class DeadLetter:
    """Give up on a task that would otherwise be retried: acknowledge and record why."""

    reason: str


@attrs.frozen
class Release:
    """Not the task's fault: make the message visible again at once; no attempt is used."""


Decision = Complete | Fail | Requeue | DeadLetter | Release


def retry_due(kind: OutcomeKind, policy: RetryPolicy) -> bool:
    """Whether the policy asks for another attempt after ``kind``, ignoring every cap."""
    if kind is OutcomeKind.RETRY_REQUESTED:
        return True
    if kind is OutcomeKind.EXCEPTION:
        return policy.retry_on_exception
    if kind is OutcomeKind.EXIT:
        return policy.retry_on_exit
    if kind is OutcomeKind.TIMEOUT:
        return policy.retry_on_timeout
    return False


def preemption_budget_exhausted(losses: int, policy: RetryPolicy) -> bool:
    """Whether ``losses`` deliveries lost to preemption exceed ``max_preemptions`` (0 = no cap)."""
    return policy.max_preemptions > 0 and losses > policy.max_preemptions


def admit_delivery(delivery_count: int, policy: RetryPolicy) -> DeadLetter | None:
    """Check a fresh delivery against the preemption budget before running it.

    ``delivery_count - 1`` deliveries of this message were lost (preemption, lost lease,
    shutdown). Returns a ``DeadLetter`` when that exceeds the budget, else None.
    """
    losses = delivery_count - 1
    if preemption_budget_exhausted(losses, policy):
        return DeadLetter(
            f"lost {losses} times to preemption, lost leases or shutdowns "
            f"(max_preemptions={policy.max_preemptions})"
        )
    return None


def decide_outcome(
    kind: OutcomeKind, policy: RetryPolicy, *, failures: int, delivery_count: int = 1
) -> Decision:
    """Decide what happens to a task's message after one attempt ended with ``kind``.

    Args:
        kind: how the attempt ended.
        policy: the retry flags and caps.
        failures: application failures recorded before this attempt (``attempt - 1``).
        delivery_count: deliveries of this message including this one.
    """
    if kind is OutcomeKind.SUCCESS:
        return Complete()
    if kind is OutcomeKind.PREEMPTED:
        if preemption_budget_exhausted(delivery_count, policy):
            return DeadLetter(
                f"lost {delivery_count} times to preemption, lost leases or shutdowns "
                f"(max_preemptions={policy.max_preemptions})"
            )
        return Release()
    if kind is OutcomeKind.MEMORY:
        return Fail("the task exceeded its memory limit (memory errors are never retried)")
    if not retry_due(kind, policy):
        return Fail(f"{kind.value} (retry_on_{kind.value} is off)")
    attempt = failures + 1
    if policy.max_attempts > 0 and attempt >= policy.max_attempts:
        return DeadLetter(
            f"{kind.value} on attempt {attempt} of max_attempts={policy.max_attempts}"
        )
    return Requeue()


__all__ = [
    "APPLICATION_FAILURES",
    "Complete",
    "DeadLetter",
    "Decision",
    "Fail",
    "OutcomeKind",
    "Release",
    "Requeue",
    "admit_delivery",
    "decide_outcome",
    "preemption_budget_exhausted",
    "retry_due",
]
