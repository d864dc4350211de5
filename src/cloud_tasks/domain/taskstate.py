"""Task states and the rules that move them (SPEC §7, §13): one set, used by every task store.

States: ``pending`` → ``running`` → ``completed`` | ``failed``. A task whose outcome asked for a
retry goes back to ``pending`` (not terminal). ``completed`` is final: a second success of the
same task (a duplicate delivery) is counted in ``duplicate_completions``, never applied twice.
``failed`` may still become ``completed`` when a late delivery of the same task succeeds, and a
failed task that is then dead-lettered says so in its error.

``decide`` maps a task's state and one event to a decision (``Start``, ``Complete``, ``Fail``,
...); the SQLite ``TaskDatabase`` and the ``InMemoryTaskStore`` act on it, each in its own
storage. ``preemptions_after`` counts the runs of an unfinished task lost to preemption in a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from cloud_tasks.domain.events import (
    SPOT_TERMINATION,
    AttemptEnded,
    Event,
    TaskCompleted,
    TaskDeadLettered,
    TaskEvent,
    TaskException,
    TaskExited,
    TaskReleased,
    TaskStarted,
    TaskTimedOut,
)

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
STATES: tuple[str, ...] = (PENDING, RUNNING, COMPLETED, FAILED)
TERMINAL_STATES: frozenset[str] = frozenset({COMPLETED, FAILED})
#: ``task_released`` reasons that count as a preemption of the task.
PREEMPTION_REASONS = frozenset({"preempted", SPOT_TERMINATION, "spot termination"})

# -- what the stores report ------------------------------------------------------------------


@attrs.frozen
class TaskCounts:
    """Tasks by state; ``total`` is their sum."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running + self.completed + self.failed

    @property
    def terminal(self) -> int:
        return self.completed + self.failed

    def with_reported_running(self, reported: int) -> TaskCounts:
        """These counts with up to ``reported`` pending tasks counted as running instead.

        Workers report how many tasks they run in each keep-alive, not which; never more
        than the pending tasks move.
        """
        running = min(self.pending, reported)
        if running <= 0:
            return self
        return attrs.evolve(self, pending=self.pending - running, running=self.running + running)

    @property
    def remaining(self) -> int:
        return self.pending + self.running


@attrs.frozen
class IngestResult:
    """What one batch of events changed: ``alive`` maps instance id to when it was last heard."""

    new_events: int = 0
    duplicate_events: int = 0
    transitions: int = 0
    alive: Mapping[str, float] = attrs.field(factory=dict)
    worked: Mapping[str, float] = attrs.field(factory=dict)
    #: Events refused by ``domain.events.event_problem`` (their index → why); not recorded.
    rejected: Mapping[int, str] = attrs.field(factory=dict)


@attrs.frozen
class InstanceRecord:
    """An instance as recorded by the manager: enough to compute spend after a restart."""

    instance_id: str
    name: str
    instance_type: str
    zone: str
    is_spot: bool
    price_per_hour_usd: float
    launched_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    first_seen_alive: float | None = None
    last_seen_alive: float | None = None
    last_task_event: float | None = None
    running_tasks: int = 0

    def cost_usd(self, now: float) -> float:
        end = self.ended_at if self.ended_at is not None else now
        return self.price_per_hour_usd * max(0.0, end - self.launched_at) / 3600.0


# -- the decisions ---------------------------------------------------------------------------


@attrs.frozen
class Ignore:
    """Nothing changes: the event came after the task's end."""


@attrs.frozen
class Note:
    """The state stays; the event is the task's last event."""


@attrs.frozen
class Start:
    """An attempt started: the task runs (``attempts`` is the highest attempt seen)."""

    attempts: int


@attrs.frozen
class Complete:
    """The task succeeded: it is completed, with its result, for good."""

    attempts: int
    result: Any
    elapsed_s: float | None


@attrs.frozen
class CompleteAgain:
    """A completed task succeeded again (a duplicate delivery): counted, not applied."""


@attrs.frozen
class Fail:
    """An attempt failed: the task is ``pending`` again (a retry is due) or ``failed``."""

    state: str
    attempts: int
    error: str | None
    elapsed_s: float | None

    @property
    def retry(self) -> bool:
        return self.state == PENDING


