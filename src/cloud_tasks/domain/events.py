"""Worker events (SPEC §10): one class per event type, their names, and their one JSON codec.

A worker builds typed events and ``encode`` makes them the JSON objects it writes to the event
log file and sends to the event queue; the task stores ``decode`` what arrives. The wire format
is the one of SPEC §10: ``timestamp``, ``hostname``, ``instance_id``, ``event_type``, then the
fields of the type in a fixed order. Fields a newer (or foreign) worker adds are kept in
``extra`` and written back after the known ones.

Anything that can write to the event queue can send the manager an event, and the manager
applies events to task states. ``decode`` (and ``event_problem``, the same check without the
event) is the one rule both task stores apply before an event touches anything: an event that
fails it is dropped (and logged by the caller), never recorded.

An event is accepted when:

- it is a JSON object whose ``event_type`` is one the worker sends;
- ``task_id`` (required by task events) and ``instance_id`` are non-empty strings that SQLite
  can store (no lone surrogates), and ``timestamp`` is a string or a number;
- the fields the manager reads have the worker's types: ``success`` (required by
  ``task_completed``) and ``retry`` are real booleans, never ``"yes"`` or ``1``; ``attempt``
  and ``running_tasks`` are non-negative integers; ``elapsed_time`` is a finite number >= 0;
  integers fit in 64 bits (what SQLite stores);
- a ``receipt`` (``task_started``, optional) is a non-empty string of at most
  ``MAX_RECEIPT_CHARS`` characters;
- its task is one the store knows, when the store knows every task of the job (``run``
  records them all before any worker starts; ``manage_pool`` learns tasks from their events).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeAlias, cast

import attrs

from cloud_tasks.domain.text import shown
from cloud_tasks.exceptions import EventError

TASK_STARTED = "task_started"
TASK_COMPLETED = "task_completed"
TASK_EXCEPTION = "task_exception"
TASK_EXITED = "task_exited"
TASK_TIMED_OUT = "task_timed_out"
TASK_DEAD_LETTERED = "task_dead_lettered"
TASK_RELEASED = "task_released"
KEEP_ALIVE = "keep_alive"
SPOT_TERMINATION = "spot_termination"
SHUTDOWN_REQUESTED = "shutdown_requested"
NON_FATAL_EXCEPTION = "non_fatal_exception"
FATAL_EXCEPTION = "fatal_exception"

#: Events that end an attempt of a task.
OUTCOME_EVENTS = frozenset(
    {TASK_COMPLETED, TASK_EXCEPTION, TASK_EXITED, TASK_TIMED_OUT, TASK_DEAD_LETTERED}
)
#: Events about one task: they carry its ``task_id``.
TASK_EVENTS = OUTCOME_EVENTS | {TASK_STARTED, TASK_RELEASED}
#: Every event type a worker sends.
EVENT_TYPES = TASK_EVENTS | {
    KEEP_ALIVE,
    SPOT_TERMINATION,
    SHUTDOWN_REQUESTED,
    NON_FATAL_EXCEPTION,
    FATAL_EXCEPTION,
}
#: Longest ``instance_id`` and ``timestamp`` accepted (provider ids and ISO-8601 are far shorter).
MAX_NAME_CHARS = 256
#: Longest ``receipt`` accepted (an SQS receipt handle has at most 1,024 characters).
MAX_RECEIPT_CHARS = 4096
#: Integers SQLite stores (signed 64 bits); a larger one in an event is refused.
_INT_LIMIT = 2**63

#: A field the manager never reads: any JSON value is accepted and kept as it is.
Json: TypeAlias = Any
_NO_EXTRA: Mapping[str, Json] = types.MappingProxyType({})
#: Field metadata: the field is left out of the JSON object while it is ``None``.
_OMITTED_WHEN_NONE = "omitted_when_none"

# -- the events ------------------------------------------------------------------------------
# Field order is wire order: the order the worker has always written the keys in.


@attrs.frozen(kw_only=True)
class Event:
    """What every event carries: when and where it was sent, and any fields not known here."""

    event_type: ClassVar[str]

    timestamp: str | float | None = None
    hostname: Json = None
    instance_id: str | None = None
    #: Fields of the incoming object that this type does not have, in their order.
    extra: Mapping[str, Json] = attrs.field(default=_NO_EXTRA, hash=False)


@attrs.frozen(kw_only=True)
class TaskEvent(Event):
    """An event about one task (one attempt of it)."""

    task_id: str
    attempt: int | None = None


@attrs.frozen(kw_only=True)
class TaskStarted(TaskEvent):
    """A run of the task started; ``receipt`` names the queue delivery it runs (queue mode).

    The manager acks the delivery of a run that lost (the task ended through another
    delivery), so the worker's next lease renewal finds it gone and stops it. Events without
    a ``receipt`` (file mode, older workers) are accepted, and the field is left out on the
    wire when there is none.
    """

    event_type: ClassVar[str] = TASK_STARTED
    receipt: str | None = attrs.field(default=None, metadata={_OMITTED_WHEN_NONE: True})


@attrs.frozen(kw_only=True)
class AttemptEnded(TaskEvent):
    """How an attempt that ran ended; ``retry`` says whether the worker re-queued the task."""

    elapsed_time: float | None = None
    retry: bool | None = None
    outcome: Json = None


@attrs.frozen(kw_only=True)
class TaskCompleted(AttemptEnded):
    """``process_task`` returned: ``success`` False asks for a retry."""

    event_type: ClassVar[str] = TASK_COMPLETED
    success: bool
    result: Json = attrs.field(factory=dict, hash=False)


@attrs.frozen(kw_only=True)
class TaskException(AttemptEnded):
    event_type: ClassVar[str] = TASK_EXCEPTION
    exception: Json = None


@attrs.frozen(kw_only=True)
class TaskExited(AttemptEnded):
    event_type: ClassVar[str] = TASK_EXITED
    exit_code: Json = None


@attrs.frozen(kw_only=True)
class TaskTimedOut(AttemptEnded):
    event_type: ClassVar[str] = TASK_TIMED_OUT
    max_runtime: Json = None


@attrs.frozen(kw_only=True)
class TaskReleased(AttemptEnded):
    """The attempt was stopped from outside (a spot notice, a shutdown): not an outcome."""

    event_type: ClassVar[str] = TASK_RELEASED
    reason: Json = "preempted"


@attrs.frozen(kw_only=True)
class TaskDeadLettered(TaskEvent):
    """The task is given up: no attempt is left (``reason``); ``error`` was its last error."""

    event_type: ClassVar[str] = TASK_DEAD_LETTERED
    retry: bool | None = None
    reason: Json = None
    error: Json = None


@attrs.frozen(kw_only=True)
class KeepAlive(Event):
    event_type: ClassVar[str] = KEEP_ALIVE
    running_tasks: int | None = None
    running_task_ids: Json = None


@attrs.frozen(kw_only=True)
class SpotTermination(Event):
    event_type: ClassVar[str] = SPOT_TERMINATION
    running_tasks: int | None = None
    deadline_s: Json = None


@attrs.frozen(kw_only=True)
class ShutdownRequested(Event):
    event_type: ClassVar[str] = SHUTDOWN_REQUESTED
    signal: Json = None
    running_tasks: Json = None
    grace_period: Json = None


@attrs.frozen(kw_only=True)
class NonFatalException(Event):
    event_type: ClassVar[str] = NON_FATAL_EXCEPTION
    exception: Json = None


@attrs.frozen(kw_only=True)
class FatalException(Event):
    event_type: ClassVar[str] = FATAL_EXCEPTION
    exception: Json = None


#: Events that end an attempt of a task (``OUTCOME_EVENTS``), for ``isinstance``.
Outcome = TaskCompleted | TaskException | TaskExited | TaskTimedOut | TaskDeadLettered

EVENT_CLASSES: Mapping[str, type[Event]] = {
    cls.event_type: cls
    for cls in (
        TaskStarted,
        TaskCompleted,
        TaskException,
        TaskExited,
        TaskTimedOut,
        TaskDeadLettered,
        TaskReleased,
        KeepAlive,
        SpotTermination,
        ShutdownRequested,
        NonFatalException,
        FatalException,
    )
}

_HEADER = ("timestamp", "hostname", "instance_id")
#: Per type: its fields after the header, in wire order.
_BODY: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in attrs.fields(cls) if f.name not in _HEADER and f.name != "extra")
    for cls in EVENT_CLASSES.values()
}
#: Per type: its fields left out of the JSON object while they are ``None``.
_OPTIONAL: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in attrs.fields(cls) if f.metadata.get(_OMITTED_WHEN_NONE))
    for cls in EVENT_CLASSES.values()
}
#: Per type: the keys of the object that are its fields.
_FIELDS: dict[type[Event], frozenset[str]] = {
    cls: frozenset((*_HEADER, *body)) for cls, body in _BODY.items()
}
#: Per type: every key it knows, ``event_type`` included.
_KNOWN: dict[type[Event], frozenset[str]] = {
    cls: fields | {"event_type"} for cls, fields in _FIELDS.items()
}


# -- the codec -------------------------------------------------------------------------------


def encode(event: Event) -> dict[str, Json]:
    """The JSON object of ``event`` (SPEC §10): header, ``event_type``, fields, ``extra``."""
    wire: dict[str, Json] = {
        "timestamp": event.timestamp,
        "hostname": event.hostname,
        "instance_id": event.instance_id,
        "event_type": event.event_type,
    }
    cls = type(event)
    for name in _BODY[cls]:
        wire[name] = getattr(event, name)
    for name in _OPTIONAL[cls]:
        if wire[name] is None:
            del wire[name]
    if event.extra:
        for key, value in event.extra.items():
            wire.setdefault(key, value)
    return wire


def decode(obj: object, task_known: Callable[[str], bool] | None = None) -> Event:
    """The typed event of a JSON object that passes ``event_problem``.

    A field the object leaves out takes its default (``None``; ``{}`` for a result,
    ``"preempted"`` for a release reason: what the manager has always assumed).

    Raises:
        EventError: the object is not an event the manager may apply (see ``event_problem``).
    """
    problem = event_problem(obj, task_known)
    if problem is not None:
        raise EventError(problem)
    return decode_accepted(cast("Mapping[str, Json]", obj))  # event_problem: it is one


def decode_accepted(obj: Mapping[str, Json]) -> Event:
    """The typed event of an object that ``event_problem`` accepted (not checked again)."""
    cls = EVENT_CLASSES[obj["event_type"]]
    known = _KNOWN[cls]
    if obj.keys() <= known:  # what a worker sends: copied whole (events are on a hot path)
        fields = dict(obj)
        del fields["event_type"]
        return cls(**fields)
    names = _FIELDS[cls]
    fields = {key: value for key, value in obj.items() if key in names}
    fields["extra"] = {key: value for key, value in obj.items() if key not in known}
    return cls(**fields)


# -- the acceptance rule ---------------------------------------------------------------------


def _storable(text: str) -> bool:
    """Whether SQLite can store ``text`` (no lone surrogates); callers try ``isascii`` first."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _v(value: object, limit: int = 40) -> str:
    """A value for a message: quoted when it is a string, escaped and cut."""
    return f"'{shown(value, limit)}'" if isinstance(value, str) else shown(value, limit)


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value < _INT_LIMIT


