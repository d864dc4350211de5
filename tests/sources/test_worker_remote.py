"""The worker runs a task file straight from a bucket: ``--tasks s3://…`` / ``gs://…``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fakes.gcs import FakeGcs

WORKER = """
import asyncio, sys
import psutil
from cloud_tasks.worker import Worker

def process_task(task_id, task_data, worker_data):
    # Reading the task file must leave no connection behind for the forked children.
    sockets = [str(c.raddr) for c in psutil.Process().net_connections(kind="inet")]
    return True, {"sum": task_data["a"] + task_data["b"], "sockets": sockets}

async def main():
    await Worker(process_task, args=sys.argv[1:]).start()

asyncio.run(main())
"""

TASKS = [{"task_id": f"t{i}", "data": {"a": i, "b": 10 * i}} for i in range(12)]


def _run_worker(tmp_path: Path, location: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "remote_worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMS_CLOUD_TASKS_")}
    return subprocess.run(
        [sys.executable, str(script), "--tasks", location, "--num-simultaneous-tasks", "3"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def _completed(path: Path = Path("events.log")) -> dict[str, Any]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line]
    return {e["task_id"]: e["result"] for e in events if e["event_type"] == "task_completed"}


def test_worker_tasks_from_s3(moto_server: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="in/tasks.json", Body=json.dumps(TASKS).encode())
    # AWS_ENDPOINT_URL (set by the fixture) is all the worker is told about the server.
    assert os.environ["AWS_ENDPOINT_URL"] == moto_server
    proc = _run_worker(tmp_path, "s3://jobs/in/tasks.json")
    assert proc.returncode == 0, proc.stderr
    results = _completed()
    assert sorted(results) == sorted(t["task_id"] for t in TASKS)
    assert results["t7"]["sum"] == 77
    assert all(result["sockets"] == [] for result in results.values())


def test_worker_reports_a_missing_s3_object(moto_server: str, tmp_path: Path) -> None:
    import boto3

    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(
        Bucket="jobs"
    )
    proc = _run_worker(tmp_path, "s3://jobs/missing.json")
    assert proc.returncode == 1
    assert "s3://jobs/missing.json: task file not found (no such object; NoSuchKey" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_tasks_from_gcs(fake_gcs: FakeGcs, tmp_path: Path) -> None:
    fake_gcs.put(
        "jobs",
        "tasks.yaml",
        "".join(
            f"- task_id: {t['task_id']}\n  data: {json.dumps(t['data'])}\n" for t in TASKS
        ).encode(),
    )
    proc = _run_worker(tmp_path, "gs://jobs/tasks.yaml")
    assert proc.returncode == 0, proc.stderr
    results = _completed()
    assert len(results) == len(TASKS) and results["t3"]["sum"] == 33
    assert all(result["sockets"] == [] for result in results.values())
