"""Event export, task dumps and skip-completed, against a real task database on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import CloudTasksError, ConfigError
from cloud_tasks.service_layer.exports import (
    EventExport,
    dump_states,
    dump_tasks,
    open_earlier_database,
    skip_completed,
)
from cloud_tasks.taskfile import read_tasks

_seq = iter(range(1_000_000))


def _event(kind: str, task_id: str | None = None, **fields: Any) -> dict[str, Any]:
    event = {"event_type": kind, "timestamp": f"2024-01-01T00:00:{next(_seq):06d}+00:00"}
    event.update({"hostname": "h", "instance_id": "i-1"})
    if task_id is not None:
        event["task_id"] = task_id
    event.update(fields)
    return event


def _job(path: Path, outcomes: dict[str, str]) -> TaskDatabase:
    """A database with one task per entry: 'ok' completed, 'fail' failed, 'wait' pending."""
    db = TaskDatabase(path)
    db.add_tasks((Task(tid, {"n": i, "name": f"ü-{tid}"}) for i, tid in enumerate(outcomes)), 1.0)
    events: list[dict[str, Any]] = []
    for task_id, outcome in outcomes.items():
        if outcome == "wait":
            continue
        events.append(_event("task_started", task_id, attempt=1))
        if outcome == "ok":
            events.append(_event("task_completed", task_id, success=True, retry=False, result=1))
        else:
            events.append(
                _event("task_exception", task_id, retry=False, exception="ValueError: bad")
            )
    db.ingest(events, 2.0)
    return db


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- event export --------------------------------------------------------------------------


def test_export_appends_events_as_they_arrive_without_keep_alives(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok"})
    out = tmp_path / "events.jsonl"
    with EventExport(db, out) as export:
        assert export.flush() == 2
        assert [e["event_type"] for e in _lines(out)] == ["task_started", "task_completed"]
        db.ingest([_event("keep_alive", running_tasks=1), _event("task_started", "b")], 3.0)
        assert export.flush() == 1
        assert export.flush() == 0
        lines = _lines(out)
        assert [e["event_type"] for e in lines] == [
            "task_started",
            "task_completed",
            "task_started",
        ]
        assert lines[-1]["task_id"] == "b"
    db.close()


def test_a_new_file_after_continue_first_gets_the_recorded_events(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok", "b": "fail"})
    first = tmp_path / "first.jsonl"
    with EventExport(db, first):
        pass
    db.close()
    # The manager died; a new one resumes with another file.
    db = TaskDatabase.open_existing(tmp_path / "job.db")
    db.ingest([_event("task_started", "c")], 4.0)
    second = tmp_path / "second.jsonl"
    with EventExport(db, second) as export:
        assert export.written == 0
    assert _lines(second) == db.events()
    assert len(_lines(second)) == 5
    assert len(_lines(first)) == 4
    db.close()


def test_continuing_into_the_same_file_does_not_repeat_events(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok"})
    out = tmp_path / "events.jsonl"
    with EventExport(db, out):
        pass
    db.ingest([_event("task_started", "z")], 5.0)
    with EventExport(db, out) as export:
        assert export.flush() == 1
    kinds = [(e["event_type"], e.get("task_id")) for e in _lines(out)]
    assert kinds == [("task_started", "a"), ("task_completed", "a"), ("task_started", "z")]
    db.close()


def test_the_same_file_emptied_meanwhile_starts_over(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok"})
    out = tmp_path / "events.jsonl"
    with EventExport(db, out):
        pass
    out.write_text("")
    with EventExport(db, out):
        pass
    assert len(_lines(out)) == 2
    db.close()


def test_an_unwritable_event_file_is_named(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok"})
    with pytest.raises(ConfigError, match=r"no-such-dir/e\.jsonl: cannot write the event file"):
        EventExport(db, tmp_path / "no-such-dir" / "e.jsonl")
    db.close()


# --- dumps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["failed.json", "failed.yaml"])
def test_dump_failed_is_a_task_file_run_accepts(tmp_path: Path, name: str) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok", "b": "fail", "c": "wait", "d": "fail"})
    out = tmp_path / name
    assert dump_tasks(db, dump_states("failed"), out) == 2
    assert read_tasks(out) == [
        Task("b", {"n": 1, "name": "ü-b"}),
        Task("d", {"n": 3, "name": "ü-d"}),
    ]
    db.close()


def test_dump_unfinished_and_an_empty_dump(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok", "b": "fail", "c": "wait"})
    assert dump_states("unfinished") == ("pending", "running", "failed")
    assert dump_tasks(db, dump_states("unfinished"), tmp_path / "u.json") == 2
    assert [t.task_id for t in read_tasks(tmp_path / "u.json")] == ["b", "c"]
    assert dump_tasks(db, dump_states("running"), tmp_path / "none.json") == 0
    assert read_tasks(tmp_path / "none.json") == []
    db.close()


def test_dump_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _job(tmp_path / "job.db", {"a": "ok", "b": "fail"})
    assert dump_tasks(db, ["completed"], None) == 1
    assert json.loads(capsys.readouterr().out) == [
        {"task_id": "a", "data": {"n": 0, "name": "ü-a"}}
    ]
    db.close()


def test_a_dump_leaves_nothing_behind_when_it_cannot_be_written(tmp_path: Path) -> None:
    db = _job(tmp_path / "job.db", {"b": "fail"})
    # A task known only from its events (loaded by load_queue) has no data to dump.
    db.ingest([_event("task_exception", "x", retry=False, exception="E")], 3.0)
    out = tmp_path / "failed.json"
    with pytest.raises(CloudTasksError, match=r"1 of these tasks have no data .*\(x\)"):
        dump_tasks(db, ["failed"], out)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("job.db")] == []
    with pytest.raises(ConfigError, match=r"must end in \.json, \.yaml or \.yml"):
        dump_tasks(db, ["completed"], tmp_path / "out.txt")
    with pytest.raises(ConfigError, match="not a task state"):
        dump_states("done")
    db.close()


# --- skip completed ------------------------------------------------------------------------


def test_skip_completed_keeps_order_and_streams_in_batches(tmp_path: Path) -> None:
    outcomes = {f"t{i:04d}": ("ok" if i % 3 else "fail") for i in range(1200)}
    _job(tmp_path / "old.db", outcomes).close()
    tasks = [Task(f"t{i:04d}", {}) for i in range(1300)]  # 100 the old job never saw
    with open_earlier_database(tmp_path / "old.db", tmp_path / "new.db") as old:
        kept = [t.task_id for t in skip_completed(tasks, old)]
    expected = [f"t{i:04d}" for i in range(1200) if i % 3 == 0]
    expected += [f"t{i:04d}" for i in range(1200, 1300)]
    assert kept == expected


def test_skip_completed_refuses_the_new_jobs_own_database(tmp_path: Path) -> None:
    _job(tmp_path / "job.db", {"a": "ok"}).close()
    with pytest.raises(ConfigError, match="this job's own task database"):
        open_earlier_database(tmp_path / "job.db", tmp_path / "." / "job.db")
    with pytest.raises(CloudTasksError, match="no task database here"):
        open_earlier_database(tmp_path / "missing.db")
