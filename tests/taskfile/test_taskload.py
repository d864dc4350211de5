"""A task file read once: the checks of one pass, the spool the later passes read."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.adapters.memory.tasksource import InMemoryTaskSource
from cloud_tasks.domain.tasks import Envelope, Task, encoded_size
from cloud_tasks.exceptions import TaskFileError
from cloud_tasks.service_layer.taskload import (
    TaskFileSummary,
    TaskSpool,
    read_task_file,
    scan_task_file,
)

URL = "https://data.example/tasks.json"
_seq = itertools.count()


def _file(tasks: list[dict[str, Any]]) -> bytes:
    return json.dumps(tasks).encode()


def _task(i: int, **data: Any) -> dict[str, Any]:
    return {"task_id": f"t{i}", "data": {"n": i, **data}}


def test_the_spool_gives_back_every_task_in_order_as_often_as_asked(tmp_path: Path) -> None:
    awkward = [
        _task(0, text='üñï €\n"quoted"', lone="\ud800"),
        _task(1, big=10**40, small=-1.5e-300, nested=[[{}], {"a": [None, True]}]),
        *(_task(i, pad="x" * (i % 300)) for i in range(2, 5000)),  # several read batches
    ]
    source = InMemoryTaskSource({URL: _file(awkward)})
    with TaskSpool(tmp_path) as spool:
        summary = read_task_file(URL, max_message_bytes=10_000, spool=spool, source=source)
        first, second = list(spool), list(spool)
    expected = [Task(t["task_id"], t["data"]) for t in awkward]
    assert summary.total == summary.selected == spool.count == 5000
    assert first == second == expected
    assert [dict(t.data) for t in first[:2]] == [t["data"] for t in awkward[:2]]
    assert source.opens == {URL: 1}
    assert list(tmp_path.iterdir()) == []  # the spool has no name


def test_oversized_tasks_are_named_after_the_whole_file_is_checked() -> None:
    tasks = [_task(i, pad="x" * (900 if i in (3, 7) else 1)) for i in range(10)]
    limit = encoded_size(Task("t3", tasks[3]["data"])) - 1
    source = InMemoryTaskSource({URL: _file(tasks)})
    with pytest.raises(TaskFileError) as info:
        read_task_file(URL, max_message_bytes=limit, source=source)
    assert str(info.value) == (
        f"{URL}: 2 tasks are larger than the queue's {limit}-byte message limit ('t3', 't7'); "
        "keep large inputs in files and pass their paths"
    )
    # The size checked is the queue message's, byte for byte.
    assert limit + 1 == len(Envelope(Task("t3", tasks[3]["data"])).encode().encode())


def test_an_empty_task_file_is_refused_only_when_it_is_to_run() -> None:
    source = InMemoryTaskSource({URL: b"[]"})
    with pytest.raises(TaskFileError, match="the task file holds no tasks; nothing to run"):
        read_task_file(URL, max_message_bytes=1000, source=source)
    assert read_task_file(URL, source=source).total == 0


def _event(kind: str, task_id: str, **fields: Any) -> dict[str, Any]:
    stamp = f"2024-01-01T00:00:{next(_seq):06d}+00:00"
    return {"event_type": kind, "timestamp": stamp, "hostname": "h", "instance_id": "i-1",
            "task_id": task_id, **fields}  # fmt: skip


def test_tasks_completed_in_the_earlier_job_are_not_spooled(tmp_path: Path) -> None:
    tasks = [_task(i) for i in range(1200)]  # more than one batch of the earlier database
    with TaskDatabase(tmp_path / "old.db") as old:
        old.add_tasks((Task(t["task_id"], t["data"]) for t in tasks[:1100]), 1.0)
        events = []
        for i in range(0, 1100, 2):  # even tasks completed, odd ones failed
            events.append(_event("task_started", f"t{i}", attempt=1))
            events.append(_event("task_completed", f"t{i}", success=True, retry=False))
            events.append(_event("task_started", f"t{i + 1}", attempt=1))
            events.append(_event("task_exception", f"t{i + 1}", retry=False, exception="E"))
        old.ingest(events, 2.0)
    source = InMemoryTaskSource({URL: _file(tasks)})
    with TaskDatabase.open_existing(tmp_path / "old.db") as old, TaskSpool(tmp_path) as spool:
        summary = read_task_file(
            URL, max_message_bytes=10_000, earlier=old, spool=spool, source=source
        )
        kept = [task.task_id for task in spool]
    expected = [f"t{i}" for i in range(1, 1100, 2)] + [f"t{i}" for i in range(1100, 1200)]
    assert kept == expected
    assert (summary.total, summary.selected) == (1200, len(expected))
    assert source.opens == {URL: 1}


def test_a_bad_task_file_fails_with_the_readers_message(tmp_path: Path) -> None:
    source = InMemoryTaskSource(
        {URL: b'[{"task_id": "a", "data": {}},\n {"task_id": "a", "data": {}}]'}
    )
    with TaskSpool(tmp_path) as spool, pytest.raises(TaskFileError) as info:
        read_task_file(URL, max_message_bytes=1000, spool=spool, source=source)
    assert str(info.value) == (
        f"{URL}, task index 1 (line 2): duplicate task_id 'a' (first used by task index 0)"
    )


def test_a_scan_keeps_a_slice_and_names_its_oversized_tasks_without_refusing(
    tmp_path: Path,
) -> None:
    tasks = [_task(i, pad="x" * (900 if i in (1, 4) else 1)) for i in range(10)]
    limit = encoded_size(Task("t4", tasks[4]["data"])) - 1
    with TaskDatabase(tmp_path / "old.db") as old:
        old.add_tasks([Task("t3", {}), Task("t5", {})], 1.0)
        done = [_event("task_started", "t3", attempt=1)]
        done.append(_event("task_completed", "t3", success=True, retry=False))
        old.ingest(done, 2.0)
    source = InMemoryTaskSource({URL: _file(tasks)})
    with TaskDatabase.open_existing(tmp_path / "old.db") as old, TaskSpool(tmp_path) as spool:
        summary = scan_task_file(
            URL,
            max_message_bytes=limit,
            earlier=old,
            spool=spool,
            source=source,
            start=2,
            limit=5,
        )
        kept = [task.task_id for task in spool]
    # t2..t6 are the slice; t3 was completed; t4 is too large (and still kept: the caller
    # refuses it), t1 is too large but outside the slice.
    assert summary == TaskFileSummary(total=10, selected=4, oversized=("t4",))
    assert kept == ["t2", "t4", "t5", "t6"]
    assert source.opens == {URL: 1}
