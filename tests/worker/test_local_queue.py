"""Queue mode end to end: a worker process serving the ``local`` (SQLite) queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.worker.helpers import run_script

from cloud_tasks import bootstrap
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
