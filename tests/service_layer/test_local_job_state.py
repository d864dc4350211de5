"""The ``local`` provider keeps a job's queue with the job (SPEC §8): beside its task database,
never shared by two jobs of the same id in different folders, removed when the job ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_tasks.adapters.local.sqlite_queue import (
    SqliteEventQueue,
    SqliteTaskQueue,
    queue_file,
)
from cloud_tasks.domain.tasks import Envelope, Task
from cloud_tasks.entrypoints.cli.main import main

LOCAL = ["--provider", "local", "--job-id", "job-a"]


@pytest.fixture(autouse=True)
def _no_queue_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMS_CLOUD_TASKS_QUEUE_DIR", raising=False)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def _tasks(directory: Path, count: int) -> Path:
    path = directory / "tasks.json"
    path.write_text(json.dumps([{"task_id": f"t{i}", "data": {}} for i in range(count)]))
    return path


def _depth(capsys: pytest.CaptureFixture[str], *args: str) -> int:
    status, out, err = _cli(["show_queue", *LOCAL, *args, "--format", "json"], capsys)
    assert status == 0, err
    return int(json.loads(out)["depth"])


def test_two_jobs_of_the_same_id_in_different_folders_have_their_own_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = {"project-a": 3, "project-b": 5}
    for name, count in folders.items():
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        status, _, err = _cli(["load_queue", *LOCAL, "--tasks", str(_tasks(folder, count))], capsys)
        assert status == 0, err
    for name, count in folders.items():
        monkeypatch.chdir(tmp_path / name)
        assert _depth(capsys) == count
        assert queue_file("job-a", tmp_path / name / ".cloud_tasks" / "job-a").exists()
    # Nothing in a per-user folder keyed by the job id alone.
    assert not list((tmp_path / ".state").rglob("*.sqlite3"))


def test_the_queue_lives_beside_the_configured_task_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yml").write_text(
        "provider: local\nlocal:\n  job_id: job-a\n  db_file: out/run1.db\n"
        "  startup_script: 'exec python3 worker.py'\n"
    )
    tasks = _tasks(tmp_path, 2)
    status, _, err = _cli(["load_queue", "--config", "config.yml", "--tasks", str(tasks)], capsys)
    assert status == 0, err
    assert queue_file("job-a", tmp_path / "out" / ".cloud_tasks" / "run1").exists()


def test_deleting_the_queues_removes_the_queue_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["load_queue", *LOCAL, "--tasks", str(_tasks(tmp_path, 2))], capsys)[0] == 0
    directory = tmp_path / ".cloud_tasks" / "job-a"
    assert list(directory.glob("job-a.sqlite3*"))
    status, _, err = _cli(["delete_queue", *LOCAL, "--force"], capsys)
    assert status == 0, err
    assert not list(directory.glob("job-a.sqlite3*"))


def test_stop_with_delete_queues_removes_the_queue_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["load_queue", *LOCAL, "--tasks", str(_tasks(tmp_path, 2))], capsys)[0] == 0
    status, _, err = _cli(["stop", *LOCAL, "--delete-queues"], capsys)
    assert status == 0, err
    assert not list((tmp_path / ".cloud_tasks" / "job-a").glob("job-a.sqlite3*"))


def test_the_file_goes_with_its_last_queue_and_a_queue_created_again_is_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    tasks, events = SqliteTaskQueue(path, "q"), SqliteEventQueue(path, "q-events")
    tasks.create()
    events.create()
    tasks.send([Envelope(Task("t1", {}))])
    tasks.delete()
    assert path.exists()  # the event queue is still in it
    events.delete()
    assert not path.exists()
    # The same objects (their connections were to the removed file) start a new file.
    tasks.create()
    tasks.send([Envelope(Task("t2", {}))])
    assert path.exists()
    fresh = SqliteTaskQueue(path, "q")
    assert fresh.depth() == 1
    assert [m.envelope.task.task_id for m in fresh.receive(10, 30.0)] == ["t2"]
