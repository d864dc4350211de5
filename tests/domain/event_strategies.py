"""Hypothesis strategies for worker events (``cloud_tasks.domain.events``).

``any_event`` draws a typed event of any type whose fields pass the manager's checks, with a few
extra fields of names the manager does not know; ``events_of`` draws one type.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st

from cloud_tasks.domain import events as ev
from cloud_tasks.domain.events import EVENT_CLASSES, Event
from cloud_tasks.domain.taskstate import PREEMPTION_REASONS

__all__ = ["CHECKED", "any_event", "events_of", "json_values"]

_NAMES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_COUNTS = st.none() | st.integers(0, 2**63 - 1)
_SECONDS = st.none() | st.integers(0, 2**40) | st.floats(0, 1e9, allow_nan=False)
_FLAGS = st.none() | st.booleans()
#: Why a worker released a task: mostly a preemption, which the manager counts.
_RELEASE_REASONS = st.sampled_from([*sorted(PREEMPTION_REASONS), "shutdown"]) | json_values

#: Strategies for the fields whose type the manager checks; any other field takes any JSON value.
CHECKED: dict[str, st.SearchStrategy[Any]] = {
    "timestamp": st.none()
    | st.text(st.characters(codec="utf-8"), max_size=40)
    | st.floats(allow_nan=False, allow_infinity=False),
    "instance_id": st.none() | _NAMES,
    "task_id": _NAMES,
    "attempt": _COUNTS,
    "elapsed_time": _SECONDS,
    "retry": _FLAGS,
    "success": st.booleans(),
    "receipt": st.none() | st.text(st.characters(codec="utf-8"), min_size=1, max_size=60),
}


def events_of(
    cls: type[Event], task_ids: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[Event]:
    """Events of ``cls``; ``task_ids`` draws the ``task_id`` of task events when given."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        if field.name == "extra":
            continue
        if field.name == "running_tasks" and cls is not ev.ShutdownRequested:
            fields[field.name] = _COUNTS
        elif field.name == "reason" and cls is ev.TaskReleased:
            fields[field.name] = _RELEASE_REASONS
        else:
            fields[field.name] = CHECKED.get(field.name, json_values)
    # Extra fields with names the manager checks would be checked: those are left out here.
    taken = {field.name for field in attrs.fields(cls)} | {"event_type", "running_tasks", *CHECKED}
    extra = st.dictionaries(
        st.text(max_size=8).filter(lambda key: key not in taken),
        json_values,
        max_size=3,
    )
    if task_ids is not None and "task_id" in fields:
        fields["task_id"] = task_ids
    return st.builds(cls, extra=extra, **fields)


any_event = st.one_of(*(events_of(cls) for cls in EVENT_CLASSES.values()))
