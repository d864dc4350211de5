"""The task database: states, retries, dead letters, duplicates, spend, file mode, report."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.domain.taskstate import InstanceRecord
from cloud_tasks.service_layer.report import build_report, elapsed_stats, format_report


def _event(kind: str, task_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "timestamp": "2026-01-01T00:00:00Z",
        "hostname": "h",
        "instance_id": fields.pop("instance_id", "i-1"),
        "event_type": kind,
        "task_id": task_id,
        **fields,
    }


def _done(task_id: str, attempt: int = 1, elapsed: float = 1.0, **kw: Any) -> dict[str, Any]:
    return _event(
        "task_completed",
        task_id,
        success=True,
        retry=False,
        attempt=attempt,
        elapsed_time=elapsed,
        result=kw.pop("result", {"ok": task_id}),
        **kw,
    )


def _db(n: int = 3) -> TaskDatabase:
    db = TaskDatabase("job.db")
    db.add_tasks((Task(f"t{i}", {"i": i}) for i in range(n)), now=100.0)
    db.set_meta(job_id="job", started_at=100.0)
    return db


def test_file_is_private_and_tasks_are_pending() -> None:
    db = _db()
    assert stat.S_IMODE(os.stat("job.db").st_mode) == 0o600
    assert db.counts().pending == 3
    assert db.counts().total == 3
    # Loading again (a resumed run) adds nothing.
    assert db.add_tasks([Task("t0", {}), Task("t9", {})], now=101.0) == 1
    assert db.counts().total == 4


def test_lifecycle_success_retry_failure_dead_letter() -> None:
    db = _db(4)
    db.ingest([_event("task_started", "t0"), _event("task_started", "t1")], now=101.0)
    assert db.counts().running == 2
    db.ingest(
        [
            _done("t0", result={"answer": 42}),
            _event("task_completed", "t1", success=False, retry=True, attempt=1, result={}),
            _event(
                "task_exception",
                "t2",
                retry=False,
                attempt=1,
                exception="Traceback\nValueError: bad",
            ),
            _event("task_exited", "t3", retry=True, attempt=1, exit_code=-9),
        ],
        now=102.0,
    )
    assert db.counts().completed == 1
    assert db.counts().failed == 1
    assert db.counts().pending == 2  # a requested retry is not terminal
    t0 = db.task("t0")
    assert t0 is not None and t0.result == {"answer": 42} and t0.state == "completed"
    t2 = db.task("t2")
    assert t2 is not None and t2.error == "ValueError: bad"
    db.ingest(
        [_event("task_dead_lettered", "t1", reason="max_attempts (5) reached", attempt=5)],
        now=103.0,
    )
    t1 = db.task("t1")
    assert t1 is not None and t1.state == "failed" and t1.attempts == 5
    assert (
        t1.error is not None
        and "max_attempts (5) reached" in t1.error
        and "retry requested" in t1.error
    )
    assert db.counts().failed == 2


def test_duplicate_events_and_duplicate_completions() -> None:
    db = _db(1)
    first = _done("t0", attempt=1)
    result = db.ingest([first, first], now=101.0)
    assert (result.new_events, result.duplicate_events) == (1, 1)
    # Same task completed again by another delivery: recorded, not double counted.
    db.ingest([_done("t0", attempt=1, instance_id="i-2", elapsed=2.0)], now=102.0)
    assert db.counts().completed == 1
    assert db.duplicate_completions() == 1
    assert len(db.events("t0")) == 2
    row = db.task("t0")
    assert row is not None and row.instance_id == "i-1"


def test_completed_is_final_and_failed_can_be_upgraded() -> None:
    db = _db(2)
    db.ingest([_done("t0"), _event("task_timed_out", "t1", retry=False, attempt=1)], now=101.0)
    db.ingest([_event("task_exception", "t0", retry=True, attempt=2, exception="E")], now=102.0)
    db.ingest([_done("t1", attempt=2)], now=103.0)
    assert db.counts().completed == 2 and db.counts().failed == 0


def test_unknown_tasks_are_added_for_hand_loaded_queues() -> None:
    db = TaskDatabase("job.db")
    db.ingest([_done("x"), _event("keep_alive", "ignored-not-a-task")], now=1.0)
    assert db.counts().completed == 1


def test_keepalive_updates_instance_liveness_and_spend() -> None:
    db = _db()
    db.record_instance(
        InstanceRecord("i-1", "job-1", "m5.large", "z", True, 0.36, launched_at=100.0)
    )
    db.record_instance(
        InstanceRecord("i-2", "job-2", "m5.large", "z", True, 0.36, launched_at=100.0)
    )
    result = db.ingest(
        [{"event_type": "keep_alive", "instance_id": "i-1", "timestamp": "x"}], now=150.0
    )
    assert result.alive == {"i-1": 150.0}
    assert not result.worked
    db.end_instance("i-2", 1900.0, "terminated")
    records = {r.instance_id: r for r in db.instances()}
    assert records["i-1"].first_seen_alive == 150.0
    assert abs(db.spend_usd(now=3700.0) - (0.36 + 0.18)) < 1e-9
    assert [r.instance_id for r in db.instances(active_only=True)] == ["i-1"]


def test_report_counts_errors_stats_and_json_keys() -> None:
    db = _db(4)
    db.ingest(
        [
            _done("t0", elapsed=1.0),
            _done("t1", elapsed=3.0),
            _event("task_exception", "t2", retry=False, attempt=1, exception="KeyError: 'x'"),
        ],
        now=160.0,
    )
    db.record_instance(InstanceRecord("i-1", "job-1", "local", "local", False, 0.0, 100.0))
    report = build_report(db, now=160.0, instance_states={"i-1": "running"})
    data = report.to_dict()
    assert data["job_id"] == "job"
    assert data["tasks"] == {"pending": 1, "running": 0, "completed": 2, "failed": 1, "total": 4}
    assert data["instances"][0]["state"] == "running"
    assert data["spend_usd"] == 0
    assert data["top_errors"] == [{"error": "KeyError: 'x'", "count": 1}]
    assert report.throughput_per_s == 3 / 60
    assert report.eta_s == 20.0
    assert report.elapsed.mean_s == 2.0
    json.dumps(data)
    text = format_report(report)
    assert "2 completed, 1 failed" in text and "KeyError" in text and "t2" in text


def test_unfinished_tasks_can_be_resent_or_failed() -> None:
    db = _db(3)
    db.ingest([_done("t0")], now=101.0)
    assert [(t.task_id, t.data, n) for t, n in db.unfinished()] == [
        ("t1", {"i": 1}, 0),
        ("t2", {"i": 2}, 0),
    ]
    db.mark_resent(["t1"])
    assert dict((t.task_id, n) for t, n in db.unfinished()) == {"t1": 1, "t2": 0}
    assert db.fail_tasks(["t0", "t2"], 102.0, "no outcome") == 1  # t0 is already completed
    assert db.counts().failed == 1 and db.counts().completed == 1
    reopened = TaskDatabase("job.db")
    assert reopened.counts() == db.counts()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50))
def test_elapsed_stats_are_ordered(values: list[float]) -> None:
    stats = elapsed_stats(sorted(values))
    assert stats.min_s <= stats.median_s <= stats.p95_s <= stats.max_s
    assert stats.min_s <= stats.mean_s * (1 + 1e-9) + 1e-9
    assert stats.count == len(values)


def test_running_tasks_are_estimated_from_keepalives() -> None:
    db = _db(5)
    db.record_instance(InstanceRecord("i-1", "job-1", "local", "local", False, 0.0, 100.0))
    db.record_instance(InstanceRecord("i-2", "job-2", "local", "local", False, 0.0, 100.0))
    keepalive = {"event_type": "keep_alive", "timestamp": "x"}
    db.ingest(
        [
            {**keepalive, "instance_id": "i-1", "running_tasks": 2},
            {**keepalive, "instance_id": "i-2", "running_tasks": 1},
        ],
        now=101.0,
    )
    counts = db.counts_with_running()
    assert (counts.pending, counts.running, counts.total) == (2, 3, 5)
    db.ingest(
        [_done("t0"), {**keepalive, "instance_id": "i-1", "running_tasks": 0, "n": 2}], now=102.0
    )
    db.end_instance("i-2", 103.0, "idle")
    counts = db.counts_with_running()
    assert (counts.pending, counts.running, counts.completed) == (4, 0, 1)
    assert db.counts().running == 0  # the state counts themselves are untouched


def test_in_memory_database_for_simulations() -> None:
    db = TaskDatabase(":memory:")
    db.add_tasks([Task("a")], now=0.0)
    db.record_instance(InstanceRecord("i-1", "n", "t", "z", True, 3.6, launched_at=0.0))
    assert abs(db.spend_usd(now=1000.0) - 1.0) < 1e-9
    db.end_instance("i-1", 2000.0, "done")
    db.end_instance("i-1", 9000.0, "again")  # ending twice changes nothing
    assert abs(db.spend_usd(now=5000.0) - 2.0) < 1e-9
    assert not os.path.exists(":memory:")
