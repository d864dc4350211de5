"""The flags on the commands: load_queue --skip-completed, task files from S3 for load_queue and
run, status --dump errors (the worked example covers the rest end to end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.domain.tasks import Task
from cloud_tasks.entrypoints.cli.main import main

LOCAL = ["--provider", "local", "--job-id", "job-a"]


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMS_CLOUD_TASKS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("RMS_CLOUD_TASKS_QUEUE_DIR", raising=False)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _old_job(path: Path, n: int, completed: set[int]) -> None:
    with TaskDatabase(path) as db:
        db.add_tasks((Task(f"t{i}", {"i": i}) for i in range(n)), 1.0)
        events: list[dict[str, Any]] = [
            {"event_type": "task_completed", "task_id": f"t{i}", "success": True, "retry": False}
            for i in sorted(completed)
        ]
        db.ingest(events, 2.0)


def _tasks(path: Path, n: int) -> Path:
    path.write_text(json.dumps([{"task_id": f"t{i}", "data": {"i": i}} for i in range(n)]))
    return path


def test_load_queue_skip_completed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _old_job(tmp_path / "old.db", 10, {0, 1, 2, 5, 9})
    tasks = _tasks(tmp_path / "tasks.json", 12)
    args = ["load_queue", *LOCAL, "--tasks", str(tasks), "--format", "json"]
    status, out, err = _run([*args, "--skip-completed", str(tmp_path / "old.db")], capsys)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["loaded"] == 7 and summary["tasks_in_file"] == 12
    status, out, err = _run(["show_queue", *LOCAL, "--format", "json"], capsys)
    assert json.loads(out)["depth"] == 7


def test_load_queue_skip_completed_needs_an_existing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = _tasks(tmp_path / "tasks.json", 3)
    args = ["load_queue", *LOCAL, "--tasks", str(tasks), "--skip-completed", "nope.db"]
    status, _out, err = _run(args, capsys)
    assert status == 1
    assert "nope.db: no task database here" in err
    status, out, _ = _run(["show_queue", *LOCAL, "--format", "json"], capsys)
    assert status != 0 or json.loads(out)["depth"] == 0  # nothing was sent


def test_load_queue_from_s3(moto_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="inputs")
    body = json.dumps([{"task_id": f"t{i}", "data": {}} for i in range(25)]).encode()
    s3.put_object(Bucket="inputs", Key="jobs/tasks.json", Body=body)
    args = ["load_queue", *LOCAL, "--tasks", "s3://inputs/jobs/tasks.json", "--format", "json"]
    status, out, err = _run(args, capsys)
    assert status == 0, err
    assert json.loads(out)["loaded"] == 25
    status, _out, err = _run(["load_queue", *LOCAL, "--tasks", "s3://inputs/none.json"], capsys)
    assert status == 1
    assert "s3://inputs/none.json: task file not found" in err


def test_run_dry_run_reads_a_task_file_from_s3(
    moto_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="inputs")
    body = json.dumps([{"task_id": f"t{i}", "data": {}} for i in range(40)]).encode()
    s3.put_object(Bucket="inputs", Key="tasks.json", Body=body)
    config = tmp_path / "config.yml"
    config.write_text("provider: local\nlocal:\n  job_id: job-a\n  startup_script: python3 w.py\n")
    args = ["run", "--config", str(config), "--tasks", "s3://inputs/tasks.json", "--dry-run"]
    status, out, err = _run([*args, "--format", "json"], capsys)
    assert status == 0, err
    assert json.loads(out)["tasks"] == 40


def test_status_dump_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _old_job(tmp_path / "job-a.db", 3, {0})
    args = ["status", *LOCAL, "--db-file", str(tmp_path / "job-a.db")]
    status, out, err = _run([*args, "--dump", "pending"], capsys)
    assert status == 0, err
    assert [t["task_id"] for t in json.loads(out)] == ["t1", "t2"]
    status, _out, err = _run([*args, "--output", "x.json"], capsys)
    assert status == 2 and "--output goes with --dump" in err
    status, _out, err = _run([*args, "--dump", "done"], capsys)
    assert status == 2
    status, _out, err = _run([*args, "--dump", "failed", "--output", "x.csv"], capsys)
    assert status == 1 and "must end in .json, .yaml or .yml" in err
