"""``run --output-file`` and ``status --dump --output`` never write over a file they did not
make: not the task file, the configuration, the task database, nor a FIFO (which would block)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.exceptions import ConfigError
from cloud_tasks.service_layer.exports import EventExport, dump_tasks


def _db(path: Path) -> TaskDatabase:
    db = TaskDatabase(path, job_id="job")
    db.add_tasks([Task("a", {"n": 1})], 1.0, complete=True)
    db.ingest([{"event_type": "task_started", "task_id": "a", "instance_id": "i-1"}], 2.0)
    return db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("tasks.json", '[{"task_id": "a", "data": {}}]\n'),
        ("config.yml", "provider: local\nlocal:\n  job_id: job\n"),
        ("results.jsonl", '{"task_id": "a", "answer": 42}\n'),
        ("blob.bin", None),
    ],
)
def test_events_are_never_appended_to_a_file_that_is_not_an_event_file(
    name: str, content: str | None, tmp_path: Path
) -> None:
    target = tmp_path / name
    if content is None:
        target.write_bytes(bytes(range(256)))
    else:
        target.write_text(content)
    before = _digest(target)
    with _db(tmp_path / "job.db") as db:
        with pytest.raises(ConfigError, match="not an event file written by --output-file"):
            EventExport(db, target)
        with pytest.raises(ConfigError, match="not an event file"):
            EventExport(db, tmp_path / "job.db")  # the task database itself
    assert _digest(target) == before


def test_events_are_never_written_into_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    with _db(tmp_path / "job.db") as db, pytest.raises(ConfigError, match="not a regular file"):
        EventExport(db, fifo)


def test_a_dump_never_replaces_an_existing_file(tmp_path: Path) -> None:
    original = tmp_path / "tasks.json"
    original.write_text('[{"task_id": "mine", "data": {}}]\n')
    before = _digest(original)
    with _db(tmp_path / "job.db") as db:
        with pytest.raises(ConfigError, match="already exists; it is never overwritten"):
            dump_tasks(db, ["pending", "running"], original)
        assert dump_tasks(db, ["pending", "running"], tmp_path / "new.json") == 1
    assert _digest(original) == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("job.db")) == [
        "new.json",
        "tasks.json",
    ]
