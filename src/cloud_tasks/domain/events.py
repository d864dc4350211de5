"""Which worker events may change the task database (SPEC §10, §13).

Anything that can write to the event queue can send the manager an event, and the manager
applies events to task states. ``event_problem`` is the one rule both task stores (the SQLite
``TaskDatabase`` and the ``InMemoryTaskStore``) apply before an event touches anything: an
event that fails it is dropped (and logged by the caller), never recorded.

An event is accepted when:

- it is a JSON object whose ``event_type`` is one the worker sends;
- ``task_id`` (required by task events) and ``instance_id`` are non-empty strings that SQLite
  can store (no lone surrogates), and ``timestamp`` is a string or a number;
- the fields the manager reads have the worker's types: ``success`` (required by
  ``task_completed``) and ``retry`` are real booleans, never ``"yes"`` or ``1``; ``attempt``
  and ``running_tasks`` are non-negative integers; ``elapsed_time`` is a finite number >= 0;
- its task is one the store knows, when the store knows every task of the job (``run``
  records them all before any worker starts; ``manage_pool`` learns tasks from their events).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from cloud_tasks.domain.text import shown

TASK_STARTED = "task_started"
TASK_COMPLETED = "task_completed"
TASK_EXCEPTION = "task_exception"
TASK_EXITED = "task_exited"
TASK_TIMED_OUT = "task_timed_out"
TASK_DEAD_LETTERED = "task_dead_lettered"
TASK_RELEASED = "task_released"

#: Events that end an attempt of a task.
OUTCOME_EVENTS = frozenset(
    {TASK_COMPLETED, TASK_EXCEPTION, TASK_EXITED, TASK_TIMED_OUT, TASK_DEAD_LETTERED}
)
#: Events about one task: they carry its ``task_id``.
TASK_EVENTS = OUTCOME_EVENTS | {TASK_STARTED, TASK_RELEASED}
#: Every event type a worker sends.
EVENT_TYPES = TASK_EVENTS | {
    "keep_alive",
    "spot_termination",
    "shutdown_requested",
    "non_fatal_exception",
    "fatal_exception",
}
#: Longest ``instance_id`` and ``timestamp`` accepted (provider ids and ISO-8601 are far shorter).
MAX_NAME_CHARS = 256


def _storable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _v(value: object, limit: int = 40) -> str:
    """A value for a message: quoted when it is a string, escaped and cut."""
    return f"'{shown(value, limit)}'" if isinstance(value, str) else shown(value, limit)


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def event_problem(event: object, task_known: Callable[[str], bool] | None = None) -> str | None:
    """Why ``event`` must not be applied, in a few words; ``None`` when it may be.

    ``task_known`` says whether a task id is recorded; pass it when the store holds every task
    of the job, so that an event naming any other task is refused.
    """
    if not isinstance(event, Mapping):
        return f"not a JSON object but {type(event).__name__}"
    kind = event.get("event_type")
    if type(kind) is not str or kind not in EVENT_TYPES:
        return f"unknown event_type {_v(kind)}" if kind is not None else "no event_type"
    instance_id = event.get("instance_id")
    if instance_id is not None and (
        type(instance_id) is not str
        or not instance_id
        or len(instance_id) > MAX_NAME_CHARS
        or not _storable(instance_id)
    ):
        return f"{kind}: bad instance_id {_v(instance_id)}"
    timestamp = event.get("timestamp")
    if timestamp is not None and not (
        (type(timestamp) is str and len(timestamp) <= MAX_NAME_CHARS and _storable(timestamp))
        or (type(timestamp) in (int, float) and math.isfinite(timestamp))
    ):
        return f"{kind}: bad timestamp {_v(timestamp)}"
    if kind == "keep_alive" or kind == "spot_termination":
        running = event.get("running_tasks")
        if running is not None and not _count(running):
            return f"{kind}: running_tasks must be a count, got {_v(running)}"
    task_id = event.get("task_id")
    if task_id is None:
        return f"{kind}: no task_id" if kind in TASK_EVENTS else None
    if type(task_id) is not str or not task_id or not _storable(task_id):
        return f"{kind}: bad task_id {_v(task_id)}"
    if kind == TASK_COMPLETED and type(event.get("success")) is not bool:
        return f"{kind}: success must be true or false, got {_v(event.get('success'))}"
    retry = event.get("retry")
    if retry is not None and type(retry) is not bool:
        return f"{kind}: retry must be true or false, got {_v(retry)}"
    attempt = event.get("attempt")
    if attempt is not None and not _count(attempt):
        return f"{kind}: attempt must be a count, got {_v(attempt)}"
    elapsed = event.get("elapsed_time")
    if elapsed is not None and not (
        type(elapsed) in (int, float) and math.isfinite(elapsed) and elapsed >= 0
    ):
        return f"{kind}: elapsed_time must be a number of seconds, got {_v(elapsed)}"
    if task_known is not None and not task_known(task_id):
        return f"{kind}: unknown task {_v(task_id, 80)}"
    return None


__all__ = [
    "EVENT_TYPES",
    "MAX_NAME_CHARS",
    "OUTCOME_EVENTS",
    "TASK_EVENTS",
    "event_problem",
]