@attrs.frozen
class GiveUp:
    """A failed task was dead-lettered after its failure was recorded: its error says so."""

    error: str | None


Decision = Ignore | Note | Start | Complete | CompleteAgain | Fail | GiveUp

_IGNORE = Ignore()
_NOTE = Note()
_COMPLETE_AGAIN = CompleteAgain()


def error_text(event: Event) -> str | None:
    """The error a failed outcome event reports, in one line (``None`` for a success)."""
    if isinstance(event, TaskException):
        text = str(event.exception or "exception")
        return text.strip().splitlines()[-1] if text.strip() else "exception"
    if isinstance(event, TaskExited):
        return f"process exited with code {event.exit_code}"
    if isinstance(event, TaskTimedOut):
        return "timed out (max_runtime exceeded)"
    if isinstance(event, TaskDeadLettered):
        return f"dead-lettered: {event.reason or 'max_attempts reached'}"
    if isinstance(event, TaskCompleted) and not event.success:
        return "process_task returned False (retry requested)"
    return None


def decide(state: str, event: Event, *, attempts: int = 0, error: str | None = None) -> Decision:
    """What ``event`` does to a task in ``state``.

    Args:
        state: the task's state before the event (a task first heard of is ``pending``).
        event: an accepted event naming the task.
        attempts: the highest attempt recorded for the task so far.
        error: the task's recorded error, if any.
    """
    if type(event) is TaskCompleted and event.success:
        # The same as the general case below, tested first: nearly every event is this one.
        if state == COMPLETED:
            return _COMPLETE_AGAIN
        attempt = event.attempt or 0
        elapsed = event.elapsed_time
        return Complete(
            max(attempts, attempt, 1), event.result, None if elapsed is None else float(elapsed)
        )
    if not isinstance(event, TaskEvent) or isinstance(event, TaskReleased):
        return _NOTE  # not an outcome; perhaps not even a task event (a keep-alive, say)
    attempts = max(attempts, event.attempt or 0, 1)
    if isinstance(event, TaskStarted):
        return _IGNORE if state in TERMINAL_STATES else Start(attempts)
    if isinstance(event, TaskCompleted) and event.success:
        if state == COMPLETED:
            return _COMPLETE_AGAIN
        return Complete(attempts, event.result, _seconds(event.elapsed_time))
    if state == COMPLETED:
        return _IGNORE
    new_error = error_text(event)
    if isinstance(event, TaskDeadLettered):
        if error and error not in (new_error or ""):
            new_error = f"{new_error}; last error: {error}"
        # A failed task: the attempt's outcome (retry false) came first; say it was given up.
        return GiveUp(new_error) if state == FAILED else Fail(FAILED, attempts, new_error, None)
    if state == FAILED or not isinstance(event, AttemptEnded):
        return _IGNORE
    retry = event.retry is True
    return Fail(PENDING if retry else FAILED, attempts, new_error, _seconds(event.elapsed_time))


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


def preemptions_after(state: str, event: Event, preemptions: int) -> int:
    """Runs of the task lost to preemption in a row, after ``event``.

    An outcome ends the streak; a ``task_released`` for a preemption reason (a missing reason
    means preempted) adds one to it while the task is unfinished.
    """
    if isinstance(event, TaskReleased):
        if state not in TERMINAL_STATES and str(event.reason) in PREEMPTION_REASONS:
            return preemptions + 1
        return preemptions
    if isinstance(event, AttemptEnded | TaskDeadLettered):
        return 0
    return preemptions


__all__ = [
    "COMPLETED",
    "FAILED",
    "PENDING",
    "PREEMPTION_REASONS",
    "RUNNING",
    "STATES",
    "TERMINAL_STATES",
    "Complete",
    "CompleteAgain",
    "Decision",
    "Fail",
    "GiveUp",
    "Ignore",
    "IngestResult",
    "InstanceRecord",
    "Note",
    "Start",
    "TaskCounts",
    "decide",
    "error_text",
    "preemptions_after",
]
