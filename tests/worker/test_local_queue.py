"""Queue mode end to end: a worker process serving the ``local`` (SQLite) queue."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.worker.helpers import SCRIPTS, read_events, run_script

from cloud_tasks import bootstrap
from cloud_tasks.adapters.local.sqlite_queue import queue_file
from cloud_tasks.domain.options import JobConfig, ProviderOptions
from cloud_tasks.domain.tasks import Envelope, Task


def test_worker_process_drains_a_local_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMS_CLOUD_TASKS_QUEUE_DIR", str(tmp_path / "queues"))
    config = JobConfig(provider="local", provider_options=ProviderOptions(job_id="job-a"))
    queue = bootstrap.make_task_queue(config)
    events = bootstrap.make_event_queue(config)
    queue.create()
    events.create()
    queue.send([Envelope(Task(f"t{i}", {"mode": "success", "value": i})) for i in range(4)])
    queue.send([Envelope(Task("again", {"mode": "retry"}))])
    proc = run_script(
        "outcomes_worker.py",
        ["--exit-when-idle", "1", "--max-attempts", "2", "--num-simultaneous-tasks", "2"],
        env={
            "RMS_CLOUD_TASKS_PROVIDER": "LOCAL",
            "RMS_CLOUD_TASKS_JOB_ID": "job-a",
            "RMS_CLOUD_TASKS_QUEUE_DIR": str(tmp_path / "queues"),
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert queue.depth() == 0
    received = [r.event for r in events.receive(100)]
    completed = [e for e in received if e["event_type"] == "task_completed"]
    assert sorted(e["task_id"] for e in completed if e["success"]) == [f"t{i}" for i in range(4)]
    assert [e["attempt"] for e in completed if e["task_id"] == "again"] == [1, 2]
    assert [e["task_id"] for e in received if e["event_type"] == "task_dead_lettered"] == ["again"]
    assert not (tmp_path / "events.log").exists()  # queue mode logs to the event queue


def test_missing_queue_is_one_clear_error(tmp_path: Path) -> None:
    proc = run_script(
        "outcomes_worker.py",
        ["--provider", "local", "--job-id", "nothing-here"],
        env={"RMS_CLOUD_TASKS_QUEUE_DIR": str(tmp_path / "queues")},
    )
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_no_task_file_and_no_provider_is_one_clear_error() -> None:
    proc = run_script("outcomes_worker.py", [])
    assert proc.returncode == 1
    assert "--tasks" in proc.stderr and "Traceback" not in proc.stderr


def test_a_locked_queue_database_does_not_stall_the_worker(tmp_path: Path) -> None:
    """Queue calls run on the loop's thread through a view that never waits: while another
    process holds the database's lock they go to a thread, and keep-alives carry on."""
    queues = tmp_path / "queues"
    config = JobConfig(provider="local", provider_options=ProviderOptions(job_id="job-l"))
    queue = bootstrap.make_task_queue(config, queue_dir=queues)
    events = bootstrap.make_event_queue(config, queue_dir=queues)
    queue.create()
    events.create()
    tasks = 40
    queue.send([Envelope(Task(f"t{i}", {"mode": "sleep", "seconds": 0.05})) for i in range(tasks)])
    log = tmp_path / "events.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    env.update(RMS_CLOUD_TASKS_QUEUE_DIR=str(queues))
    args = ["--provider", "local", "--job-id", "job-l", "--num-simultaneous-tasks", "2"]
    args += ["--exit-when-idle", "1", "--keepalive-interval", "0.1"]
    args += ["--event-log-to-file", "--event-log-file", str(log)]
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "outcomes_worker.py"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = sqlite3.connect(queue_file("job-l", queues), isolation_level=None)
    try:
        deadline = time.monotonic() + 60
        while not any(e["event_type"] == "task_completed" for e in read_events(log)):
            assert proc.poll() is None and time.monotonic() < deadline, "no task completed"
            time.sleep(0.05)
        holder.execute("BEGIN IMMEDIATE")
        before = len(read_events(log))
        time.sleep(1.5)
        during = read_events(log)[before:]
        holder.execute("COMMIT")
        _, stderr = proc.communicate(timeout=60)
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert sum(e["event_type"] == "keep_alive" for e in during) >= 3
    completed = {e["task_id"] for e in read_events(log) if e["event_type"] == "task_completed"}
    assert completed == {f"t{i}" for i in range(tasks)}
    assert queue.depth() == 0
