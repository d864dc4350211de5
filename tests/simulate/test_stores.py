"""The in-memory task store follows the task database's state rules; the compact queues keep
the queue semantics the simulated workers rely on."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.memory.clock import VirtualClock
from cloud_tasks.adapters.memory.compact_queue import CompactEventQueue, CompactTaskQueue
from cloud_tasks.adapters.memory.taskstore import InMemoryTaskStore
from cloud_tasks.domain.durations import ConstantDuration
from cloud_tasks.domain.retry import OutcomeKind
from cloud_tasks.domain.simulated_outcomes import FailureModel
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.domain.taskstate import InstanceRecord
from cloud_tasks.service_layer.simulation import simulate
from tests.simulate.helpers import config

TASKS = ["a", "b", "c"]

events = st.lists(
    st.tuples(
        st.sampled_from([*TASKS, "unknown"]),
        st.sampled_from(
            [
                ("task_completed", {"success": True, "retry": False}),
                ("task_completed", {"success": False, "retry": True}),
                ("task_exception", {"retry": False, "exception": "ValueError: x"}),
                ("task_exception", {"retry": True, "exception": "ValueError: y"}),
                ("task_dead_lettered", {"reason": "max_attempts"}),
                ("task_started", {}),
                ("task_released", {"reason": "preempted"}),
                ("task_released", {"reason": "shutdown"}),
            ]
        ),
        st.integers(1, 4),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_the_memory_store_and_the_database_agree(sequence: list[Any]) -> None:
    db = TaskDatabase(":memory:")
    store = InMemoryTaskStore()
    tasks = [Task(task_id) for task_id in TASKS]
    db.add_tasks(tasks, 0.0)
    store.add_tasks(tasks, 0.0)
    for number, (task_id, (kind, fields), attempt) in enumerate(sequence):
        # Distinct timestamps: the database drops repeated events by content.
        event = {
            "event_type": kind,
            "task_id": task_id,
            "instance_id": "vm-1",
            "attempt": attempt,
            "timestamp": str(number),
            **fields,
        }
        db.ingest([event], float(number))
        store.ingest([event], float(number))
        assert store.counts() == db.counts()
        for threshold in (1, 2):
            assert store.preempted_tasks(threshold) == db.preempted_tasks(threshold)
    for task_id in TASKS:
        row = db.task(task_id)
        assert row is not None and store.state_of(task_id) == row.state
        if row.state == "failed":
            assert store.error_of(task_id) == row.error


def test_spend_and_instances_as_the_database_computes_them() -> None:
    db = TaskDatabase(":memory:")
    store = InMemoryTaskStore()
    for target in (db, store):
        target.record_instance(InstanceRecord("i-1", "n", "t", "z", True, 0.36, 100.0))
        target.record_instance(InstanceRecord("i-2", "n", "t", "z", False, 1.8, 200.0))
        target.ingest(
            [{"event_type": "keep_alive", "instance_id": "i-1", "running_tasks": 2}], 150.0
        )
        target.end_instance("i-2", 300.0, "idle")
    assert store.spend_usd(1000.0) == db.spend_usd(1000.0)
    assert store.counts_with_running() == db.counts_with_running()
    assert store.instances() == db.instances()
    assert store.instances(active_only=True) == db.instances(active_only=True)


def test_states_of_any_number_of_ids_as_the_database_knows_them() -> None:
    """More ids than one SQLite query binds: every known one is answered, unknown ones not."""
    db = TaskDatabase(":memory:")
    store = InMemoryTaskStore()
    tasks = [Task(f"t{i:04d}") for i in range(1200)]
    for target in (db, store):
        target.add_tasks(tasks, 0.0)
        target.ingest(
            [
                {
                    "event_type": "task_started",
                    "task_id": "t1100",
                    "instance_id": "vm-1",
                    "attempt": 1,
                    "timestamp": "1",
                }
            ],
            1.0,
        )
    asked = [task.task_id for task in tasks] + ["nope"]
    states = db.states_of(asked)
    assert len(states) == 1200 and "nope" not in states
    assert states["t1100"] == "running" and states["t0000"] == "pending"
    assert store.states_of(asked) == states


def test_compact_task_queue_leases_releases_and_requeues() -> None:
    clock = VirtualClock(0.0)
    queue = CompactTaskQueue("q", clock=clock)
    queue.create()
    queue.send([Envelope(Task(f"t{i}")) for i in range(3)])
    first = queue.receive(2, 10.0)
    assert [m.task_id for m in first] == ["t0", "t1"] and queue.depth() == 3
    queue.release(first[1].receipt)
    again = queue.receive(5, 10.0)
    assert [m.task_id for m in again] == ["t1", "t2"] and again[0].delivery_count == 2
    queue.requeue(again[1])
    retried = queue.receive(5, 10.0)
    assert [(m.task_id, m.attempt) for m in retried] == [("t2", 2)]
    clock.advance(10.0)
    expired = queue.receive(5, 10.0)
    assert sorted(m.task_id for m in expired) == ["t0", "t1", "t2"]
    queue.release(first[0].receipt)  # an old receipt no longer moves the message
    assert queue.receive(5, 10.0) == []
    for message in expired:
        queue.ack(message.receipt)
    assert queue.depth() == 0


def test_compact_event_queue_redelivers_unacknowledged_events() -> None:
    clock = VirtualClock(0.0)
    events = CompactEventQueue("e", clock=clock, visibility_timeout_s=5.0)
    events.create()
    events.send([{"n": 1}, {"n": 2}])
    got = events.receive(10)
    assert [e.event["n"] for e in got] == [1, 2]
    events.ack([got[0].receipt])
    assert events.receive(10) == []
    clock.advance(5.0)
    assert [e.event["n"] for e in events.receive(10)] == [2]


@pytest.mark.parametrize(
    ("extra", "failures"),
    [
        ("  max_attempts: 2\n  retry_on_exit: true\n", FailureModel(0.3, OutcomeKind.EXIT)),
        ("  max_runtime: 90\n", FailureModel(0.2, OutcomeKind.TIMEOUT)),
        ("  speculative_after: 3x\n", FailureModel(0.2, OutcomeKind.RETRY_REQUESTED)),
    ],
)
def test_the_simulated_workers_send_accepted_events_only(
    extra: str, failures: FailureModel
) -> None:
    # simulate's own store trusts the workers' events (trusted_events); a store that checks
    # each one must refuse none of them and reach the same figures.
    job = config(extra, max_instances=6)
    runs = [
        simulate(
            job,
            duration=ConstantDuration(60.0),
            num_tasks=60,
            preemption_rate_per_hour=3.0,
            seed=3,
            failures=failures,
            slow_instances=(0.3, 4.0),
            store=store,
        )
        for store in (None, InMemoryTaskStore())
    ]
    trusted, checked = runs
    assert isinstance(trusted.store, InMemoryTaskStore) and trusted.store.trusted_events
    assert not [line for line in checked.log if "invalid event" in line]
    assert checked.result == trusted.result
    assert checked.store.counts() == trusted.store.counts()
    assert isinstance(checked.store, InMemoryTaskStore)
    assert checked.store.events_applied == trusted.store.events_applied > 0
    assert trusted.result.preempted_runs > 0 and trusted.result.retries > 0


def test_a_trusted_store_applies_successes_as_a_checking_store_does() -> None:
    # The trusted store's shortcut for a success must leave what _apply leaves: the state, the
    # streak of preemptions and the error cleared, the elapsed time summed, a repeat ignored.
    def event(task_id: str, kind: str, **fields: Any) -> dict[str, Any]:
        head = {"timestamp": "1.000", "instance_id": "i-1", "event_type": kind}
        return head | {"task_id": task_id} | fields

    done = {"success": True, "retry": False, "attempt": 1, "elapsed_time": 2.5, "result": {}}
    events = [
        event("a", "task_started", attempt=1),
        event("b", "task_released", attempt=1, reason="preempted"),
        event("c", "task_exception", attempt=1, retry=True, exception="E: x", elapsed_time=1.0),
        event("a", "task_completed", **done),
        event("b", "task_completed", **done),
        event("c", "task_completed", **done),
        event("d", "task_completed", **done),
        event("a", "task_completed", **done),
        event("new", "task_completed", **done),
    ]
    stores = [InMemoryTaskStore(trusted_events=True), InMemoryTaskStore()]
    results = []
    for store in stores:
        store.add_tasks([Task(task_id, {}) for task_id in "abcd"])
        results.append(store.ingest(events, 5.0).transitions)
    trusted, checked = stores
    assert results[0] == results[1] == 6
    assert trusted.counts() == checked.counts()
    assert trusted.completed_elapsed_s == checked.completed_elapsed_s == 12.5
    assert trusted.duplicate_completions == checked.duplicate_completions == 1
    assert trusted.preempted_tasks(1) == checked.preempted_tasks(1) == 0
    assert trusted.error_of("c") is checked.error_of("c") is None
    assert [trusted.state_of(t) for t in "abcd"] == ["completed"] * 4
