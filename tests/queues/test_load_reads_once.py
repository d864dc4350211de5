"""``load_queue`` reads its task file once: one GET of an http:// file per load, whatever the
flags.

The file is served by pytest-httpserver on 127.0.0.1, which logs every request; the command
runs in-process on the ``local`` provider (a SQLite queue). Before the file was read once, a
load made 2 requests (a pass to check the sizes, one to send), 3 with ``--skip-completed`` (one
more to count what was left).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from cloud_tasks.adapters.local.sqlite_queue import SqliteTaskQueue, queue_file
from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.entrypoints.cli.main import main

LOCAL = ["--provider", "local", "--job-id", "job-a"]
#: The local job's queue file lives with it: beside the task database job-a.db, here.
JOB_DIR = Path(".cloud_tasks") / "job-a"


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue files and load records go to this test's directory, not the user's."""
    monkeypatch.setenv("RMS_CLOUD_TASKS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RMS_CLOUD_TASKS_QUEUE_DIR", raising=False)


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    try:
        yield http
    finally:
        http.clear()
        if http.is_running():
            http.stop()


def _serve(server: HTTPServer, tasks: list[dict[str, Any]]) -> str:
    server.expect_request("/tasks.json").respond_with_data(
        json.dumps(tasks), content_type="application/json"
    )
    return server.url_for("/tasks.json")


def _tasks(n: int, **pads: int) -> list[dict[str, Any]]:
    """``n`` tasks t0, t1, ...; ``pads`` gives some (by id) a large ``pad`` field."""
    return [
        {"task_id": f"t{i}", "data": {"i": i, "pad": "x" * pads.get(f"t{i}", 0)}} for i in range(n)
    ]


def _downloads(server: HTTPServer) -> int:
    return sum(1 for request, _response in server.log if request.path == "/tasks.json")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _queued() -> list[str]:
    queue = SqliteTaskQueue(queue_file("job-a", JOB_DIR), "job-a")
    return sorted(m.task_id for m in queue.receive(1000, 60.0))


def test_a_slice_is_loaded_from_one_download(
    server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _serve(server, _tasks(30))
    args = ["load_queue", *LOCAL, "--tasks", url, "--start-task", "5", "--limit", "20"]
    status, out, err = _run([*args, "--format", "json"], capsys)
    assert status == 0, err
    assert json.loads(out) == {
        "queue": "job-a",
        "provider": "local",
        "loaded": 20,
        "skipped": 0,
        "tasks_in_file": 30,
    }
    assert _downloads(server) == 1
    # Loading again (idempotent) sends nothing, also from a single download.
    status, out, err = _run(args, capsys)
    assert status == 0, err
    assert "Loaded 0 task(s)" in out and "Skipped 20" in out
    assert _downloads(server) == 2
    assert _queued() == sorted(f"t{i}" for i in range(5, 25))


def test_skip_completed_loads_from_one_download(
    server: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TaskDatabase(tmp_path / "old.db") as old:
        old.add_tasks((Task(f"t{i}", {"i": i}) for i in range(10)), 1.0)
        completed = [
            {"event_type": "task_completed", "task_id": f"t{i}", "success": True, "retry": False}
            for i in (0, 1, 2, 5, 9)
        ]
        old.ingest(completed, 2.0)
    url = _serve(server, _tasks(12))
    args = ["load_queue", *LOCAL, "--tasks", url, "--start-task", "1", "--limit", "10"]
    status, out, err = _run([*args, "--skip-completed", "old.db", "--format", "json"], capsys)
    assert status == 0, err
    assert json.loads(out)["loaded"] == 6 and json.loads(out)["tasks_in_file"] == 12
    assert _downloads(server) == 1
    assert _queued() == ["t10", "t3", "t4", "t6", "t7", "t8"]


def test_every_task_completed_already_is_said_after_one_download(
    server: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TaskDatabase(tmp_path / "old.db") as old:
        old.add_tasks((Task(f"t{i}", {}) for i in range(3)), 1.0)
        done = [
            {"event_type": "task_completed", "task_id": f"t{i}", "success": True, "retry": False}
            for i in range(3)
        ]
        old.ingest(done, 2.0)
    url = _serve(server, _tasks(3))
    status, out, err = _run(
        ["load_queue", *LOCAL, "--tasks", url, "--skip-completed", "old.db"], capsys
    )
    assert status == 0, err
    assert out == "every selected task is completed in old.db; nothing to load\n"
    assert _downloads(server) == 1
    status, _out, err = _run(["show_queue", *LOCAL], capsys)
    assert status == 1 and "does not exist" in err  # no queue was created


def test_only_the_slice_is_sized_and_an_oversized_task_stops_the_load(
    server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    big = 300_000  # over the SQS-sized limit of the local queue
    url = _serve(server, _tasks(8, t1=big, t5=big))
    status, _out, err = _run(["load_queue", *LOCAL, "--tasks", url, "--start-task", "2"], capsys)
    assert status == 1
    assert "1 task(s) exceed the local queue's" in err and "'t5'" in err and "'t1'" not in err
    assert "nothing was sent" in err
    assert _downloads(server) == 1
    # Outside the slice, a large task is not refused.
    status, _out, err = _run(
        ["load_queue", *LOCAL, "--tasks", url, "--start-task", "2", "--limit", "3"], capsys
    )
    assert status == 0, err
    assert _downloads(server) == 2
    assert _queued() == ["t2", "t3", "t4"]
