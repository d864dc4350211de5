"""``run`` reads its task file once: one GET of an https:// or s3:// file per run.

A real ``cloud_tasks run`` (a subprocess on the ``local`` provider, instances running a real
worker) against loopback servers that count the requests: pytest-httpserver for the web
server, and for S3 a loopback endpoint (``AWS_ENDPOINT_URL_S3``) that answers GetObject, so
every S3 request the manager makes is seen and counted. Before the tasks were read once, a run
made 3 requests, 4 with ``--skip-completed`` and 2 for a ``--continue`` that records and loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from cloud_tasks.adapters.local.taskdb import TaskDatabase
from cloud_tasks.bootstrap import build_job_adapters
from cloud_tasks.config.loader import load_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

WORKER = """\
import sys
from cloud_tasks.worker import Worker

def process_task(task_id, data, worker_data):
    return True, {"n": data["n"]}

if __name__ == "__main__":
    Worker(process_task, args=sys.argv[1:]).run()
"""
CONFIG = """\
provider: local
local:
  job_id: once-job
  startup_script: |
    exec python3 worker.py
  max_instances: 1
  cpus_per_task: 0.1
  max_tasks_per_instance: 4
  scaling_check_interval: 1
  instance_termination_delay: 1
  keepalive_interval: 1
  keepalive_startup_timeout: 30
  keepalive_timeout: 30
"""


def _tasks(n: int) -> bytes:
    return json.dumps([{"task_id": f"t{i}", "data": {"n": i}} for i in range(n)]).encode()


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    # 127.0.0.1, not localhost: botocore addresses buckets path-style on an IP endpoint.
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    try:
        yield http
    finally:
        http.clear()
        if http.is_running():
            http.stop()


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "config.yml").write_text(CONFIG)
    return tmp_path


def _cli(directory: Path, server: HTTPServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RMS_CLOUD_TASKS_", "AWS_"))}
    env.update(
        XDG_STATE_HOME=str(directory / "state"),
        AWS_ENDPOINT_URL_S3=server.url_for("/"),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return subprocess.run(
        [sys.executable, "-m", "cloud_tasks", *args],
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _requests(server: HTTPServer, path: str) -> list[str]:
    return [request.method for request, _response in server.log if request.path == path]


def test_run_downloads_an_https_task_file_once(job: Path, server: HTTPServer) -> None:
    server.expect_request("/tasks.json").respond_with_data(_tasks(6), content_type="text/json")
    url = server.url_for("/tasks.json")
    result = _cli(job, server, "run", "--config", "config.yml", "--tasks", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 6 tasks completed." in result.stdout
    assert _requests(server, "/tasks.json") == ["GET"]
    # The spool had no name and is gone: nothing but the job's own files is left beside it.
    assert not [p.name for p in job.iterdir() if p.name.startswith(".tasks-")]


def test_run_with_skip_completed_reads_an_s3_task_file_once(job: Path, server: HTTPServer) -> None:
    server.expect_request("/inputs/first.json", method="GET").respond_with_data(_tasks(4))
    server.expect_request("/inputs/second.json", method="GET").respond_with_data(_tasks(7))
    first = _cli(
        job, server, "run", "--config", "config.yml", "--job-id", "first", "--tasks",
        "s3://inputs/first.json",
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    second = _cli(
        job, server, "run", "--config", "config.yml", "--job-id", "second", "--tasks",
        "s3://inputs/second.json", "--skip-completed", "first.db",
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "All 3 tasks completed." in second.stdout  # t4, t5, t6: the others were done
    assert _requests(server, "/inputs/first.json") == ["GET"]
    assert _requests(server, "/inputs/second.json") == ["GET"]
    # A signed S3 request, not an anonymous download.
    request = next(r for r, _ in server.log if r.path == "/inputs/second.json")
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_continue_after_a_kill_while_recording_downloads_once(
    job: Path, server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.expect_request("/tasks.json").respond_with_data(_tasks(5))
    url = server.url_for("/tasks.json")
    # What a manager killed while it recorded the tasks leaves (the recording is one
    # transaction): the queues, and a task database with its metadata but no task.
    monkeypatch.chdir(job)
    config = load_config("config.yml", cli_overrides={})
    db_path = job / "once-job.db"
    adapters = build_job_adapters(config, db_path)
    adapters.task_queue.create()
    adapters.event_queue.create()
    with TaskDatabase(db_path, job_id="once-job") as db:
        db.set_meta(
            job_id="once-job",
            provider="local",
            queue=adapters.task_queue.name,
            config=str(job / "config.yml"),
            tasks_file=url,
            started_at=time.time(),
            loaded=False,
            skip_completed=None,
        )
    result = _cli(job, server, "run", "--config", "config.yml", "--continue")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recorded 5 tasks the interrupted run had not recorded" in result.stderr
    assert "All 5 tasks completed." in result.stdout
    assert _requests(server, "/tasks.json") == ["GET"]  # recording and loading: one download
