"""The job commands through the real CLI: dry run, validation before anything, status, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.domain.taskstate import InstanceRecord

MEMORY_CONFIG = """\
provider: memory
memory:
  job_id: plan-job
  catalog: aws
  region: us-east-1
  startup_script: |
    #!/bin/bash
    pip install my-project
    python3 -m my_project.worker
  min_cpu: 4
  max_cpu: 8
  max_instances: 5
  use_spot: true
"""


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _tasks(path: Path, n: int) -> Path:
    path.write_text(json.dumps([{"task_id": f"t{i}", "data": {"i": i}} for i in range(n)]))
    return path


@pytest.fixture
def state_home(tmp_path: Path) -> dict[str, str]:
    return {"XDG_STATE_HOME": str(tmp_path / "state")}


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(MEMORY_CONFIG)
    _tasks(tmp_path / "tasks.json", 100)
    result = _cli(
        "run", "--config", "c.yml", "--tasks", "tasks.json", "--dry-run", "--task-duration", "600"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "nothing was created" in out
    assert "instances:          5 (limited by max_instances)" in out
    assert "tasks per instance:" in out and "boot disk:" in out
    assert "makespan" in out and "total" in out
    assert "export RMS_CLOUD_TASKS_JOB_ID=plan-job" in out
    assert "pip install my-project" in out
    assert not list(tmp_path.glob("*.db"))

    result = _cli(
        "run",
        "--config",
        "c.yml",
        "--tasks",
        "tasks.json",
        "--dry-run",
        "--task-duration",
        "600",
        "--format",
        "json",
    )
    plan = json.loads(result.stdout)
    assert plan["instances"] == 5 and plan["use_spot"] is True
    assert 4 <= plan["vcpus"] <= 8
    assert plan["tasks_per_instance"] == plan["vcpus"]
    # 100 tasks on 5 instances: waves of 5 * tasks_per_instance slots of 600 s each.
    slots = 5 * plan["tasks_per_instance"]
    assert plan["estimate"]["makespan_s"] == pytest.approx(600 * -(-100 // slots))
    assert plan["estimate"]["total_cost_usd"] > 0
    assert "RMS_CLOUD_TASKS_NUM_TASKS_PER_INSTANCE" in plan["startup_script"]


def test_memory_provider_only_plans(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(MEMORY_CONFIG)
    _tasks(tmp_path / "tasks.json", 3)
    result = _cli("run", "--config", "c.yml", "--tasks", "tasks.json")
    assert result.returncode == 1
    assert "only simulates instances" in result.stderr
    assert not list(tmp_path.glob("*.db"))


def test_invalid_task_file_stops_before_anything_is_created(
    tmp_path: Path, state_home: dict[str, str]
) -> None:
    (tmp_path / "c.yml").write_text(
        "provider: local\nlocal:\n  job_id: bad-job\n  startup_script: echo hi\n"
    )
    (tmp_path / "tasks.json").write_text(
        json.dumps([{"task_id": "a", "data": {}}, {"task_id": "a", "data": {}}])
    )
    result = _cli("run", "--config", "c.yml", "--tasks", "tasks.json", env=state_home)
    assert result.returncode == 1
    assert "duplicate" in result.stderr and "tasks.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad-job.db").exists()
    assert not (tmp_path / "state").exists()  # no queue file either


def test_missing_startup_script_is_a_config_error(
    tmp_path: Path, state_home: dict[str, str]
) -> None:
    (tmp_path / "c.yml").write_text("provider: local\nlocal:\n  job_id: nos\n")
    _tasks(tmp_path / "tasks.json", 2)
    result = _cli("run", "--config", "c.yml", "--tasks", "tasks.json", env=state_home)
    assert result.returncode == 1
    assert "no startup script" in result.stderr
    assert not (tmp_path / "nos.db").exists()


def test_status_json_from_the_database(tmp_path: Path, state_home: dict[str, str]) -> None:
    (tmp_path / "c.yml").write_text(
        "provider: local\nlocal:\n  job_id: st-job\n  startup_script: echo\n"
    )
    with TaskDatabase(tmp_path / "st-job.db") as db:
        db.add_tasks([Task("a"), Task("b"), Task("c")], now=1.0)
        db.set_meta(job_id="st-job", started_at=1.0)
        db.ingest(
            [
                {
                    "event_type": "task_completed",
                    "task_id": "a",
                    "success": True,
                    "retry": False,
                    "attempt": 1,
                    "elapsed_time": 0.5,
                    "result": {},
                    "instance_id": "i-1",
                },
                {
                    "event_type": "task_exception",
                    "task_id": "b",
                    "retry": False,
                    "attempt": 1,
                    "exception": "ValueError: nope",
                    "instance_id": "i-1",
                },
            ],
            now=2.0,
        )
        db.record_instance(InstanceRecord("i-1", "st-job-1", "local", "local", False, 0.0, 1.0))
    result = _cli("status", "--config", "c.yml", "--format", "json", env=state_home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["job_id"] == "st-job"
    assert data["tasks"] == {"pending": 1, "running": 0, "completed": 1, "failed": 1, "total": 3}
    assert data["spend_usd"] == 0
    assert data["instances"][0]["instance_id"] == "i-1"
    assert data["instances"][0]["state"] == "gone"  # not in the local registry
    text = _cli("status", "--config", "c.yml", env=state_home).stdout
    assert "ValueError: nope" in text and "1 completed, 1 failed" in text


def test_status_without_database_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text("provider: local\nlocal:\n  job_id: none-job\n")
    result = _cli("status", "--config", "c.yml")
    assert result.returncode == 1
    assert "no task database" in result.stderr and "cloud_tasks run" in result.stderr


def test_oversized_task_is_named_before_anything_is_sent(
    tmp_path: Path, state_home: dict[str, str]
) -> None:
    (tmp_path / "c.yml").write_text(
        "provider: local\nlocal:\n  job_id: big-job\n  startup_script: echo\n"
    )
    tasks = [{"task_id": "small", "data": {}}, {"task_id": "huge", "data": {"x": "y" * 300_000}}]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    result = _cli("run", "--config", "c.yml", "--tasks", "tasks.json", env=state_home)
    assert result.returncode == 1
    assert "huge" in result.stderr and "message limit" in result.stderr
    assert not (tmp_path / "big-job.db").exists()
