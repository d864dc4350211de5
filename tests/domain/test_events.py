"""Worker events (SPEC §10): the typed events, their one JSON codec and its acceptance rule.

Properties: every event type survives ``encode`` → JSON → ``decode`` unchanged; ``decode`` of
anything either returns an event or raises ``EventError`` (never another exception), and it
accepts exactly what ``event_problem`` accepts.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.domain import events as ev
from cloud_tasks.domain.events import (
    EVENT_CLASSES,
    EVENT_TYPES,
    Event,
    KeepAlive,
    TaskCompleted,
    TaskDeadLettered,
    TaskReleased,
    TaskStarted,
    decode,
    encode,
    event_problem,
)
from cloud_tasks.exceptions import CloudTasksError, EventError
from tests.domain.event_strategies import any_event


@settings(max_examples=300)
@given(event=any_event)
def test_every_event_type_survives_encode_json_and_decode(event: Event) -> None:
    wire = encode(event)
    assert wire["event_type"] == event.event_type
    assert list(wire)[:4] == ["timestamp", "hostname", "instance_id", "event_type"]
    line = json.dumps(wire, default=str)
    assert decode(json.loads(line)) == event


_KEYS = st.sampled_from(
    [
        "event_type",
        "task_id",
        "instance_id",
        "timestamp",
        "success",
        "retry",
        "attempt",
        "elapsed_time",
        "running_tasks",
        "result",
        "reason",
        "exception",
        "receipt",
        "surprise",
    ]
)
_ANYTHING = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(sorted(EVENT_TYPES))
    | st.sampled_from(["t0", "", "\ud800", "i" * 300]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=10,
)


#: Worker events with one field replaced by anything: mostly one step from valid.
_NEAR_EVENTS = st.builds(
    lambda event, key, value: {**encode(event), key: value}, any_event, _KEYS, _ANYTHING
)


@settings(max_examples=300)
@given(
    obj=_ANYTHING | any_event.map(encode) | _NEAR_EVENTS,
    known=st.none() | st.just(frozenset({"t0"})),
)
def test_decode_returns_an_event_or_raises_our_error_exactly_when_event_problem_says(
    obj: Any, known: frozenset[str] | None
) -> None:
    task_known = None if known is None else known.__contains__
    problem = event_problem(obj, task_known)
    try:
        event = decode(obj, task_known)
    except EventError as exc:
        assert isinstance(exc, CloudTasksError)
        assert str(exc) == problem
        assert "\n" not in str(exc) and len(str(exc)) < 200
        return
    assert problem is None
    assert type(event) is EVENT_CLASSES[obj["event_type"]]
    # What it knows is typed, the rest is kept: together they are the whole object.
    again = encode(event)
    for key, value in obj.items():
        if key == "receipt" and value is None and type(event) is TaskStarted:
            assert key not in again  # a start without a delivery is written without one
            continue
        assert again[key] is value or (key == "event_type" and again[key] == value)


def test_a_worker_event_is_written_in_the_order_workers_always_wrote() -> None:
    event = TaskCompleted(
        timestamp="2026-01-01T00:00:00.000001+00:00",
        hostname="vm",
        instance_id=None,
        task_id="t1",
        attempt=1,
        elapsed_time=0.5,
        retry=False,
        outcome="success",
        success=True,
        result={"x": 1},
    )
    assert json.dumps(encode(event)) == (
        '{"timestamp": "2026-01-01T00:00:00.000001+00:00", "hostname": "vm", '
        '"instance_id": null, "event_type": "task_completed", "task_id": "t1", "attempt": 1, '
        '"elapsed_time": 0.5, "retry": false, "outcome": "success", "success": true, '
        '"result": {"x": 1}}'
    )
    dead = TaskDeadLettered(task_id="t1", attempt=5, retry=False, reason="r", error="e")
    assert list(encode(dead))[4:] == ["task_id", "attempt", "retry", "reason", "error"]


def test_a_start_names_its_delivery_only_when_it_has_one() -> None:
    started = TaskStarted(task_id="t1", attempt=1, receipt="17:ab")
    assert list(encode(started))[4:] == ["task_id", "attempt", "receipt"]
    assert decode(json.loads(json.dumps(encode(started)))) == started
    # File mode has no delivery: the field is left out, as workers always wrote it.
    assert list(encode(TaskStarted(task_id="t1", attempt=1)))[4:] == ["task_id", "attempt"]
    old_worker = decode({"event_type": "task_started", "task_id": "t1", "attempt": 1})
    assert isinstance(old_worker, TaskStarted) and old_worker.receipt is None


@pytest.mark.parametrize("receipt", [7, "", "r" * (ev.MAX_RECEIPT_CHARS + 1), "\ud800", ["r"]])
def test_a_start_with_a_bad_receipt_is_refused(receipt: object) -> None:
    obj = {"event_type": "task_started", "task_id": "t1", "receipt": receipt}
    problem = event_problem(obj)
    assert problem is not None and problem.startswith("task_started: bad receipt")
    with pytest.raises(EventError):
        decode(obj)


def test_fields_a_newer_worker_adds_are_kept_and_written_back_after_the_known_ones() -> None:
    obj = {"event_type": "keep_alive", "gpu_load": [0.5], "running_tasks": 2, "task_id": "t9"}
    event = decode(obj)
    assert isinstance(event, KeepAlive) and event.running_tasks == 2
    assert event.extra == {"gpu_load": [0.5], "task_id": "t9"}
    wire = encode(event)
    assert list(wire)[-2:] == ["gpu_load", "task_id"] and wire["gpu_load"] == [0.5]


def test_a_field_an_old_worker_left_out_takes_what_the_manager_always_assumed() -> None:
    completed = decode({"event_type": "task_completed", "task_id": "t", "success": True})
    assert isinstance(completed, TaskCompleted)
    assert (completed.result, completed.retry, completed.attempt) == ({}, None, None)
    released = decode({"event_type": "task_released", "task_id": "t"})
    assert isinstance(released, TaskReleased) and released.reason == "preempted"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("attempt", 2**63),
        ("attempt", 10**30),
        ("elapsed_time", 10**400),
        ("timestamp", 10**400),
        ("timestamp", -(2**63) - 1),
        ("elapsed_time", math.inf),
    ],
    ids=["2**63", "10**30", "10**400 s", "10**400 timestamp", "-2**63-1", "inf"],
)
def test_numbers_beyond_what_sqlite_stores_are_refused(field: str, value: Any) -> None:
    obj = {"event_type": "task_completed", "task_id": "t", "success": True, field: value}
    with pytest.raises(EventError, match=field):
        decode(obj)


def test_running_tasks_beyond_64_bits_are_refused() -> None:
    with pytest.raises(EventError, match="running_tasks"):
        decode({"event_type": "keep_alive", "running_tasks": 2**64})
    assert isinstance(decode({"event_type": "keep_alive", "running_tasks": 2**63 - 1}), KeepAlive)


def test_there_is_one_class_per_event_type_and_the_names_are_the_constants() -> None:
    assert set(EVENT_CLASSES) == EVENT_TYPES
    assert len(EVENT_TYPES) == 12
    for name, cls in EVENT_CLASSES.items():
        assert cls.event_type == name
        assert getattr(ev, name.upper()) == name
    outcomes = {name for name, cls in EVENT_CLASSES.items() if cls in ev.Outcome.__args__}
    assert outcomes == ev.OUTCOME_EVENTS