def _number(value: object) -> bool:
    """A finite float, or an int that SQLite stores."""
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int and -_INT_LIMIT <= value < _INT_LIMIT


def event_problem(event: object, task_known: Callable[[str], bool] | None = None) -> str | None:
    """Why ``event`` must not be applied, in a few words; ``None`` when it may be.

    ``task_known`` says whether a task id is recorded; pass it when the store holds every task
    of the job, so that an event naming any other task is refused.
    """
    if type(event) is not dict and not isinstance(event, Mapping):
        return f"not a JSON object but {type(event).__name__}"
    kind = event.get("event_type")
    if type(kind) is not str or kind not in EVENT_TYPES:
        return f"unknown event_type {_v(kind)}" if kind is not None else "no event_type"
    instance_id = event.get("instance_id")
    if instance_id is not None and (
        type(instance_id) is not str
        or not instance_id
        or len(instance_id) > MAX_NAME_CHARS
        or not (instance_id.isascii() or _storable(instance_id))
    ):
        return f"{kind}: bad instance_id {_v(instance_id)}"
    timestamp = event.get("timestamp")
    if timestamp is not None and not (
        (
            type(timestamp) is str
            and len(timestamp) <= MAX_NAME_CHARS
            and (timestamp.isascii() or _storable(timestamp))
        )
        or _number(timestamp)
    ):
        return f"{kind}: bad timestamp {_v(timestamp)}"
    if kind in (KEEP_ALIVE, SPOT_TERMINATION):
        running = event.get("running_tasks")
        if running is not None and not _count(running):
            return f"{kind}: running_tasks must be a count, got {_v(running)}"
    task_id = event.get("task_id")
    if task_id is None:
        return f"{kind}: no task_id" if kind in TASK_EVENTS else None
    if type(task_id) is not str or not task_id or not (task_id.isascii() or _storable(task_id)):
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
    if elapsed is not None and not (_number(elapsed) and elapsed >= 0):
        return f"{kind}: elapsed_time must be a number of seconds, got {_v(elapsed)}"
    receipt = event.get("receipt")
    if (
        receipt is not None
        and kind == TASK_STARTED
        and (
            type(receipt) is not str
            or not receipt
            or len(receipt) > MAX_RECEIPT_CHARS
            or not (receipt.isascii() or _storable(receipt))
        )
    ):
        return f"{kind}: bad receipt {_v(receipt)}"
    if task_known is not None and not task_known(task_id):
        return f"{kind}: unknown task {_v(task_id, 80)}"
    return None


__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "FATAL_EXCEPTION",
    "KEEP_ALIVE",
    "MAX_NAME_CHARS",
    "MAX_RECEIPT_CHARS",
    "NON_FATAL_EXCEPTION",
    "OUTCOME_EVENTS",
    "SHUTDOWN_REQUESTED",
    "SPOT_TERMINATION",
    "TASK_COMPLETED",
    "TASK_DEAD_LETTERED",
    "TASK_EVENTS",
    "TASK_EXCEPTION",
    "TASK_EXITED",
    "TASK_RELEASED",
    "TASK_STARTED",
    "TASK_TIMED_OUT",
    "AttemptEnded",
    "Event",
    "FatalException",
    "KeepAlive",
    "NonFatalException",
    "Outcome",
    "ShutdownRequested",
    "SpotTermination",
    "TaskCompleted",
    "TaskDeadLettered",
    "TaskEvent",
    "TaskException",
    "TaskExited",
    "TaskReleased",
    "TaskStarted",
    "TaskTimedOut",
    "decode",
    "decode_accepted",
    "encode",
    "event_problem",
]
