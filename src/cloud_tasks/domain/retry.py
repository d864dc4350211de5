"""Task outcomes and what to do with the message afterwards (SPEC §7).

``decide_outcome`` is the one place that maps how a task attempt ended to what happens to its
queue message. Application failures (a requested retry, an exception, an exit, a timeout) count
against ``RetryPolicy.max_attempts``; deliveries lost to preemption, lost leases or worker
shutdowns never do, and are capped separately by ``RetryPolicy.max_preemptions``. The pool
manager's re-send of tasks whose outcome was lost (``tasks_to_resend``) is the same rule: a lost
run is a lost delivery.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from cloud_tasks.domain.options import RetryPolicy
from cloud_tasks.domain.tasks import Task


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


#: Times a task whose outcome was lost is sent again before it is marked failed.
MAX_RESENDS = 3


def decide_lost_outcome(times_resent: int, max_resends: int = MAX_RESENDS) -> Release | DeadLetter:
    """Decide about a task that left the queue without an outcome event.

    Its worker died between taking it and reporting (the task may or may not have finished);
    that is not the task's fault, so like a preemption it runs again without using an attempt
    (``Release``: send it again) until ``max_resends`` runs were lost after the first
    (``DeadLetter``: mark it failed). ``max_resends`` caps like ``max_preemptions`` (0 = no cap).
    """
    runs_lost = times_resent + 1
    if preemption_budget_exhausted(runs_lost, RetryPolicy(max_preemptions=max_resends)):
        return DeadLetter(
            f"no outcome event after {runs_lost} runs (the outcome was lost each time)"
        )
    return Release()


@attrs.frozen
class ResendPlan:
    """Tasks whose outcome was lost: those to send again, and the ids of those to fail."""

    resend: tuple[Task, ...] = ()
    give_up: tuple[str, ...] = ()


def tasks_to_resend(
    unfinished: Iterable[tuple[Task, int]], max_resends: int = MAX_RESENDS
) -> ResendPlan:
    """Split tasks without an outcome, each with the times it was already sent again, by
    :func:`decide_lost_outcome`."""
    resend: list[Task] = []
    give_up: list[str] = []
    for task, resent in unfinished:
        if isinstance(decide_lost_outcome(resent, max_resends), Release):
            resend.append(task)
        else:
            give_up.append(task.task_id)
    return ResendPlan(tuple(resend), tuple(give_up))


__all__ = [
    "APPLICATION_FAILURES",
    "MAX_RESENDS",
    "Complete",
    "DeadLetter",
    "Decision",
    "Fail",
    "OutcomeKind",
    "Release",
    "Requeue",
    "ResendPlan",
    "admit_delivery",
    "decide_lost_outcome",
    "decide_outcome",
    "preemption_budget_exhausted",
    "retry_due",
    "tasks_to_resend",
]
